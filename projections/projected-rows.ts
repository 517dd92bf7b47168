// What one event does to the read models, as rows handed to a sink: its audit record, the
// certificates and CRL entries it adds, a gateway event to fold into the gateway row, and the
// new state of its profile's user row. The single definition of the projection, shared by the
// store's own passes and by the read worker of a whole-log pass (projection-read-worker.ts),
// so that every path writes the same rows.
import { isGatewayEvent, type Envelope, type GatewayEvent, type ProfileEvent } from '../domain/events.js';
import { auditRecordOf } from './audit-history.js';
import { crlEntriesFrom, type CrlEntry } from './crl-entries.js';
import { evolveUserRow, type UserRow } from './user-list.js';

export interface RowSink {
  /** An audit_log row; `details` as the table holds it (JSON). */
  audit(position: bigint, streamId: string, type: string, at: string, actor: string, details: string): void;
  certificate(serial: string, streamId: string, notAfter: string): void;
  crlEntry(entry: CrlEntry): void;
  gateway(event: Envelope<GatewayEvent>): void;
}

/**
 * Projects `event` into `sink` and `users` (user rows by stream id, written by the caller).
 * `userBefore` gives the row of a stream not in `users` yet (undefined when projecting from empty).
 */
export function projectEvent(
  event: Envelope,
  sink: RowSink,
  users: Map<string, UserRow | undefined>,
  userBefore: (streamId: string) => UserRow | undefined,
): void {
  const metadata = event.metadata;
  sink.audit(event.position, event.streamId, event.type, metadata.at, metadata.actor, JSON.stringify(auditRecordOf(event).details));
  if (isGatewayEvent(event)) {
    sink.gateway(event);
    return;
  }
  const profileEvent = event as Envelope<ProfileEvent>;
  const streamId = event.streamId;
  // get before has: one lookup in a map of every profile for nearly every event, not two.
  const known = users.get(streamId);
  const before = known !== undefined || users.has(streamId) ? known : userBefore(streamId);
  users.set(streamId, evolveUserRow(before, profileEvent));
  if (profileEvent.type === 'ProfileIssued' || profileEvent.type === 'ProfileRenewed' || profileEvent.type === 'RenewalCertificateIssued') {
    const c = profileEvent.data.certificate;
    sink.certificate(c.serial, streamId, c.notAfter);
  }
  for (const entry of crlEntriesFrom(profileEvent)) sink.crlEntry(entry);
}

/** The values of a users table row, in the order of its columns (stream_id … row). */
export function userColumns(streamId: string, row: UserRow): unknown[] {
  return [
    streamId,
    row.profileId,
    row.email,
    row.traffic,
    row.status,
    row.expirationDate,
    row.firstName,
    row.lastName,
    row.createdAt,
    row.autoRenew ? 1 : 0,
    row.currentSerial,
    row.renewals,
    JSON.stringify(row),
  ];
}

/**
 * The rows of `users` as userColumns gives them, in stream id order (so that a table filled from
 * them builds its primary key by appending). Streams without a row are left out.
 */
export function sortedUserColumns(users: ReadonlyMap<string, UserRow | undefined>): unknown[][] {
  const entries = [...users].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const out: unknown[][] = [];
  for (const [streamId, row] of entries) if (row) out.push(userColumns(streamId, row));
  return out;
}
