// The event-store port: the one interface every store adapter (in-memory, embedded SQLite,
// EventStoreDB) implements, and that the contract suite in test/eventstore pins down.
//
// Numbering, the same for every adapter:
// - a stream's first event has revision 0 (as in EventStoreDB); `expectedRevision` is the
//   revision of the stream's last event, or 'no_stream' when the stream must not exist yet, or
//   'any' to skip the check;
// - the global position of the first event in the store is 1 and positions only grow; reading
//   "from" a position returns the events strictly after it, so position 0 means "from the start".
// Revisions and positions are bigint in memory and decimal strings wherever they are serialised.

export type ExpectedRevision = bigint | 'no_stream' | 'any';

/** An event as handed to the store: data and metadata are plain JSON values. */
export interface NewEvent {
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: unknown;
  readonly metadata: unknown;
}

/** An event as the store returns it. `data`/`metadata` are untyped: callers parse them with zod. */
export interface RecordedEvent extends NewEvent {
  readonly streamId: string;
  readonly revision: bigint;
  readonly position: bigint;
}

export interface AppendResult {
  /** Revision of the last event written. */
  readonly nextExpectedRevision: bigint;
  /** Global position of the last event written. */
  readonly position: bigint;
}

export class WrongExpectedRevisionError extends Error {
  override readonly name = 'WrongExpectedRevisionError';
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    /** Revision of the stream's last event, or 'no_stream'. */
    readonly actual: bigint | 'no_stream',
  ) {
    super(
      `stream ${streamId} changed while this command ran (expected ${String(expected)}, found ${String(actual)})`,
    );
  }
}

export class EventStoreUnavailableError extends Error {
  override readonly name = 'EventStoreUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface ReadAllOptions {
  /** Return events strictly after this global position (0n = from the start). */
  readonly after: bigint;
  /** Upper bound on how many events one call returns. */
  readonly limit: number;
}

export interface EventStore {
  /**
   * Appends all events atomically, or none. Rejects with WrongExpectedRevisionError when the
   * stream is not at `expectedRevision`; never overwrites.
   */
  appendToStream(
    streamId: string,
    expectedRevision: ExpectedRevision,
    events: readonly NewEvent[],
  ): Promise<AppendResult>;

  /** Every event of the stream in revision order; an empty array when the stream does not exist. */
  readStream(streamId: string): Promise<RecordedEvent[]>;

  /** One page of events in global order, strictly after `options.after`. */
  readAll(options: ReadAllOptions): Promise<RecordedEvent[]>;

  /** Global position of the newest event, 0n for an empty store. */
  headPosition(): Promise<bigint>;

  close(): Promise<void>;
}
