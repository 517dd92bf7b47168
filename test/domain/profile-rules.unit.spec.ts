// The rule book of a profile's lifecycle: given past events, when a command, then new events or
// a typed error.
import { describe, it } from 'vitest';
import { given } from '../support/decider-spec.js';
import { certificate, issue, issued, renewed, revoked } from './profile-fixtures.js';

const NOW = new Date('2026-11-21T12:00:00Z');
const revoke = { type: 'RevokeProfile', reason: 'left the company', crlReason: 'cessationOfOperation', now: NOW } as const;

describe('issuing a profile', () => {
  it('given no history, when a profile is issued, then ProfileIssued records generation 1 with its certificate', () => {
    given([])
      .when(issue({ traffic: 'all' }))
      .then([issued({ routes: [] })]);
  });

  it('given no history, when a partial profile is issued, then the routes of the gateway are recorded with it', () => {
    given([])
      .when(issue({ traffic: 'partial' }))
      .then([issued({ traffic: 'partial', routes: ['10.0.0.0/16'] })]);
  });

  it('given an active profile, when the same pair is issued again, then it is refused until the first is revoked', () => {
    given([issued()]).when(issue()).thenError({ kind: 'ProfileAlreadyActive', expirationDate: '2027-12-31' });
  });

  it('given a revoked profile, when the pair is issued again, then a new generation starts in the same stream', () => {
    given([issued(), revoked(['11'])])
      .when(issue({ certificate: certificate('22') }))
      .then([issued({ generation: 2, certificate: certificate('22') })]);
  });

  it('given no history, when the expiration date is today, then it is refused', () => {
    given([]).when(issue({ expirationDate: '2026-11-21' })).thenError({ kind: 'ExpirationNotAfterToday', today: '2026-11-21' });
  });

  it('given no history, when the expiration date is in the past, then it is refused', () => {
    given([]).when(issue({ expirationDate: '2025-01-01' })).thenError({ kind: 'ExpirationNotAfterToday' });
  });
});

describe('revoking a profile', () => {
  it('given an active profile, when it is revoked, then its certificate is revoked with the reason', () => {
    given([issued()]).when(revoke).then([revoked(['11'])]);
  });

  it('given a renewed profile, when it is revoked, then every certificate that can still connect is revoked, old and new', () => {
    given([issued(), renewed('22', '11', '2028-12-31T23:59:59.000Z')])
      .when(revoke)
      .then([revoked(['11', '22'])]);
  });

  it('given a renewed profile whose old certificate has expired, when it is revoked, then only the live one is listed', () => {
    given([issued({ certificate: certificate('11', '2026-11-01T23:59:59.000Z') }), renewed('22', '11', '2027-11-30T23:59:59.000Z')])
      .when(revoke)
      .then([revoked(['22'])]);
  });

  it('given no profile, when it is revoked, then there is nothing to revoke', () => {
    given([]).when(revoke).thenError({ kind: 'NoActiveProfile' });
  });

  it('given a revoked profile, when it is revoked again, then there is nothing to revoke', () => {
    given([issued(), revoked(['11'])]).when(revoke).thenError({ kind: 'NoActiveProfile' });
  });
});

describe('resending and delivery', () => {
  it('given an active profile, when it is resent, then ProfileResent names the newest certificate', () => {
    given([issued(), renewed('22', '11', '2028-12-31T23:59:59.000Z')])
      .when({ type: 'RecordResend', via: 'smtp' })
      .then([{ type: 'ProfileResent', data: { serial: '22', via: 'smtp' } }]);
  });

  it('given a revoked profile, when it is resent, then there is nothing to resend', () => {
    given([issued(), revoked(['11'])]).when({ type: 'RecordResend', via: 'smtp' }).thenError({ kind: 'NoActiveProfile' });
  });

  it('given an active profile, when its delivery failed, then the failure is recorded with the error', () => {
    given([issued()])
      .when({ type: 'RecordDeliveryFailure', serial: '11', delivery: 'issued', error: 'connection refused' })
      .then([{ type: 'ProfileDeliveryFailed', data: { serial: '11', delivery: 'issued', error: 'connection refused' } }]);
  });
});

describe('switching auto-renew', () => {
  it('given auto-renew off, when it is enabled, then AutoRenewEnabled', () => {
    given([issued()]).when({ type: 'EnableAutoRenew' }).then([{ type: 'AutoRenewEnabled', data: {} }]);
  });

  it('given auto-renew on, when it is enabled again, then nothing happens', () => {
    given([issued({ autoRenew: true })]).when({ type: 'EnableAutoRenew' }).then([]);
  });

  it('given auto-renew on, when it is disabled, then AutoRenewDisabled', () => {
    given([issued({ autoRenew: true })]).when({ type: 'DisableAutoRenew' }).then([{ type: 'AutoRenewDisabled', data: {} }]);
  });

  it('given auto-renew enabled then disabled, when it is disabled, then nothing happens', () => {
    given([issued(), { type: 'AutoRenewEnabled', data: {} }, { type: 'AutoRenewDisabled', data: {} }])
      .when({ type: 'DisableAutoRenew' })
      .then([]);
  });

  it('given no profile, when auto-renew is toggled, then there is no active profile', () => {
    given([]).when({ type: 'EnableAutoRenew' }).thenError({ kind: 'NoActiveProfile' });
  });
});
