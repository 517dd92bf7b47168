// ov_user_audit: read-only lenses over the read models. Each lens is written once, against
// AuditView: now, it is the SQLite projection store (its tables and indexes, caught up when the
// ledger was opened); with --as-of, it is an in-memory fold of the events up to that instant
// (projections/as-of-view.ts). Nothing here appends an event or writes a file.
import * as E from 'fp-ts/lib/Either.js';
import type { EventType } from '../../domain/events.js';
import { decodeStoredEvent, describeDecodeError } from '../../domain/upcasters.js';
import { addDays, daysBetween, TRAFFIC_MODES, utcDateOf, type CalendarDate, type Email, type Traffic } from '../../domain/values.js';
import { describeAuditRecord } from '../../projections/audit-history.js';
import { AsOfView, type AuditView } from '../../projections/as-of-view.js';
import type { UserRow } from '../../projections/user-list.js';
import type { Ledger } from '../ledger.js';
import { profileStreamId } from './profile-stream.js';

export type AuditLens =
  | { readonly lens: 'summary'; readonly days?: number | undefined }
  | { readonly lens: 'expiring'; readonly days?: number | undefined }
  | { readonly lens: 'renewed'; readonly since?: CalendarDate | undefined; readonly until?: CalendarDate | undefined }
  | { readonly lens: 'revoked'; readonly since?: CalendarDate | undefined }
  | { readonly lens: 'history'; readonly email: Email; readonly traffic?: Traffic | undefined }
  | { readonly lens: 'stuck' };

/** A CRL whose next update is closer than this gets a warning: past it, OpenVPN refuses everyone. */
export const CRL_WARNING_DAYS = 14;

export interface AuditSummary {
  readonly lens: 'summary';
  /** The instant answered for (--as-of), or null for now. */
  readonly asOf: string | null;
  readonly today: CalendarDate;
  readonly windowDays: number;
  /** Profiles whose current generation is active. */
  readonly active: number;
  /** Active profiles expiring from today to today + windowDays, inclusive. */
  readonly expiring: number;
  /** Profiles whose current generation is revoked. */
  readonly revoked: number;
  /** Profiles renewed at least once (in any generation). */
  readonly renewedProfiles: number;
  /** ProfileRenewed events. */
  readonly renewals: number;
  /** Active profiles whose last renewal attempt failed and that have not been renewed since. */
  readonly stuck: number;
  readonly crlEntries: number;
  /** The CRL last written; null under --as-of (CRL publications are not events) or before the first. */
  readonly crl: { readonly number: string; readonly thisUpdate: string; readonly nextUpdate: string; readonly daysLeft: number } | null;
  readonly warnings: readonly string[];
}

export interface ExpiringProfile {
  readonly email: string;
  readonly traffic: Traffic;
  readonly firstName: string;
  readonly lastName: string;
  readonly expirationDate: CalendarDate;
  readonly daysLeft: number;
  readonly autoRenew: boolean;
  readonly serial: string;
  readonly renewals: number;
}

export interface Renewal {
  readonly email: string;
  readonly traffic: Traffic;
  readonly at: string;
  readonly actor: string;
  readonly previousSerial: string;
  readonly serial: string;
  readonly expirationDate: CalendarDate;
}

export interface Revocation {
  readonly email: string;
  readonly traffic: Traffic;
  readonly at: string;
  readonly actor: string;
  readonly serials: readonly string[];
  readonly reason: string;
  readonly crlReason: string;
}

export interface HistoryEvent {
  readonly position: string;
  readonly type: EventType;
  readonly at: string;
  readonly actor: string;
  readonly email: string;
  readonly traffic: Traffic;
  /** The event's data; certificates reduced to serial and notAfter. */
  readonly data: Record<string, unknown>;
  /** One line of what changed. */
  readonly description: string;
}

export interface StuckProfile {
  readonly email: string;
  readonly traffic: Traffic;
  readonly expirationDate: CalendarDate;
  readonly autoRenew: boolean;
  readonly serial: string;
  readonly failedAt: string;
  readonly reason: string;
  readonly lastLogLine: string;
}

interface Framed {
  readonly asOf: string | null;
  readonly today: CalendarDate;
}

export type AuditResult =
  | AuditSummary
  | (Framed & { readonly lens: 'expiring'; readonly windowDays: number; readonly to: CalendarDate; readonly profiles: ExpiringProfile[] })
  | (Framed & { readonly lens: 'renewed'; readonly since: CalendarDate | null; readonly until: CalendarDate | null; readonly renewals: Renewal[] })
  | (Framed & { readonly lens: 'revoked'; readonly since: CalendarDate | null; readonly revocations: Revocation[] })
  | (Framed & { readonly lens: 'history'; readonly email: Email; readonly traffic: readonly Traffic[]; readonly events: HistoryEvent[] })
  | (Framed & { readonly lens: 'stuck'; readonly profiles: StuckProfile[] });

/** What every lens reads: a view and the facts around it. */
export interface AuditSource {
  readonly view: AuditView;
  /** The --as-of instant, or undefined for now. */
  readonly asOf: Date | undefined;
  /** The clock's instant (OVL_NOW honoured); the CRL's distance is measured from it. */
  readonly now: Date;
  readonly windowDays: number;
  /** The CRL last written, when answering for now. */
  readonly crl: { readonly number: bigint; readonly thisUpdate: Date; readonly nextUpdate: Date } | undefined;
  readonly streamIdOf: (email: Email, traffic: Traffic) => string;
}

const DAY_MS = 86_400_000;

/** Answers one lens from the read models, now or as of an instant. */
export async function audit(ledger: Ledger, lens: AuditLens, asOf?: Date): Promise<AuditResult> {
  const now = ledger.clock.now();
  const streamIdOf = (email: Email, traffic: Traffic) => profileStreamId(ledger.profileIdOf(email, traffic));
  let view: AuditView = ledger.projections;
  if (asOf !== undefined) view = await readAsOf(ledger, asOf, keepAuditFor(lens, streamIdOf));
  return answer(lens, {
    view,
    asOf,
    now,
    windowDays: ledger.settings.renewalWindowDays,
    crl: asOf === undefined ? ledger.crl.lastPublication() : undefined,
    streamIdOf,
  });
}

/** Pages through the whole log in global order, folding the events up to the instant. */
async function readAsOf(ledger: Ledger, instant: Date, keepAudit: (type: EventType, streamId: string) => boolean): Promise<AsOfView> {
  const view = new AsOfView(instant, { keepAudit });
  let after = 0n;
  for (;;) {
    const page = await ledger.store.readAll({ after, limit: 5_000 });
    const last = page.at(-1);
    if (last === undefined) return view;
    for (const stored of page) {
      const decoded = decodeStoredEvent(stored);
      if (E.isLeft(decoded)) {
        throw new Error(`event at position ${stored.position} (${stored.streamId}): ${describeDecodeError(decoded.left)}`);
      }
      view.apply(decoded.right);
    }
    after = last.position;
  }
}

/** Only the audit records the lens reads are kept in memory. */
function keepAuditFor(lens: AuditLens, streamIdOf: AuditSource['streamIdOf']): (type: EventType, streamId: string) => boolean {
  switch (lens.lens) {
    case 'renewed':
      return (type) => type === 'ProfileRenewed';
    case 'revoked':
      return (type) => type === 'ProfileRevoked';
    case 'history': {
      const streams = new Set(trafficModes(lens).map((t) => streamIdOf(lens.email, t)));
      return (_type, streamId) => streams.has(streamId);
    }
    default:
      return () => false;
  }
}

const trafficModes = (lens: { readonly traffic?: Traffic | undefined }): Traffic[] => (lens.traffic ? [lens.traffic] : [...TRAFFIC_MODES]);

/** The lenses themselves: pure over the source. */
export function answer(lens: AuditLens, source: AuditSource): AuditResult {
  const { view } = source;
  const frame: Framed = {
    asOf: source.asOf?.toISOString() ?? null,
    today: utcDateOf(source.asOf ?? source.now),
  };
  switch (lens.lens) {
    case 'summary': {
      const windowDays = lens.days ?? source.windowDays;
      const counts = view.userCounts();
      const renewals = view.renewalCounts();
      const crl = source.asOf === undefined && source.crl ? source.crl : undefined;
      const daysLeft = crl ? Math.floor((crl.nextUpdate.getTime() - source.now.getTime()) / DAY_MS) : 0;
      const warnings: string[] = [];
      if (source.asOf === undefined && crl === undefined) warnings.push('no CRL has been written yet: OpenVPN cannot start with crl-verify; run ov_init');
      if (crl && crl.nextUpdate.getTime() - source.now.getTime() < CRL_WARNING_DAYS * DAY_MS) {
        warnings.push(
          crl.nextUpdate.getTime() <= source.now.getTime()
            ? `the CRL's next update (${crl.nextUpdate.toISOString()}) has passed: OpenVPN refuses every client; run ov_user_renew_due to re-sign it`
            : `the CRL's next update (${crl.nextUpdate.toISOString()}) is less than ${CRL_WARNING_DAYS} days away: after it OpenVPN refuses every client; run ov_user_renew_due to re-sign it`,
        );
      }
      return {
        lens: 'summary',
        ...frame,
        windowDays,
        active: counts.active,
        expiring: view.activeExpiringBetween(frame.today, addDays(frame.today, windowDays)).length,
        revoked: counts.revoked,
        renewedProfiles: renewals.renewedProfiles,
        renewals: renewals.renewals,
        stuck: counts.stuck,
        crlEntries: view.crlEntryCount(),
        crl: crl
          ? { number: crl.number.toString(), thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate.toISOString(), daysLeft }
          : null,
        warnings,
      };
    }
    case 'expiring': {
      const windowDays = lens.days ?? source.windowDays;
      const to = addDays(frame.today, windowDays);
      const profiles = view.activeExpiringBetween(frame.today, to).map((u) => expiringOf(u, frame.today));
      return { lens: 'expiring', ...frame, windowDays, to, profiles };
    }
    case 'renewed': {
      const renewals = view
        .auditOfTypeWithPair('ProfileRenewed', { from: lens.since, before: lens.until && addDays(lens.until, 1) })
        .map((r) => ({
          email: r.email,
          traffic: r.traffic,
          at: r.at,
          actor: r.actor,
          previousSerial: String(r.details['previousSerial']),
          serial: String(r.details['serial']),
          expirationDate: String(r.details['expirationDate']),
        }));
      return { lens: 'renewed', ...frame, since: lens.since ?? null, until: lens.until ?? null, renewals };
    }
    case 'revoked': {
      const revocations = view.auditOfTypeWithPair('ProfileRevoked', { from: lens.since }).map((r) => ({
        email: r.email,
        traffic: r.traffic,
        at: r.at,
        actor: r.actor,
        serials: r.details['serials'] as string[],
        reason: String(r.details['reason']),
        crlReason: String(r.details['crlReason']),
      }));
      return { lens: 'revoked', ...frame, since: lens.since ?? null, revocations };
    }
    case 'history': {
      const traffic = trafficModes(lens);
      const events = traffic
        .flatMap((t) =>
          view.auditOfStream(source.streamIdOf(lens.email, t)).map((r) => ({
            position: r.position,
            event: {
              position: r.position.toString(),
              type: r.type,
              at: r.at,
              actor: r.actor,
              email: lens.email,
              traffic: t,
              data: r.details,
              description: describeAuditRecord(r),
            },
          })),
        )
        .sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0))
        .map((x) => x.event);
      return { lens: 'history', ...frame, email: lens.email, traffic, events };
    }
    case 'stuck': {
      const profiles = view.stuckUsers().map((u) => ({
        email: u.email,
        traffic: u.traffic,
        expirationDate: u.expirationDate,
        autoRenew: u.autoRenew,
        serial: u.currentSerial,
        failedAt: u.lastRenewalFailure?.at ?? '',
        reason: u.lastRenewalFailure?.reason ?? '',
        lastLogLine: u.lastRenewalFailure?.lastLogLine ?? '',
      }));
      return { lens: 'stuck', ...frame, profiles };
    }
  }
}

function expiringOf(u: UserRow, today: CalendarDate): ExpiringProfile {
  return {
    email: u.email,
    traffic: u.traffic,
    firstName: u.firstName,
    lastName: u.lastName,
    expirationDate: u.expirationDate,
    daysLeft: daysBetween(today, u.expirationDate),
    autoRenew: u.autoRenew,
    serial: u.currentSerial,
    renewals: u.renewals,
  };
}
