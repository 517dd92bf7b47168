// The rule book of automatic renewal: when a profile is due, what its renewal expires on, and
// that a signed certificate is always on record before it can leave the gateway.
import { describe, expect, it } from 'vitest';
import * as E from 'fp-ts/lib/Either.js';
import { renewalTerms, stateFrom } from '../../domain/profile-decider.js';
import { given } from '../support/decider-spec.js';
import { certificate, issued, renewed, revoked } from './profile-fixtures.js';

// Issued on 2026-11-01 (fixtures), expiring 2027-12-31: a 425-day term.
const autoRenewing = issued({ autoRenew: true, expirationDate: '2027-12-31', certificate: certificate('11', '2027-12-31T23:59:59.000Z') });
const window = { today: '2027-12-25', windowDays: 10 } as const;
const prepared = (serial: string, expirationDate: string) => ({
  type: 'RenewalCertificateIssued' as const,
  data: { expirationDate, certificate: certificate(serial, `${expirationDate}T23:59:59.000Z`) },
});

describe('when a profile is due', () => {
  it('given auto-renew on and expiry inside the window, then the renewal extends it by its original term', () => {
    expect(renewalTerms(stateFrom([autoRenewing]), window)).toEqual(E.right({ expirationDate: '2029-02-28' }));
  });

  it('given expiry outside the window, then it is not due yet', () => {
    expect(renewalTerms(stateFrom([autoRenewing]), { today: '2027-12-20', windowDays: 10 })).toMatchObject(
      E.left({ kind: 'NotDueForRenewal', dueFrom: '2027-12-21' }),
    );
  });

  it('given auto-renew off, then it is never due', () => {
    expect(renewalTerms(stateFrom([issued()]), window)).toEqual(E.left({ kind: 'AutoRenewOff' }));
  });

  it('given a revoked profile, then it is never renewed', () => {
    expect(renewalTerms(stateFrom([autoRenewing, revoked(['11'])]), window)).toEqual(E.left({ kind: 'NoActiveProfile' }));
  });

  it('given a renewal already done, then a second run the same day finds nothing due', () => {
    const history = [autoRenewing, prepared('22', '2029-02-28'), renewed('22', '11', '2029-02-28T23:59:59.000Z')];
    expect(renewalTerms(stateFrom(history), window)).toMatchObject(E.left({ kind: 'NotDueForRenewal' }));
  });

  it('given a job stopped for longer than a term, then the renewal runs a full term from today', () => {
    expect(renewalTerms(stateFrom([autoRenewing]), { today: '2029-06-01', windowDays: 10 })).toEqual(E.right({ expirationDate: '2030-07-31' }));
  });
});

describe('renewing', () => {
  it('given a due profile, when a renewal is prepared, then the signed certificate is recorded with the new expiry', () => {
    given([autoRenewing])
      .when({ type: 'PrepareRenewal', certificate: certificate('22', '2029-02-28T23:59:59.000Z'), ...window })
      .then([prepared('22', '2029-02-28')]);
  });

  it('given a prepared renewal, when it completes, then ProfileRenewed names the previous and the new serial', () => {
    given([autoRenewing, prepared('22', '2029-02-28')])
      .when({ type: 'CompleteRenewal', serial: '22', ...window })
      .then([renewed('22', '11', '2029-02-28T23:59:59.000Z')]);
  });

  it('given no prepared certificate, when a renewal completes, then it is refused', () => {
    given([autoRenewing]).when({ type: 'CompleteRenewal', serial: '22', ...window }).thenError({ kind: 'UnknownRenewalCertificate' });
  });

  it('given a failed renewal, when the profile is revoked, then the abandoned certificate is revoked too', () => {
    given([autoRenewing, prepared('22', '2029-02-28'), { type: 'RenewalFailed', data: { reason: 'smtp down', lastLogLine: 'x', abandonedSerial: '22' } }])
      .when({ type: 'RevokeProfile', reason: 'left', crlReason: 'cessationOfOperation', now: new Date('2027-12-26T00:00:00Z') })
      .then([{ type: 'ProfileRevoked', data: { serials: ['11', '22'], reason: 'left', crlReason: 'cessationOfOperation' } }]);
  });

  it('given a failed renewal, then the profile keeps its certificate and expiry, and is due again', () => {
    const state = stateFrom([autoRenewing, prepared('22', '2029-02-28'), { type: 'RenewalFailed', data: { reason: 'smtp down', lastLogLine: 'x', abandonedSerial: '22' } }]);
    expect(state).toMatchObject({ status: 'active', profile: { currentSerial: '11', expirationDate: '2027-12-31', pendingRenewals: [] } });
    expect(E.isRight(renewalTerms(state, window))).toBe(true);
  });
});

describe('edge cases of the calendar and of concurrency', () => {
  it('given a profile issued at 00:02 UTC (notBefore the evening before), then its term counts from the issue day', () => {
    const justAfterMidnight = issued({
      autoRenew: true,
      expirationDate: '2027-01-31',
      certificate: { ...certificate('11', '2027-01-31T23:59:59.000Z'), notBefore: '2026-12-31T23:57:00.000Z' },
    });
    expect(renewalTerms(stateFrom([justAfterMidnight]), { today: '2027-01-25', windowDays: 10 })).toEqual(E.right({ expirationDate: '2027-03-02' }));
  });

  it('given auto-renew switched off while the renewal mail was out, when the renewal completes, then it is still recorded', () => {
    given([autoRenewing, prepared('22', '2029-02-28'), { type: 'AutoRenewDisabled', data: {} }])
      .when({ type: 'CompleteRenewal', serial: '22', ...window })
      .then([renewed('22', '11', '2029-02-28T23:59:59.000Z')]);
  });
});
