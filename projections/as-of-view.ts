// The read models as they stood at a past instant, folded in memory from the log by the same pure
// evolve functions the SQLite store uses (user list, CRL entries, audit history), so that
// `ov_user_audit --as-of` answers every lens exactly as the current tables would have then.
//
// AuditView is what the audit lenses ask of a read model. The SQLite projection store answers it
// for now (from its tables and indexes); AsOfView answers it for any instant. Pure: no I/O, no
// clock; the caller reads the log and hands the events in, in global order.
import { isGatewayEvent, type Envelope, type EventType, type ProfileEvent } from '../domain/events.js';
import type { CalendarDate, Traffic } from '../domain/values.js';
import { auditRecordOf, type AuditRecord } from './audit-history.js';
import { crlEntriesFrom, type CrlEntry } from './crl-entries.js';
import { evolveUserRow, type UserRow } from './user-list.js';

/** An audit record of a profile stream, with the pair the stream belongs to. */
export type PairAuditRecord = AuditRecord & { readonly email: string; readonly traffic: Traffic };

/** Bounds on an event's `at`, compared as strings: from <= at < before. A bare date works as a bound. */
export interface AtRange {
  readonly from?: string | undefined;
  readonly before?: string | undefined;
}

export interface UserCounts {
  /** Profiles whose current generation is active. */
  readonly active: number;
  /** Profiles whose current generation is revoked. */
  readonly revoked: number;
  /** Active profiles whose last renewal attempt failed and that have not been renewed since. */
  readonly stuck: number;
}

export interface RenewalCounts {
  /** ProfileRenewed events. */
  readonly renewals: number;
  /** Profile streams (pairs) with at least one ProfileRenewed event, in any generation. */
  readonly renewedProfiles: number;
}

/** The questions the audit lenses ask; answered by SqliteProjectionStore (now) and AsOfView (then). */
export interface AuditView {
  userCounts(): UserCounts;
  /** Active profiles whose expiration date lies in [from, to], by expiration date, email, traffic. */
  activeExpiringBetween(from: CalendarDate, to: CalendarDate): UserRow[];
  /** Active profiles with an unresolved renewal failure, by failure time, email, traffic. */
  stuckUsers(): UserRow[];
  renewalCounts(): RenewalCounts;
  /** Events of one type within the range, in log order, with the pair each belongs to. */
  auditOfTypeWithPair(type: EventType, range: AtRange): PairAuditRecord[];
  /** Every event of one stream in log order. */
  auditOfStream(streamId: string): AuditRecord[];
  crlEntryCount(): number;
}

/** Did the event happen at or before the instant? Compared as instants, whatever the string's precision. */
export function happenedBy(at: string, instant: Date): boolean {
  return Date.parse(at) <= instant.getTime();
}

const inRange = (at: string, range: AtRange): boolean =>
  (range.from === undefined || at >= range.from) && (range.before === undefined || at < range.before);

const byKeys =
  <T>(...keys: ((x: T) => string)[]) =>
  (a: T, b: T): number => {
    for (const key of keys) {
      const ka = key(a);
      const kb = key(b);
      if (ka !== kb) return ka < kb ? -1 : 1;
    }
    return 0;
  };

export interface AsOfViewOptions {
  /**
   * Which audit records to keep in memory (counts and user rows are always kept). A lens needs only
   * one event type or one pair's streams; keeping every record of a million-event log is not free.
   */
  readonly keepAudit?: (type: EventType, streamId: string) => boolean;
}

export class AsOfView implements AuditView {
  private readonly users = new Map<string, UserRow>();
  private readonly crl = new Map<string, CrlEntry>();
  private readonly audit: AuditRecord[] = [];
  private renewals = 0;
  private readonly renewedStreams = new Set<string>();
  private readonly keepAudit: (type: EventType, streamId: string) => boolean;

  constructor(
    /** Events after this instant are ignored. */
    readonly instant: Date,
    options: AsOfViewOptions = {},
  ) {
    this.keepAudit = options.keepAudit ?? (() => true);
  }

  /**
   * Folds one event; call in global (position) order. An event whose `at` lies after the instant is
   * skipped, even when later events are not: a clock set back (OVL_NOW) can write them out of order.
   * Returns whether the event was applied.
   */
  apply(event: Envelope): boolean {
    if (!happenedBy(event.metadata.at, this.instant)) return false;
    if (this.keepAudit(event.type, event.streamId)) this.audit.push(auditRecordOf(event));
    // The gateway stream's own events (initialisation, networks, server certificate) concern no profile.
    if (isGatewayEvent(event)) return true;
    const profileEvent = event as Envelope<ProfileEvent>;
    const row = evolveUserRow(this.users.get(event.streamId), profileEvent);
    if (row) this.users.set(event.streamId, row);
    for (const entry of crlEntriesFrom(profileEvent)) {
      if (!this.crl.has(entry.serial)) this.crl.set(entry.serial, entry);
    }
    if (profileEvent.type === 'ProfileRenewed') {
      this.renewals++;
      this.renewedStreams.add(event.streamId);
    }
    return true;
  }

  // ---- AuditView ---------------------------------------------------------------------------

  userCounts(): UserCounts {
    let active = 0;
    let revoked = 0;
    let stuck = 0;
    for (const u of this.users.values()) {
      if (u.status === 'active') {
        active++;
        if (u.lastRenewalFailure) stuck++;
      } else revoked++;
    }
    return { active, revoked, stuck };
  }

  activeExpiringBetween(from: CalendarDate, to: CalendarDate): UserRow[] {
    return [...this.users.values()]
      .filter((u) => u.status === 'active' && u.expirationDate >= from && u.expirationDate <= to)
      .sort(byKeys((u) => u.expirationDate, (u) => u.email, (u) => u.traffic));
  }

  stuckUsers(): UserRow[] {
    return [...this.users.values()]
      .filter((u) => u.status === 'active' && u.lastRenewalFailure !== null)
      .sort(byKeys((u) => u.lastRenewalFailure?.at ?? '', (u) => u.email, (u) => u.traffic));
  }

  renewalCounts(): RenewalCounts {
    return { renewals: this.renewals, renewedProfiles: this.renewedStreams.size };
  }

  auditOfTypeWithPair(type: EventType, range: AtRange): PairAuditRecord[] {
    const out: PairAuditRecord[] = [];
    for (const r of this.audit) {
      if (r.type !== type || !inRange(r.at, range)) continue;
      const user = this.users.get(r.streamId);
      if (user) out.push({ ...r, email: user.email, traffic: user.traffic });
    }
    return out;
  }

  auditOfStream(streamId: string): AuditRecord[] {
    return this.audit.filter((r) => r.streamId === streamId);
  }

  crlEntryCount(): number {
    return this.crl.size;
  }

  /** The user rows as of the instant, in (email, traffic) order; for tests and what-if scripts. */
  userRows(): UserRow[] {
    return [...this.users.values()].sort(byKeys((u) => u.email, (u) => u.traffic));
  }

  /** The CRL's entries as of the instant, in revocation order. */
  crlEntries(): CrlEntry[] {
    return [...this.crl.values()];
  }
}

/** The read models as of `instant`, from events given in global order. */
export function asOfView(events: Iterable<Envelope>, instant: Date, options: AsOfViewOptions = {}): AsOfView {
  const view = new AsOfView(instant, options);
  for (const event of events) view.apply(event);
  return view;
}
