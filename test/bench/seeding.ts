// What the benchmarks share to seed a gateway's log: a seeded random sequence (so every run plans
// the same history), unique certificate serials, and the event mix of ledger-bench.ts and
// rebuild-bench.ts. Not a test.
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type Database from 'better-sqlite3';
import * as E from 'fp-ts/lib/Either.js';
import type { NewEvent } from '../../adapters/eventstore/event-store.js';
import type { SqliteEventStore, StreamAppend } from '../../adapters/eventstore/sqlite-event-store.js';
import { TOOL_NAME } from '../../commands/version.js';
import { CURRENT_SCHEMAS, type EventType } from '../../domain/events.js';
import { decodeStoredEvent, describeDecodeError } from '../../domain/upcasters.js';
import { addDays, endOfUtcDay, utcDateOf, type CalendarDate, type Traffic } from '../../domain/values.js';

const DAY = 86_400_000;
/** The route list of the seeded gateway (partial profiles carry it). */
export const ROUTE = '10.0.0.0/16';

/** A small seeded PRNG (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Unique random certificate serials: 16 bytes, positive and minimal (first byte 0x01–0x7f). */
export class SerialSource {
  private readonly seen = new Set<string>();
  // Random bytes drawn 1 MiB at a time: a million serials from one randomBytes call each was slow.
  private pool = Buffer.alloc(0);
  private at = 0;

  next(): string {
    for (;;) {
      if (this.at + 16 > this.pool.length) {
        this.pool = randomBytes(16 * 65_536);
        this.at = 0;
      }
      const bytes = this.pool.subarray(this.at, this.at + 16);
      this.at += 16;
      bytes[0] = bytes[0]! & 0x7f;
      if (bytes[0] === 0) continue;
      const hex = bytes.toString('hex');
      if (this.seen.has(hex)) continue;
      this.seen.add(hex);
      return hex;
    }
  }

  /** How many serials were handed out. */
  get size(): number {
    return this.seen.size;
  }
}

// ---- the event mix of ledger-bench.ts and rebuild-bench.ts ---------------------------------------

/** How many profiles, and how many events in all the log should hold once seeded. */
export interface PlanShape {
  readonly profiles: number;
  readonly events: number;
}

const FIRST_NAMES = ['Ada', 'Alan', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Margaret', 'Ken', 'Frances', 'Dennis', 'Radia', 'Niklaus', 'Hedy', 'Tony', 'Karen', 'Leslie', 'Sophie', 'John', 'Jean', 'Linus'];
const LAST_NAMES = ['Lovelace', 'Turing', 'Hopper', 'Dijkstra', 'Liskov', 'Knuth', 'Hamilton', 'Thompson', 'Allen', 'Ritchie', 'Perlman', 'Wirth', 'Lamarr', 'Hoare', 'Spärck Jones', 'Lamport', 'Wilson', 'Backus', 'Sammet', 'Torvalds'];
const REASONS = ['remote access for the support rotation', 'contractor: data migration project', 'on-call access to the build farm', 'access to the staging network', 'replacement laptop'];

export type Planned = PlannedEvent;

export interface ProfileRef {
  readonly email: string;
  readonly traffic: Traffic;
}

export interface Plan {
  readonly events: Planned[];
  readonly activeProfiles: number;
  readonly revokedSerials: number;
  readonly deleteCandidates: ProfileRef[];
  readonly counts: Record<string, number>;
  readonly serials: number;
}

export interface PlanEnv {
  readonly profileIdOf: (email: string, traffic: Traffic) => string;
  readonly pem: string;
  readonly now: number;
}

/**
 * Every profile: generation 1 issued, some resends and auto-renew toggles, then revoked (one
 * serial each, so the CRL holds exactly one entry per profile). 80 % are then issued again
 * (generation 2) and live on with renewals, resends and toggles: those are the active profiles,
 * a few of them past their expiration date. The extra events are spread so the total is exact.
 */
export function planEvents(options: PlanShape, existing: number, env: PlanEnv): Plan {
  const rng = mulberry32(0x5eed);
  const between = (lo: number, hi: number): number => lo + rng() * (hi - lo);
  const serials = new SerialSource();
  const P = options.profiles;
  const reissued = (i: number): boolean => i % 5 !== 4;
  let reissuedCount = 0;
  for (let i = 0; i < P; i++) if (reissued(i)) reissuedCount++;
  const extraTotal = options.events - existing - (P + reissuedCount) - P;
  const extraBase = Math.floor(extraTotal / P);
  const extraRemainder = extraTotal % P;

  const events: Planned[] = [];
  const counts: Record<string, number> = {};
  const deleteCandidates: ProfileRef[] = [];
  let revokedSerials = 0;
  const dateOf = (t: number): CalendarDate => utcDateOf(new Date(t));
  const notBeforeOf = (t: number): string => new Date(Math.floor((t - 5 * 60_000) / 1000) * 1000).toISOString();

  for (let i = 0; i < P; i++) {
    const traffic: Traffic = i % 10 === 7 || i % 10 === 9 ? 'partial' : 'all';
    const emailIndex = i % 10 === 7 ? i - 1 : i;
    const first = FIRST_NAMES[emailIndex % FIRST_NAMES.length]!;
    const last = LAST_NAMES[Math.floor(emailIndex / FIRST_NAMES.length) % LAST_NAMES.length]!;
    const email = `${first}.${last.replace(/[^A-Za-z]/g, '')}.${emailIndex}@corp${emailIndex % 7}.example.com`.toLowerCase();
    const profileId = env.profileIdOf(email, traffic);
    const streamId = `profile-${profileId}`;
    const routes = traffic === 'partial' ? [ROUTE] : [];
    const extras = extraBase + (i < extraRemainder ? 1 : 0);

    // One generation's events as [time, type, fill] before serial-dependent fields are known.
    type Draft = { t: number; kind: 'issue' | 'renew' | 'resend' | 'toggle' | 'revoke'; expirationDate?: CalendarDate };
    const stream: Planned[] = [];
    let revision = 0;
    const emit = (drafts: Draft[], generation: number, autoRenewAtStart: boolean): void => {
      drafts.sort((a, b) => a.t - b.t);
      let autoRenew = autoRenewAtStart;
      let currentSerial = '';
      let lastT = stream.at(-1)?.t ?? -Infinity;
      for (const d of drafts) {
        const t = Math.max(Math.round(d.t), lastT + 1);
        lastT = t;
        let type: EventType;
        let data: unknown;
        switch (d.kind) {
          case 'issue': {
            currentSerial = serials.next();
            type = 'ProfileIssued';
            data = {
              profileId,
              generation,
              email,
              traffic,
              firstName: first,
              lastName: last,
              expirationDate: d.expirationDate!,
              reason: REASONS[i % REASONS.length]!,
              autoRenew,
              certificate: { serial: currentSerial, notBefore: notBeforeOf(t), notAfter: endOfUtcDay(d.expirationDate!).toISOString(), pem: env.pem },
              routes,
            };
            break;
          }
          case 'renew': {
            const previousSerial = currentSerial;
            currentSerial = serials.next();
            type = 'ProfileRenewed';
            data = {
              previousSerial,
              expirationDate: d.expirationDate!,
              certificate: { serial: currentSerial, notBefore: notBeforeOf(t), notAfter: endOfUtcDay(d.expirationDate!).toISOString(), pem: env.pem },
            };
            break;
          }
          case 'resend':
            type = 'ProfileResent';
            data = { serial: currentSerial, via: rng() < 0.8 ? 'smtp' : 'outbox' };
            break;
          case 'toggle':
            type = autoRenew ? 'AutoRenewDisabled' : 'AutoRenewEnabled';
            autoRenew = !autoRenew;
            data = {};
            break;
          case 'revoke':
            type = 'ProfileRevoked';
            data = { serials: [currentSerial], reason: 'left the company', crlReason: rng() < 0.9 ? 'cessationOfOperation' : 'keyCompromise' };
            revokedSerials++;
            break;
        }
        counts[type] = (counts[type] ?? 0) + 1;
        stream.push({ t, streamId, revision: revision++, type, data });
      }
    };
    const fillers = (n: number, lo: number, hi: number): Draft[] =>
      Array.from({ length: n }, () => ({ t: between(lo, hi), kind: rng() < 0.6 ? 'resend' : 'toggle' }) as Draft);

    if (!reissued(i)) {
      // Issued, used for a while, revoked for good.
      const start = env.now - between(60, 1000) * DAY;
      const expirationDate = dateOf(start + between(30, 365) * DAY);
      const end = Math.min(endOfUtcDay(expirationDate).getTime(), env.now - 60_000);
      const revokedAt = between(start + 0.6 * (end - start), end);
      emit(
        [{ t: start, kind: 'issue', expirationDate }, ...fillers(extras, start + 1000, revokedAt - 1000), { t: revokedAt, kind: 'revoke' }],
        1,
        rng() < 0.3,
      );
    } else {
      // Generation 2 first (it fixes where generation 1 must end): a chain of renewals, each
      // extending the expiration by the original term, ending in the future (5 %: in the past).
      const g1Extras = Math.floor(extras * 0.25);
      const g2Extras = extras - g1Extras;
      const renewals = Math.round(g2Extras * 0.35);
      const term = Math.round(between(30, 120));
      const expired = rng() < 0.05;
      const finalExpiry = utcDateOf(new Date(env.now + (expired ? -between(1, 60) : between(1, term)) * DAY));
      const expiries = Array.from({ length: renewals + 1 }, (_, j) => addDays(finalExpiry, -(renewals - j) * term));
      // Issued `term` days before its first expiration, and never later than two days ago.
      const g2Start = Math.min(endOfUtcDay(expiries[0]!).getTime() - term * DAY, env.now - 2 * DAY);
      const drafts2: Draft[] = [{ t: g2Start, kind: 'issue', expirationDate: expiries[0]! }];
      for (let j = 1; j <= renewals; j++) {
        drafts2.push({ t: endOfUtcDay(expiries[j - 1]!).getTime() - between(1, 9) * DAY, kind: 'renew', expirationDate: expiries[j]! });
      }
      drafts2.push(...fillers(g2Extras - renewals, g2Start + 1000, env.now - 60_000));

      const g1Start = g2Start - between(20, 400) * DAY;
      const g1Expiration = dateOf(g1Start + between(30, 365) * DAY);
      const g1End = Math.min(endOfUtcDay(g1Expiration).getTime(), g2Start - DAY);
      const revokedAt = between(g1Start + 0.6 * (g1End - g1Start), g1End);
      const autoRenew = rng() < 0.3;
      emit(
        [{ t: g1Start, kind: 'issue', expirationDate: g1Expiration }, ...fillers(g1Extras, g1Start + 1000, revokedAt - 1000), { t: revokedAt, kind: 'revoke' }],
        1,
        autoRenew,
      );
      emit(drafts2, 2, autoRenew);
      if (!expired && deleteCandidates.length < 1000 && i % 97 === 3) deleteCandidates.push({ email, traffic });
    }
    if (stream.length !== 2 + extras + (reissued(i) ? 1 : 0)) throw new Error(`internal error: profile ${i} has ${stream.length} events`);
    for (const e of stream) events.push(e);
  }

  // One log in time order, as the gateway would have written it (streams interleave).
  events.sort((a, b) => a.t - b.t || (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : a.revision - b.revision));
  return { events, activeProfiles: reissuedCount, revokedSerials, deleteCandidates, counts, serials: serials.size };
}

// ---- appending a plan, and reading the read models back -------------------------------------------

/** One planned event: its time, its stream and revision, its type and data (metadata is added on append). */
export interface PlannedEvent {
  readonly t: number;
  readonly streamId: string;
  readonly revision: number;
  readonly type: EventType;
  readonly data: unknown;
}

/** Decodes one planned event exactly as a reader of the store would (JSON round trip, upcasters, zod). */
function checkDecodes(e: PlannedEvent, metadata: unknown): void {
  const decoded = decodeStoredEvent({
    streamId: e.streamId,
    revision: BigInt(e.revision),
    position: 1n,
    type: e.type,
    schemaVersion: CURRENT_SCHEMAS[e.type].version,
    data: JSON.parse(JSON.stringify(e.data)) as unknown,
    metadata: JSON.parse(JSON.stringify(metadata)) as unknown,
  });
  if (E.isLeft(decoded)) throw new Error(`seeded ${e.type} does not decode: ${describeDecodeError(decoded.left)}`);
}

/**
 * Appends the planned events in order through the store's append path, 10,000 per transaction,
 * each stream at its planned revision; the first event of each type and every 1,000th are decoded
 * first as a reader would. Returns the milliseconds spent in the appends themselves.
 */
export function appendPlanned(store: SqliteEventStore, events: readonly PlannedEvent[], log: (line: string) => void): number {
  const batchSize = 10_000;
  const seenTypes = new Set<string>();
  let appendMs = 0;
  for (let from = 0; from < events.length; from += batchSize) {
    const slice = events.slice(from, from + batchSize);
    const batch: StreamAppend[] = slice.map((e, k) => {
      const metadata = { actor: 'bench', at: new Date(e.t).toISOString(), tool: TOOL_NAME };
      if (!seenTypes.has(e.type) || (from + k) % 1000 === 0) {
        seenTypes.add(e.type);
        checkDecodes(e, metadata);
      }
      const event: NewEvent = { type: e.type, schemaVersion: CURRENT_SCHEMAS[e.type].version, data: e.data, metadata };
      return { streamId: e.streamId, expectedRevision: e.revision === 0 ? 'no_stream' : BigInt(e.revision - 1), events: [event] };
    });
    const t0 = performance.now();
    store.appendManySync(batch);
    appendMs += performance.now() - t0;
    if ((from / batchSize) % 20 === 19) log(`  appended ${(from + slice.length).toLocaleString('en-US')} events`);
  }
  return appendMs;
}

/** The read-model tables, in the order the digest reads them. */
export const PROJECTION_TABLES = ['users', 'certificates', 'crl_entries', 'audit_log', 'gateway', 'projection_checkpoint'];

/** A digest of every read-model table: two builds of the read models are the same if their digests are. */
export function projectionDigest(db: Database.Database): string {
  const hash = createHash('sha256');
  for (const table of PROJECTION_TABLES) {
    hash.update(`\n#${table}\n`);
    for (const row of db.prepare(`SELECT * FROM ${table} ORDER BY 1`).raw(true).iterate() as IterableIterator<unknown[]>) {
      for (const cell of row) hash.update(Buffer.isBuffer(cell) ? `x${cell.toString('hex')}|` : `${typeof cell}:${String(cell)}|`);
      hash.update('\n');
    }
  }
  return hash.digest('hex');
}
