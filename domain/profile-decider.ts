// The rules of one VPN profile's lifecycle, as a decider over plain data:
//   decide(command, state) → the new events, or a typed error
//   evolve(state, event)   → the next state
// Everything that varies between runs (today's date, the instant, serials, certificates) arrives
// inside the command, so the same inputs always give the same answer.
import * as E from 'fp-ts/lib/Either.js';
import type { IssuedCertificate, ProfileEvent } from './events.js';
import { type CalendarDate, type CrlReason, type Email, type Traffic, addDays } from './values.js';

export interface LiveCertificate {
  readonly serial: string;
  readonly notAfter: string;
}

export interface ActiveProfile {
  readonly profileId: string;
  readonly generation: number;
  readonly email: Email;
  readonly traffic: Traffic;
  readonly firstName: string;
  readonly lastName: string;
  readonly expirationDate: CalendarDate;
  /** Days from first issue to first expiration: the term a renewal extends by. */
  readonly originalTermDays: number;
  readonly autoRenew: boolean;
  /** The newest certificate: what a resend delivers and a renewal replaces. */
  readonly currentSerial: string;
  /** Every certificate of this generation; a renewal keeps the previous one valid until it expires. */
  readonly certificates: readonly LiveCertificate[];
  readonly routes: readonly string[];
  /** Certificates signed for a renewal that has not completed (yet), by serial. */
  readonly pendingRenewals: readonly PendingRenewal[];
}

export interface PendingRenewal {
  readonly serial: string;
  readonly expirationDate: CalendarDate;
  readonly certificate: IssuedCertificate;
}

export type ProfileState =
  | { readonly status: 'never-issued' }
  | { readonly status: 'active'; readonly profile: ActiveProfile }
  | { readonly status: 'revoked'; readonly generation: number; readonly profileId: string };

export const initialState = (): ProfileState => ({ status: 'never-issued' });

export type ProfileCommand =
  | {
      readonly type: 'IssueProfile';
      readonly profileId: string;
      readonly email: Email;
      readonly traffic: Traffic;
      readonly firstName: string;
      readonly lastName: string;
      readonly expirationDate: CalendarDate;
      readonly reason: string;
      readonly autoRenew: boolean;
      readonly routes: readonly string[];
      readonly certificate: IssuedCertificate;
      readonly today: CalendarDate;
    }
  | {
      readonly type: 'RevokeProfile';
      readonly reason: string;
      readonly crlReason: CrlReason;
      /** Certificates already expired at this instant can no longer connect and need no CRL entry. */
      readonly now: Date;
    }
  | { readonly type: 'RecordResend'; readonly via: 'smtp' | 'outbox' }
  | {
      readonly type: 'RecordDeliveryFailure';
      readonly serial: string;
      readonly delivery: 'issued' | 'resent' | 'renewed';
      readonly error: string;
    }
  | { readonly type: 'EnableAutoRenew' }
  | { readonly type: 'DisableAutoRenew' }
  | {
      /** Record the certificate signed for a renewal, before it is mailed. */
      readonly type: 'PrepareRenewal';
      readonly certificate: IssuedCertificate;
      readonly today: CalendarDate;
      readonly windowDays: number;
    }
  | {
      /** The renewed profile was delivered: it becomes the current one (today/windowDays are not re-checked). */
      readonly type: 'CompleteRenewal';
      readonly serial: string;
      readonly today: CalendarDate;
      readonly windowDays: number;
    }
  | {
      readonly type: 'RecordRenewalFailure';
      readonly reason: string;
      readonly lastLogLine: string;
      readonly abandonedSerial: string | undefined;
    };

export type ProfileError =
  | {
      readonly kind: 'ProfileAlreadyActive';
      readonly email: Email;
      readonly traffic: Traffic;
      readonly expirationDate: CalendarDate;
    }
  | { readonly kind: 'NoActiveProfile' }
  | { readonly kind: 'ExpirationNotAfterToday'; readonly expirationDate: CalendarDate; readonly today: CalendarDate }
  | { readonly kind: 'AutoRenewOff' }
  | { readonly kind: 'NotDueForRenewal'; readonly expirationDate: CalendarDate; readonly dueFrom: CalendarDate }
  | { readonly kind: 'UnknownRenewalCertificate'; readonly serial: string };

export type Decision = E.Either<ProfileError, ProfileEvent[]>;

/** The issue rules alone, so a use case can refuse before it spends a key generation. */
export function checkIssuable(
  state: ProfileState,
  request: { readonly expirationDate: CalendarDate; readonly today: CalendarDate },
): E.Either<ProfileError, true> {
  if (state.status === 'active') {
    const { email, traffic, expirationDate } = state.profile;
    return E.left({ kind: 'ProfileAlreadyActive', email, traffic, expirationDate });
  }
  if (request.expirationDate <= request.today) {
    return E.left({ kind: 'ExpirationNotAfterToday', expirationDate: request.expirationDate, today: request.today });
  }
  return E.right(true);
}

/**
 * When an auto-renewing profile is due, and the expiration its renewal gets: the current one
 * extended by the profile's original term, or, if the job has not run for longer than a term,
 * a full term from today.
 */
export function renewalTerms(
  state: ProfileState,
  request: { readonly today: CalendarDate; readonly windowDays: number },
): E.Either<ProfileError, { readonly expirationDate: CalendarDate }> {
  if (state.status !== 'active') return E.left({ kind: 'NoActiveProfile' });
  const p = state.profile;
  if (!p.autoRenew) return E.left({ kind: 'AutoRenewOff' });
  const dueFrom = addDays(p.expirationDate, -request.windowDays);
  if (request.today < dueFrom) return E.left({ kind: 'NotDueForRenewal', expirationDate: p.expirationDate, dueFrom });
  const extended = addDays(p.expirationDate, p.originalTermDays);
  return E.right({ expirationDate: extended > request.today ? extended : addDays(request.today, p.originalTermDays) });
}

export function nextGeneration(state: ProfileState): number {
  return state.status === 'never-issued' ? 1 : state.status === 'revoked' ? state.generation + 1 : state.profile.generation + 1;
}

export function decide(command: ProfileCommand, state: ProfileState): Decision {
  if (command.type === 'IssueProfile') {
    const allowed = checkIssuable(state, command);
    if (E.isLeft(allowed)) return allowed;
    return E.right([
      {
        type: 'ProfileIssued',
        data: {
          profileId: command.profileId,
          generation: nextGeneration(state),
          email: command.email,
          traffic: command.traffic,
          firstName: command.firstName,
          lastName: command.lastName,
          expirationDate: command.expirationDate,
          reason: command.reason,
          autoRenew: command.autoRenew,
          certificate: command.certificate,
          routes: command.traffic === 'partial' ? [...command.routes] : [],
        },
      },
    ]);
  }

  if (state.status !== 'active') return E.left({ kind: 'NoActiveProfile' });
  const profile = state.profile;

  switch (command.type) {
    case 'RevokeProfile': {
      const nowIso = command.now.toISOString();
      const serials = profile.certificates.filter((c) => c.notAfter >= nowIso).map((c) => c.serial);
      // A profile whose certificates have all expired still leaves the user list when deleted;
      // it just needs no CRL entry. Record the current serial so the revocation names what ended.
      return E.right([
        {
          type: 'ProfileRevoked',
          data: {
            serials: serials.length > 0 ? serials : [profile.currentSerial],
            reason: command.reason,
            crlReason: command.crlReason,
          },
        },
      ]);
    }
    case 'RecordResend':
      return E.right([{ type: 'ProfileResent', data: { serial: profile.currentSerial, via: command.via } }]);
    case 'RecordDeliveryFailure':
      return E.right([
        {
          type: 'ProfileDeliveryFailed',
          data: { serial: command.serial, delivery: command.delivery, error: command.error },
        },
      ]);
    case 'EnableAutoRenew':
      return E.right(profile.autoRenew ? [] : [{ type: 'AutoRenewEnabled', data: {} }]);
    case 'DisableAutoRenew':
      return E.right(profile.autoRenew ? [{ type: 'AutoRenewDisabled', data: {} }] : []);
    case 'PrepareRenewal': {
      const terms = renewalTerms(state, command);
      if (E.isLeft(terms)) return terms;
      return E.right([
        { type: 'RenewalCertificateIssued', data: { expirationDate: terms.right.expirationDate, certificate: command.certificate } },
      ]);
    }
    case 'CompleteRenewal': {
      // The renewed profile has been mailed: it becomes the current one even if auto-renew was
      // switched off (or the terms changed) while the mail was out. Only the signed certificate counts.
      const pending = profile.pendingRenewals.find((r) => r.serial === command.serial);
      if (!pending) return E.left({ kind: 'UnknownRenewalCertificate', serial: command.serial });
      return E.right([
        {
          type: 'ProfileRenewed',
          data: { previousSerial: profile.currentSerial, expirationDate: pending.expirationDate, certificate: pending.certificate },
        },
      ]);
    }
    case 'RecordRenewalFailure':
      return E.right([
        {
          type: 'RenewalFailed',
          data: {
            reason: command.reason,
            lastLogLine: command.lastLogLine,
            ...(command.abandonedSerial === undefined ? {} : { abandonedSerial: command.abandonedSerial }),
          },
        },
      ]);
  }
}

export function evolve(state: ProfileState, event: ProfileEvent): ProfileState {
  switch (event.type) {
    case 'ProfileIssued': {
      const d = event.data;
      return {
        status: 'active',
        profile: {
          profileId: d.profileId,
          generation: d.generation,
          email: d.email,
          traffic: d.traffic,
          firstName: d.firstName,
          lastName: d.lastName,
          expirationDate: d.expirationDate,
          originalTermDays: termDays(d.certificate.notBefore, d.certificate.notAfter),
          autoRenew: d.autoRenew,
          currentSerial: d.certificate.serial,
          certificates: [{ serial: d.certificate.serial, notAfter: d.certificate.notAfter }],
          routes: d.routes,
          pendingRenewals: [],
        },
      };
    }
    case 'ProfileRenewed': {
      if (state.status !== 'active') return state;
      const d = event.data;
      return {
        status: 'active',
        profile: {
          ...state.profile,
          expirationDate: d.expirationDate,
          currentSerial: d.certificate.serial,
          certificates: withCertificate(state.profile.certificates, d.certificate),
          pendingRenewals: state.profile.pendingRenewals.filter((r) => r.serial !== d.certificate.serial),
        },
      };
    }
    case 'ProfileRevoked':
      if (state.status !== 'active') return state;
      return { status: 'revoked', generation: state.profile.generation, profileId: state.profile.profileId };
    case 'AutoRenewEnabled':
    case 'AutoRenewDisabled':
      if (state.status !== 'active') return state;
      return { status: 'active', profile: { ...state.profile, autoRenew: event.type === 'AutoRenewEnabled' } };
    case 'RenewalCertificateIssued': {
      if (state.status !== 'active') return state;
      const d = event.data;
      return {
        status: 'active',
        profile: {
          ...state.profile,
          // Signed means it could connect: a delete must revoke it even if it never became current.
          certificates: withCertificate(state.profile.certificates, d.certificate),
          pendingRenewals: [
            ...state.profile.pendingRenewals,
            { serial: d.certificate.serial, expirationDate: d.expirationDate, certificate: d.certificate },
          ],
        },
      };
    }
    case 'RenewalFailed': {
      if (state.status !== 'active') return state;
      const abandoned = event.data.abandonedSerial;
      return abandoned === undefined
        ? state
        : { status: 'active', profile: { ...state.profile, pendingRenewals: state.profile.pendingRenewals.filter((r) => r.serial !== abandoned) } };
    }
    case 'ProfileResent':
    case 'ProfileDeliveryFailed':
      return state;
  }
}

function withCertificate(list: readonly LiveCertificate[], c: IssuedCertificate): readonly LiveCertificate[] {
  return list.some((x) => x.serial === c.serial) ? list : [...list, { serial: c.serial, notAfter: c.notAfter }];
}

/**
 * How far before the moment of issue a client certificate's notBefore lies (the clock-skew
 * allowance of commands/use-cases/issue-client-profile.ts).
 */
const NOT_BEFORE_BACKDATING_MS = 5 * 60_000;

/**
 * Calendar days from the issue day to the expiration day. notAfter is the last second of the
 * expiration day; notBefore is the moment of issue minus the backdating, which for a profile issued
 * in the first minutes of a UTC day lies on the previous day, so the issue day is taken from
 * notBefore + the backdating (flooring the difference of the instants would count one day too many).
 */
function termDays(notBefore: string, notAfter: string): number {
  // Day numbers rather than date strings (utcDateOf, daysBetween): the same count, without two
  // Date objects and three ISO strings for every issue a restore or a backup replays.
  const issueDay = utcDayNumber(Date.parse(notBefore) + NOT_BEFORE_BACKDATING_MS);
  return Math.max(1, utcDayNumber(Date.parse(notAfter)) - issueDay);
}

/** Days from 1970-01-01 to the UTC day of the instant `ms`. */
const utcDayNumber = (ms: number): number => Math.floor(ms / 86_400_000);

export function stateFrom(events: readonly ProfileEvent[]): ProfileState {
  return events.reduce(evolve, initialState());
}

