// What a restore accepts as a history: the log replays only if positions increase, each stream's
// revisions run from 0 without a gap, and every event follows from the state before it as the
// decider would have decided. And what falls out of a replay: the certificates a backup must carry,
// the CRL's serials and the summary both commands print.
import { describe, expect, it } from 'vitest';
import type { StoredEventLike } from '../../domain/upcasters.js';
import { HistoryError, LogReplay, serialDigest } from '../../commands/use-cases/log-replay.js';
import { certificate, PEM } from '../domain/profile-fixtures.js';

const P1 = 'p0123456789abcdef01234567';
const P2 = 'pfedcba9876543210fedcba98';
const S1 = `profile-${P1}`;
const S2 = `profile-${P2}`;

const gatewayData = {
  publicHost: 'vpn.example.com',
  port: 1194,
  proto: 'udp',
  vpnNetwork: '10.8.0.0/24',
  routes: [],
  caCertificatePem: PEM,
  serverCertificatePem: PEM,
  serverCommonName: 'server-1',
};

const issuedData = (profileId: string, serial: string, extra: Record<string, unknown> = {}) => ({
  profileId,
  generation: 1,
  email: profileId === P1 ? 'ada@example.com' : 'bob@example.com',
  traffic: 'all',
  firstName: 'Ada',
  lastName: 'Lovelace',
  expirationDate: '2027-12-31',
  reason: 'remote access',
  autoRenew: true,
  certificate: certificate(serial),
  routes: [],
  ...extra,
});

/** A log builder: positions in order, revisions per stream, unless told otherwise. */
function log() {
  const events: StoredEventLike[] = [];
  const revisions = new Map<string, bigint>();
  const api = {
    events,
    add(streamId: string, type: string, data: unknown, options: { schemaVersion?: number; revision?: bigint; position?: bigint } = {}) {
      const revision = options.revision ?? revisions.get(streamId) ?? 0n;
      revisions.set(streamId, revision + 1n);
      events.push({
        streamId,
        revision,
        position: options.position ?? BigInt(events.length + 1),
        type,
        schemaVersion: options.schemaVersion ?? (type === 'ProfileIssued' ? 2 : 1),
        data,
        metadata: { actor: 'ops', at: `2026-11-${String(10 + events.length).padStart(2, '0')}T10:00:00.000Z`, tool: 'test' },
      });
      return api;
    },
  };
  return api.add('gateway', 'GatewayInitialized', gatewayData);
}

function replayAll(events: readonly StoredEventLike[]): LogReplay {
  const replay = new LogReplay();
  for (const e of events) replay.add(e);
  return replay;
}

function refusal(events: readonly StoredEventLike[]): string {
  try {
    replayAll(events);
  } catch (error) {
    expect(error).toBeInstanceOf(HistoryError);
    return (error as Error).message;
  }
  throw new Error('the history was accepted');
}

describe('a history that replays', () => {
  it('gives the summary, the CRL serials and the certificates still needed', () => {
    const l = log()
      .add(S1, 'ProfileIssued', issuedData(P1, '11'))
      .add(S1, 'ProfileResent', { serial: '11', via: 'smtp' })
      .add(S2, 'ProfileIssued', issuedData(P2, '21', { traffic: 'partial', routes: ['10.0.0.0/16'] }))
      .add(S2, 'ProfileRevoked', { serials: ['21'], reason: 'left', crlReason: 'cessationOfOperation' })
      .add(S2, 'ProfileIssued', issuedData(P2, '22', { traffic: 'partial', generation: 2, routes: [] }))
      .add(S1, 'RenewalCertificateIssued', { expirationDate: '2028-12-31', certificate: certificate('12', '2028-12-31T23:59:59.000Z') })
      .add(S1, 'ProfileRenewed', { previousSerial: '11', expirationDate: '2028-12-31', certificate: certificate('12', '2028-12-31T23:59:59.000Z') })
      .add(S1, 'RenewalCertificateIssued', { expirationDate: '2029-12-31', certificate: certificate('13', '2029-12-31T23:59:59.000Z') })
      .add(S1, 'RenewalFailed', { reason: 'smtp down', lastLogLine: 'x', abandonedSerial: '13' });
    const replay = replayAll(l.events);
    expect(replay.summary()).toMatchObject({
      gateway: 'vpn.example.com:1194/udp',
      users: { all: { active: 1, revoked: 0 }, partial: { active: 1, revoked: 0 } },
      renewed: 1,
      renewals: 1,
      crl: { serials: 1, sha256: serialDigest(['21']) },
      events: 10,
    });
    expect(replay.revokedSerials()).toEqual(['21']);
    // 11 was renewed away but is still valid; 13 was abandoned; 21 is revoked.
    expect(replay.neededCertificates('2026-12-01T00:00:00.000Z').map((n) => [n.serial, n.required])).toEqual([
      ['11', false],
      ['12', true],
      ['22', true],
    ]);
    // Expired certificates are not needed any more.
    expect(replay.neededCertificates('2028-01-01T00:00:00.000Z').map((n) => n.serial)).toEqual(['12']);
  });

  it('reads a 1.0 ProfileIssued (schema version 1) through the upcaster', () => {
    const v1 = {
      profileId: P1,
      generation: 1,
      email: 'ada@example.com',
      traffic: 'all',
      name: { first: 'Ada', last: 'Lovelace' },
      expires: '2027-12-31',
      creationReason: 'remote access',
      certificate: certificate('11'),
      routes: [],
    };
    const replay = replayAll(log().add(S1, 'ProfileIssued', v1, { schemaVersion: 1 }).events);
    expect(replay.summary().users.all.active).toBe(1);
    expect([...replay.pairs()]).toEqual([{ email: 'ada@example.com', traffic: 'all', profileId: P1 }]);
  });

  it('accepts a resend recorded after a concurrent revocation (appended with expected revision "any")', () => {
    const l = log()
      .add(S1, 'ProfileIssued', issuedData(P1, '11'))
      .add(S1, 'ProfileRevoked', { serials: ['11'], reason: 'left', crlReason: 'cessationOfOperation' })
      .add(S1, 'ProfileResent', { serial: '11', via: 'smtp' });
    expect(replayAll(l.events).summary().users.all).toEqual({ active: 0, revoked: 1 });
  });
});

describe('a history that does not replay is refused, saying where and why', () => {
  it('positions that do not increase', () => {
    const l = log().add(S1, 'ProfileIssued', issuedData(P1, '11'), { position: 1n });
    expect(refusal(l.events)).toBe(`event at position 1 (stream ${S1}, revision 0): positions must increase, and the previous event is at 1`);
  });

  it('a gap in a stream’s revisions, or a stream not starting at 0', () => {
    const gap = log().add(S1, 'ProfileIssued', issuedData(P1, '11')).add(S1, 'ProfileResent', { serial: '11', via: 'smtp' }, { revision: 2n });
    expect(refusal(gap.events)).toMatch(/revision 2\): expected revision 1 of this stream/);
    const late = log().add(S1, 'ProfileIssued', issuedData(P1, '11'), { revision: 1n });
    expect(refusal(late.events)).toMatch(/expected revision 0 of this stream/);
  });

  it('profile events before the gateway exists, or in a stream this ledger does not write', () => {
    const before: StoredEventLike[] = [{ ...log().add(S1, 'ProfileIssued', issuedData(P1, '11')).events[1]!, position: 1n }];
    expect(refusal(before)).toMatch(/a profile event before the gateway was initialised/);
    expect(refusal(log().add('profile-alice', 'ProfileResent', { serial: '11', via: 'smtp' }).events)).toMatch(/not a stream this ledger writes/);
    expect(refusal(log().add('gateway', 'ProfileResent', { serial: '11', via: 'smtp' }).events)).toMatch(/ProfileResent in the gateway stream/);
  });

  it('events the decider could not have decided', () => {
    const issued = () => log().add(S1, 'ProfileIssued', issuedData(P1, '11'));
    expect(refusal(issued().add(S1, 'ProfileIssued', issuedData(P1, '12', { generation: 2 })).events)).toMatch(/ProfileIssued while generation 1 is still active/);
    expect(refusal(log().add(S1, 'ProfileIssued', issuedData(P1, '11', { generation: 2 })).events)).toMatch(/generation 2, expected 1/);
    expect(refusal(log().add(S2, 'ProfileIssued', issuedData(P1, '11')).events)).toMatch(/ProfileIssued for profile p0123456789abcdef01234567 is in stream profile-pfedcba/);
    expect(refusal(issued().add(S1, 'ProfileRevoked', { serials: ['99'], reason: 'x', crlReason: 'unspecified' }).events)).toMatch(/names serial 99, which is not a certificate of this profile/);
    expect(refusal(log().add(S1, 'ProfileResent', { serial: '11', via: 'smtp' }).events)).toMatch(/ProfileResent before the profile was ever issued/);
    expect(
      refusal(issued().add(S1, 'ProfileRenewed', { previousSerial: '11', expirationDate: '2028-12-31', certificate: certificate('12') }).events),
    ).toMatch(/ProfileRenewed to serial 12, which no RenewalCertificateIssued announced/);
    const revokedTwice = issued()
      .add(S1, 'ProfileRevoked', { serials: ['11'], reason: 'x', crlReason: 'unspecified' })
      .add(S1, 'ProfileRevoked', { serials: ['11'], reason: 'x', crlReason: 'unspecified' });
    expect(refusal(revokedTwice.events)).toMatch(/ProfileRevoked while the profile is not active/);
  });

  it('a serial issued twice', () => {
    const l = log().add(S1, 'ProfileIssued', issuedData(P1, '11')).add(S2, 'ProfileIssued', issuedData(P2, '11'));
    expect(refusal(l.events)).toMatch(new RegExp(`certificate serial 11 was already issued \\(in ${S1}\\)`));
  });

  it('an event that does not parse, or of a schema newer than this release', () => {
    expect(refusal(log().add(S1, 'ProfileIssued', { ...issuedData(P1, '11'), email: 'not an email' }).events)).toMatch(/ProfileIssued version 2 does not match its schema: email/);
    expect(refusal(log().add(S1, 'ProfileIssued', issuedData(P1, '11'), { schemaVersion: 3 }).events)).toMatch(/newer than this ovpn-ledger understands/);
    expect(refusal(log().add(S1, 'ProfileTeleported', {}).events)).toMatch(/unknown event type "ProfileTeleported"/);
  });
});
