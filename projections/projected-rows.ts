// What one event does to the read models, as rows handed to a sink: its audit record, the
// certificates and CRL entries it adds, a gateway event to fold into the gateway row, and the
// new state of its profile's user row. The single definition of the projection, shared by the
// store's own passes, by both threads of a whole-log pass (projectStoredPage) and by
// ov_restore's checking thread (staging-log.ts), so that every path writes the same rows.
import * as E from 'fp-ts/lib/Either.js';
import { isGatewayEvent, type Envelope, type GatewayEvent, type ProfileEvent } from '../domain/events.js';
import { decodeStoredEvent, type DecodeError, type StoredEventLike } from '../domain/upcasters.js';
import { auditRecordOf } from './audit-history.js';
import { crlEntriesFrom, type CrlEntry } from './crl-entries.js';
import { applyUserFact, userFactOf, type UserFact, type UserRow } from './user-list.js';

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
  const profileEvent = projectEventRows(event, sink);
  if (!profileEvent) return;
  const streamId = event.streamId;
  // get before has: one lookup in a map of every profile for nearly every event, not two.
  const known = users.get(streamId);
  const before = known !== undefined || users.has(streamId) ? known : userBefore(streamId);
  users.set(streamId, applyUserFact(before, userFactOf(profileEvent)));
}

/**
 * As projectEvent, for a caller that folds the user rows elsewhere (in another thread, later):
 * the event's user fact is appended to `facts`, as pushUserFact lists it.
 */
export function projectEventFacts(event: Envelope, sink: RowSink, facts: unknown[]): void {
  const profileEvent = projectEventRows(event, sink);
  if (profileEvent) pushUserFact(facts, profileEvent.streamId, userFactOf(profileEvent));
}

/**
 * Projects `event` into `sink`: every row but its user row, which is up to the caller (see
 * userFactOf). Returns the event when it is a profile's, undefined for a gateway event.
 */
export function projectEventRows(event: Envelope, sink: RowSink): Envelope<ProfileEvent> | undefined {
  const metadata = event.metadata;
  sink.audit(event.position, event.streamId, event.type, metadata.at, metadata.actor, JSON.stringify(auditRecordOf(event).details));
  if (isGatewayEvent(event)) {
    sink.gateway(event);
    return undefined;
  }
  const profileEvent = event as Envelope<ProfileEvent>;
  if (profileEvent.type === 'ProfileIssued' || profileEvent.type === 'ProfileRenewed' || profileEvent.type === 'RenewalCertificateIssued') {
    const c = profileEvent.data.certificate;
    sink.certificate(c.serial, event.streamId, c.notAfter);
  }
  for (const entry of crlEntriesFrom(profileEvent)) sink.crlEntry(entry);
  return profileEvent;
}

/**
 * The rows of consecutive events, flat, as one thread hands them to the thread that inserts
 * them: a whole-log pass's read worker (projection-read-worker.ts), and ov_restore's checking
 * thread (commands/use-cases/staging-log.ts). Lists of plain values are cloned for a message far
 * faster than as many small objects.
 */
export interface RowPage {
  count: number;
  first: bigint;
  last: bigint;
  /** audit_log rows, six values each (position, stream_id, type, at, actor, details). */
  readonly audit: unknown[];
  /** certificates rows, three values each (serial, stream_id, not_after). */
  readonly certificates: string[];
  /** CRL entries, three values each (serial, revokedAt, reason). */
  readonly crl: string[];
  readonly gateway: Array<Envelope<GatewayEvent>>;
}

export function emptyRowPage(): RowPage {
  return { count: 0, first: 0n, last: 0n, audit: [], certificates: [], crl: [], gateway: [] };
}

/** The sink that fills `page` (count, first and last are the caller's to keep). */
export function rowPageSink(page: RowPage): RowSink {
  return {
    audit: (position, streamId, type, at, actor, details) => {
      page.audit.push(position, streamId, type, at, actor, details);
    },
    certificate: (serial, streamId, notAfter) => {
      page.certificates.push(serial, streamId, notAfter);
    },
    crlEntry: (entry) => {
      page.crl.push(entry.serial, entry.revokedAt, entry.reason);
    },
    gateway: (event) => {
      page.gateway.push(event);
    },
  };
}

const noUserRowBefore = (): undefined => undefined;

/**
 * One page of a whole-log pass, from either of its threads: the events of `stored` up to position
 * `upTo`, decoded and projected into a page of rows. Their user facts are folded into `users`
 * when it is given (the page is next in line, and the pass started from empty read models), and
 * otherwise listed in `facts` as pushUserFact lists them. Stops at the first event that does not
 * decode: `invalid` is that event and why.
 */
export function projectStoredPage(
  stored: readonly StoredEventLike[],
  upTo: bigint,
  users?: Map<string, UserRow | undefined>,
): { page: RowPage; facts: unknown[]; invalid?: { stored: StoredEventLike; error: DecodeError } } {
  const page = emptyRowPage();
  const sink = rowPageSink(page);
  const facts: unknown[] = [];
  for (const s of stored) {
    if (s.position > upTo) break;
    const decoded = decodeStoredEvent(s);
    if (E.isLeft(decoded)) return { page, facts, invalid: { stored: s, error: decoded.left } };
    if (users) projectEvent(decoded.right, sink, users, noUserRowBefore);
    else projectEventFacts(decoded.right, sink, facts);
    if (page.count++ === 0) page.first = s.position;
    page.last = s.position;
  }
  return { page, facts };
}

// User facts in one flat list: per fact its stream id, a kind code, then the kind's fields.
const FACT_CODE = { issued: 0, renewed: 1, revoked: 2, autoRenew: 3, renewalFailed: 4, deliveryFailed: 5, delivered: 6, unchanged: 7 } as const;

/** Appends `fact` about `streamId` to the flat list `out`. */
export function pushUserFact(out: unknown[], streamId: string, fact: UserFact): void {
  switch (fact.kind) {
    case 'issued': {
      const r = fact.row;
      out.push(streamId, FACT_CODE.issued, r.profileId, r.generation, r.email, r.traffic, r.firstName, r.lastName, r.expirationDate, r.createdAt, r.autoRenew, r.currentSerial, r.routes);
      return;
    }
    case 'renewed':
      out.push(streamId, FACT_CODE.renewed, fact.expirationDate, fact.currentSerial);
      return;
    case 'revoked':
      out.push(streamId, FACT_CODE.revoked, fact.at);
      return;
    case 'autoRenew':
      out.push(streamId, FACT_CODE.autoRenew, fact.autoRenew);
      return;
    case 'renewalFailed':
      out.push(streamId, FACT_CODE.renewalFailed, fact.failure.at, fact.failure.reason, fact.failure.lastLogLine);
      return;
    case 'deliveryFailed':
      out.push(streamId, FACT_CODE.deliveryFailed, fact.undelivered.at, fact.undelivered.error);
      return;
    case 'delivered':
    case 'unchanged':
      out.push(streamId, FACT_CODE[fact.kind]);
      return;
  }
}

/** Folds the facts of a flat list (pushUserFact's) into `users`, in order. */
export function foldUserFacts(flat: readonly unknown[], users: Map<string, UserRow | undefined>): void {
  const s = (i: number) => flat[i] as string;
  for (let i = 0; i < flat.length; ) {
    const streamId = s(i);
    const code = flat[i + 1] as number;
    let fact: UserFact;
    switch (code) {
      case FACT_CODE.issued:
        // Keys in the order userFactOf gives them: the users table keeps the row as JSON.
        fact = {
          kind: 'issued',
          row: {
            streamId,
            profileId: s(i + 2),
            generation: flat[i + 3] as number,
            email: s(i + 4) as UserRow['email'],
            traffic: s(i + 5) as UserRow['traffic'],
            firstName: s(i + 6),
            lastName: s(i + 7),
            expirationDate: s(i + 8) as UserRow['expirationDate'],
            createdAt: s(i + 9),
            autoRenew: flat[i + 10] as boolean,
            status: 'active',
            currentSerial: s(i + 11),
            revokedAt: null,
            renewals: 0,
            lastRenewalFailure: null,
            undelivered: null,
            routes: flat[i + 12] as UserRow['routes'],
          },
        };
        i += 13;
        break;
      case FACT_CODE.renewed:
        fact = { kind: 'renewed', expirationDate: s(i + 2) as UserRow['expirationDate'], currentSerial: s(i + 3) };
        i += 4;
        break;
      case FACT_CODE.revoked:
        fact = { kind: 'revoked', at: s(i + 2) };
        i += 3;
        break;
      case FACT_CODE.autoRenew:
        fact = { kind: 'autoRenew', autoRenew: flat[i + 2] as boolean };
        i += 3;
        break;
      case FACT_CODE.renewalFailed:
        fact = { kind: 'renewalFailed', failure: { at: s(i + 2), reason: s(i + 3), lastLogLine: s(i + 4) } };
        i += 5;
        break;
      case FACT_CODE.deliveryFailed:
        fact = { kind: 'deliveryFailed', undelivered: { at: s(i + 2), error: s(i + 3) } };
        i += 4;
        break;
      case FACT_CODE.delivered:
        fact = { kind: 'delivered' };
        i += 2;
        break;
      case FACT_CODE.unchanged:
        fact = { kind: 'unchanged' };
        i += 2;
        break;
      default:
        throw new Error(`internal error: user fact code ${String(code)}`);
    }
    users.set(streamId, applyUserFact(users.get(streamId), fact));
  }
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
