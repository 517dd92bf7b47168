// Loading one profile's stream into decider state, and appending what the decider decided, with
// the metadata every event carries. Only the one stream is read: no command replays the log.
import * as E from 'fp-ts/lib/Either.js';
import type { ExpectedRevision, NewEvent } from '../../adapters/eventstore/event-store.js';
import { CURRENT_SCHEMAS, type LedgerEvent, type ProfileEvent } from '../../domain/events.js';
import { stateFrom, type ProfileState } from '../../domain/profile-decider.js';
import { decodeStoredEvent, describeDecodeError } from '../../domain/upcasters.js';
import type { Traffic } from '../../domain/values.js';
import type { Ledger } from '../ledger.js';
import { TOOL_NAME } from '../version.js';

export interface LoadedProfile {
  readonly streamId: string;
  readonly profileId: string;
  readonly state: ProfileState;
  readonly expectedRevision: ExpectedRevision;
}

export const profileStreamId = (profileId: string): string => `profile-${profileId}`;
export const GATEWAY_STREAM = 'gateway';

export async function loadProfile(ledger: Ledger, email: string, traffic: Traffic): Promise<LoadedProfile> {
  const profileId = ledger.profileIdOf(email, traffic);
  const streamId = profileStreamId(profileId);
  const stored = await ledger.store.readStream(streamId);
  const events: ProfileEvent[] = [];
  for (const s of stored) {
    const decoded = decodeStoredEvent(s);
    if (E.isLeft(decoded)) {
      throw new Error(`stream ${streamId} revision ${s.revision}: ${describeDecodeError(decoded.left)}`);
    }
    events.push(decoded.right as ProfileEvent);
  }
  const last = stored.at(-1);
  return {
    streamId,
    profileId,
    state: stateFrom(events),
    expectedRevision: last === undefined ? 'no_stream' : last.revision,
  };
}

export function toNewEvents(ledger: Ledger, events: readonly LedgerEvent[]): NewEvent[] {
  const metadata = { actor: ledger.actor, at: ledger.clock.now().toISOString(), tool: TOOL_NAME };
  return events.map((e) => ({
    type: e.type,
    schemaVersion: CURRENT_SCHEMAS[e.type].version,
    data: e.data,
    metadata,
  }));
}

/** Appends and brings the read models up to date, so what the command prints is what is stored. */
export async function appendAndProject(
  ledger: Ledger,
  streamId: string,
  expectedRevision: ExpectedRevision,
  events: readonly LedgerEvent[],
): Promise<void> {
  if (events.length === 0) return;
  await ledger.store.appendToStream(streamId, expectedRevision, toNewEvents(ledger, events));
  await ledger.catchUp();
}
