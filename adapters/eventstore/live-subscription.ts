// An optional capability of an event store, beside the port: pushing events to a follower as
// they are appended anywhere (ov_follow). EventStoreDB has it (catch-up subscriptions to $all);
// the embedded SQLite store has not (one box, nothing else appends), and ov_follow polls readAll
// when a store lacks it.
import type { EventStore, RecordedEvent } from './event-store.js';

export interface LiveListener {
  /** One event, in global order, strictly after the position subscribed from. */
  onEvent(event: RecordedEvent): void;
  /** The subscription has delivered everything that existed when it started. */
  onCaughtUp?(): void;
  /**
   * The subscription ended (server gone, dropped, or an event that cannot be read). Called at
   * most once, never after stop(); the follower resubscribes from its own checkpoint.
   */
  onError(error: Error): void;
}

export interface LiveSubscription {
  /** Stop delivering while the follower works off what it has (flow control). */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export interface LiveEventSource {
  /** Non-system events strictly after `after` (0n = from the start), then live ones. */
  subscribeAll(after: bigint, listener: LiveListener): LiveSubscription;
}

export function isLiveEventSource(store: EventStore): store is EventStore & LiveEventSource {
  return typeof (store as Partial<LiveEventSource>).subscribeAll === 'function';
}
