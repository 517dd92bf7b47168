// The read models as of a past instant: given events with their times, when folded as of an
// instant, then the users, revocations, renewals and histories are those of that moment.
import { describe, expect, it } from 'vitest';
import type { Envelope, LedgerEvent } from '../../domain/events.js';
import { AsOfView, asOfView, happenedBy, type AuditView } from '../../projections/as-of-view.js';
import { certificate, issued, renewed, revoked } from '../domain/profile-fixtures.js';

const ADA = 'p00000000000000000000000a';
const BOB = 'p00000000000000000000000b';
const ADA_STREAM = `profile-${ADA}`;
const BOB_STREAM = `profile-${BOB}`;

/** A log: events in global order, each with the time and actor it was recorded with. */
function log(...entries: [at: string, streamId: string, event: LedgerEvent, actor?: string][]): Envelope[] {
  const revisions = new Map<string, bigint>();
  return entries.map(([at, streamId, event, actor], i) => {
    const revision = revisions.get(streamId) ?? 0n;
    revisions.set(streamId, revision + 1n);
    return { ...event, metadata: { actor: actor ?? 'ops', at, tool: 'test' }, streamId, revision, position: BigInt(i + 1) } as Envelope;
  });
}

const adaIssued = issued({ profileId: ADA, email: 'ada@example.com', traffic: 'all', expirationDate: '2030-03-20', autoRenew: true, certificate: certificate('a1', '2030-03-20T23:59:59.000Z') });
const bobIssued = issued({ profileId: BOB, email: 'bob@example.com', traffic: 'partial', firstName: 'Bob', lastName: 'Builder', expirationDate: '2030-06-30', certificate: certificate('b1', '2030-06-30T23:59:59.000Z') });
const renewalFailed: LedgerEvent = { type: 'RenewalFailed', data: { reason: 'connect ECONNREFUSED 127.0.0.1:2525', lastLogLine: 'ERROR renewal of all profile failed' } };

// ada: issued 1 March, renewal fails 10 March, renewed 11 March; bob: issued 2 March, revoked 15 March.
const LOG = log(
  ['2030-03-01T09:00:00.000Z', ADA_STREAM, adaIssued, 'anna'],
  ['2030-03-02T09:00:00.000Z', BOB_STREAM, bobIssued, 'anna'],
  ['2030-03-10T06:00:00.000Z', ADA_STREAM, renewalFailed, 'root'],
  ['2030-03-11T06:00:00.000Z', ADA_STREAM, renewed('a2', 'a1', '2030-04-08T23:59:59.000Z'), 'root'],
  ['2030-03-15T12:00:00.000Z', BOB_STREAM, revoked(['b1']), 'ben'],
);

const asOf = (instant: string, events: readonly Envelope[] = LOG) => asOfView(events, new Date(instant));

describe('who was there as of an instant', () => {
  it('given the log, when as of a moment before the first issue, then there is nobody and no history', () => {
    const view = asOf('2030-03-01T08:59:59.999Z');
    expect(view.userRows()).toEqual([]);
    expect(view.userCounts()).toEqual({ active: 0, revoked: 0, stuck: 0 });
    expect(view.auditOfStream(ADA_STREAM)).toEqual([]);
  });

  it('given the log, when as of the very instant of an issue, then that profile is already active (at <= instant)', () => {
    const view = asOf('2030-03-01T09:00:00.000Z');
    expect(view.userRows().map((u) => [u.email, u.status])).toEqual([['ada@example.com', 'active']]);
  });

  it('given the log, when as of a moment before the revocation, then bob is still active and nothing is revoked', () => {
    const view = asOf('2030-03-15T11:59:59Z');
    expect(view.userRows().map((u) => [u.email, u.traffic, u.status])).toEqual([
      ['ada@example.com', 'all', 'active'],
      ['bob@example.com', 'partial', 'active'],
    ]);
    expect(view.auditOfTypeWithPair('ProfileRevoked', {})).toEqual([]);
    expect(view.crlEntryCount()).toBe(0);
  });

  it('given the log, when as of after the revocation, then bob is revoked, with his serial on the CRL and who did it', () => {
    const view = asOf('2030-03-15T12:00:00Z');
    expect(view.userCounts()).toEqual({ active: 1, revoked: 1, stuck: 0 });
    expect(view.crlEntries()).toEqual([{ serial: 'b1', revokedAt: '2030-03-15T12:00:00.000Z', reason: 'cessationOfOperation' }]);
    const [revocation, ...more] = view.auditOfTypeWithPair('ProfileRevoked', {});
    expect(more).toEqual([]);
    expect(revocation).toMatchObject({
      email: 'bob@example.com',
      traffic: 'partial',
      at: '2030-03-15T12:00:00.000Z',
      actor: 'ben',
      details: { serials: ['b1'], reason: 'left the company', crlReason: 'cessationOfOperation' },
    });
  });

  it('given the log, when as of an instant written with an offset, then it is compared as an instant', () => {
    // 13:30+02:00 is 11:30Z: before the revocation.
    expect(asOfView(LOG, new Date('2030-03-15T13:30:00+02:00')).userCounts().revoked).toBe(0);
    expect(happenedBy('2030-03-15T12:00:00Z', new Date('2030-03-15T12:00:00.000Z'))).toBe(true);
    expect(happenedBy('2030-03-15T12:00:00.001Z', new Date('2030-03-15T12:00:00.000Z'))).toBe(false);
  });
});

describe('renewals and stuck profiles as of an instant', () => {
  it('given a failed renewal, when as of before the successful one, then ada is stuck with the failure and its log line', () => {
    const view = asOf('2030-03-10T12:00:00Z');
    expect(view.userCounts()).toEqual({ active: 2, revoked: 0, stuck: 1 });
    expect(view.stuckUsers().map((u) => [u.email, u.lastRenewalFailure])).toEqual([
      [
        'ada@example.com',
        { at: '2030-03-10T06:00:00.000Z', reason: 'connect ECONNREFUSED 127.0.0.1:2525', lastLogLine: 'ERROR renewal of all profile failed' },
      ],
    ]);
    expect(view.renewalCounts()).toEqual({ renewals: 0, renewedProfiles: 0 });
  });

  it('given a failed renewal followed by a successful one, when as of after it, then ada is renewed and no longer stuck', () => {
    const view = asOf('2030-03-11T06:00:00Z');
    expect(view.stuckUsers()).toEqual([]);
    expect(view.renewalCounts()).toEqual({ renewals: 1, renewedProfiles: 1 });
    expect(view.userRows()[0]).toMatchObject({ email: 'ada@example.com', expirationDate: '2030-04-08', currentSerial: 'a2', renewals: 1 });
    expect(view.auditOfTypeWithPair('ProfileRenewed', {})).toMatchObject([
      { email: 'ada@example.com', traffic: 'all', actor: 'root', details: { previousSerial: 'a1', serial: 'a2', expirationDate: '2030-04-08' } },
    ]);
  });

  it('given renewals on several days, when filtered by a date range, then bounds are inclusive UTC dates', () => {
    const events = log(
      ['2030-03-01T09:00:00.000Z', ADA_STREAM, adaIssued],
      ['2030-03-11T00:00:00.000Z', ADA_STREAM, renewed('a2', 'a1', '2030-04-08T23:59:59.000Z')],
      ['2030-03-12T23:59:59.999Z', ADA_STREAM, renewed('a3', 'a2', '2030-05-08T23:59:59.000Z')],
      ['2030-03-13T00:00:00.000Z', ADA_STREAM, renewed('a4', 'a3', '2030-06-08T23:59:59.000Z')],
    );
    const view = asOf('2030-12-31T00:00:00Z', events);
    const serials = (from?: string, before?: string) => view.auditOfTypeWithPair('ProfileRenewed', { from, before }).map((r) => r.details['serial']);
    expect(serials('2030-03-11', '2030-03-13')).toEqual(['a2', 'a3']);
    expect(serials('2030-03-12')).toEqual(['a3', 'a4']);
    expect(serials(undefined, '2030-03-11')).toEqual([]);
    expect(view.renewalCounts()).toEqual({ renewals: 3, renewedProfiles: 1 });
  });

  it('given a renewed profile revoked and issued again, when counted, then the renewal still counts and the new generation is active', () => {
    const events = log(
      ['2030-03-01T09:00:00.000Z', ADA_STREAM, adaIssued],
      ['2030-03-11T06:00:00.000Z', ADA_STREAM, renewed('a2', 'a1', '2030-04-08T23:59:59.000Z')],
      ['2030-03-12T06:00:00.000Z', ADA_STREAM, revoked(['a1', 'a2'])],
      ['2030-03-13T06:00:00.000Z', ADA_STREAM, issued({ ...adaIssued.data, generation: 2, expirationDate: '2030-09-30', certificate: certificate('a3') })],
    );
    const view = asOf('2030-03-13T06:00:00Z', events);
    expect(view.userCounts()).toEqual({ active: 1, revoked: 0, stuck: 0 });
    expect(view.renewalCounts()).toEqual({ renewals: 1, renewedProfiles: 1 });
    expect(view.crlEntries().map((e) => e.serial)).toEqual(['a1', 'a2']);
    expect(view.userRows()[0]).toMatchObject({ generation: 2, renewals: 0, currentSerial: 'a3' });
  });
});

describe('expiring profiles as of an instant', () => {
  it('given two active profiles, when asked for [from, to], then both bounds are inclusive and the order is by expiration date', () => {
    const view: AuditView = asOf('2030-03-10T12:00:00Z');
    const emails = (from: string, to: string) => view.activeExpiringBetween(from, to).map((u) => u.email);
    expect(emails('2030-03-10', '2030-03-20')).toEqual(['ada@example.com']);
    expect(emails('2030-03-21', '2030-06-30')).toEqual(['bob@example.com']);
    expect(emails('2030-03-20', '2030-06-30')).toEqual(['ada@example.com', 'bob@example.com']);
    expect(emails('2030-03-21', '2030-06-29')).toEqual([]);
  });

  it('given a revoked profile, when asked what expires, then it is not listed', () => {
    expect(asOf('2030-03-16T00:00:00Z').activeExpiringBetween('2030-01-01', '2030-12-31').map((u) => u.email)).toEqual(['ada@example.com']);
  });
});

describe('folding the log in order', () => {
  it('given an event recorded with a later clock before one with an earlier clock, when as of between them, then only the earlier-timed one applies', () => {
    // OVL_NOW can move the clock backwards between commands: the log order and the times disagree.
    const events = log(
      ['2030-03-01T09:00:00.000Z', ADA_STREAM, adaIssued],
      ['2030-03-20T09:00:00.000Z', ADA_STREAM, { type: 'AutoRenewDisabled', data: {} }],
      ['2030-03-05T09:00:00.000Z', BOB_STREAM, bobIssued],
    );
    const view = asOf('2030-03-10T00:00:00Z', events);
    expect(view.userRows().map((u) => [u.email, u.autoRenew])).toEqual([
      ['ada@example.com', true],
      ['bob@example.com', false],
    ]);
    expect(view.auditOfStream(ADA_STREAM).map((r) => r.type)).toEqual(['ProfileIssued']);
  });

  it('given the log, when folded event by event, then apply says which events were taken', () => {
    const view = new AsOfView(new Date('2030-03-02T00:00:00Z'));
    expect(LOG.map((e) => view.apply(e))).toEqual([true, false, false, false, false]);
  });

  it('given a history of one stream, when audit records are kept for that stream only, then counts still cover every event', () => {
    const view = asOfView(LOG, new Date('2030-12-31T00:00:00Z'), { keepAudit: (_type, streamId) => streamId === BOB_STREAM });
    expect(view.auditOfStream(BOB_STREAM).map((r) => [r.type, r.actor])).toEqual([
      ['ProfileIssued', 'anna'],
      ['ProfileRevoked', 'ben'],
    ]);
    expect(view.auditOfStream(ADA_STREAM)).toEqual([]);
    expect(view.renewalCounts()).toEqual({ renewals: 1, renewedProfiles: 1 });
    expect(view.userCounts()).toEqual({ active: 1, revoked: 1, stuck: 0 });
  });

  it('given the gateway initialisation in the log, when folded, then it is in the audit records but is no user', () => {
    const gateway: LedgerEvent = {
      type: 'GatewayInitialized',
      data: {
        publicHost: 'vpn.example.com',
        port: 1194,
        proto: 'udp',
        vpnNetwork: '10.8.0.0/24',
        routes: [],
        caCertificatePem: '-----BEGIN CERTIFICATE-----\n',
        serverCertificatePem: '-----BEGIN CERTIFICATE-----\n',
        serverCommonName: 'server',
      },
    };
    const view = asOf('2030-12-31T00:00:00Z', log(['2030-03-01T08:00:00.000Z', 'gateway', gateway], ['2030-03-01T09:00:00.000Z', ADA_STREAM, adaIssued]));
    expect(view.userRows().map((u) => u.email)).toEqual(['ada@example.com']);
    expect(view.auditOfStream('gateway').map((r) => r.details)).toEqual([
      { publicHost: 'vpn.example.com', port: 1194, proto: 'udp', vpnNetwork: '10.8.0.0/24', routes: [], serverCommonName: 'server' },
    ]);
  });
});
