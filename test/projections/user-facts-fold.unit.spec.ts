// ov_restore projects events in the thread that decodes them and folds the user list in the thread
// that stores them: the user facts cross as one flat list (pushUserFact) and are folded there
// (foldUserFacts). Pinned here: that fold gives, row for row and key for key, what evolveUserRow
// gives over the same events.
import { describe, expect, it } from 'vitest';
import type { Envelope, EventOf, ProfileEvent } from '../../domain/events.js';
import { foldUserFacts, pushUserFact } from '../../projections/projected-rows.js';
import { evolveUserRow, userFactOf, type UserRow } from '../../projections/user-list.js';
import { issued, renewed, revoked } from '../domain/profile-fixtures.js';

let position = 0n;
const revisions = new Map<string, bigint>();
function envelope(streamId: string, event: EventOf<ProfileEvent['type']>, at: string): Envelope<ProfileEvent> {
  const revision = (revisions.get(streamId) ?? -1n) + 1n;
  revisions.set(streamId, revision);
  return { ...event, streamId, revision, position: ++position, metadata: { actor: 'ops', at, tool: 'test' } } as Envelope<ProfileEvent>;
}

const ada = 'profile-p0123456789abcdef01234567';
const bob = 'profile-pfedcba9876543210fedcba98';
const at = (day: number) => `2026-11-${String(day).padStart(2, '0')}T09:00:00.000Z`;

/** Every kind of profile event, two streams interleaved, a second generation after a revocation, and events of a stream never issued. */
const history: Envelope<ProfileEvent>[] = [
  envelope('profile-never-issued', { type: 'AutoRenewEnabled', data: {} }, at(1)),
  envelope(ada, issued({ routes: ['10.0.0.0/16'], traffic: 'partial' }), at(2)),
  envelope(bob, issued({ profileId: 'pfedcba9876543210fedcba98', email: 'bob@example.com', autoRenew: true, certificate: { ...issued().data.certificate, serial: '22' } }), at(2)),
  envelope(ada, { type: 'ProfileDeliveryFailed', data: { serial: '11', delivery: 'issued', error: 'connection refused' } }, at(3)),
  envelope(ada, { type: 'ProfileResent', data: { serial: '11', via: 'smtp' } }, at(4)),
  envelope(bob, { type: 'RenewalFailed', data: { reason: 'CA key unreadable', lastLogLine: 'EACCES' } }, at(5)),
  envelope(bob, { type: 'RenewalCertificateIssued', data: { expirationDate: '2028-01-31', certificate: { ...issued().data.certificate, serial: '33' } } }, at(6)),
  envelope(bob, renewed('33', '22', '2028-01-31T23:59:59.000Z'), at(6)),
  envelope(ada, { type: 'AutoRenewEnabled', data: {} }, at(7)),
  envelope(bob, { type: 'AutoRenewDisabled', data: {} }, at(8)),
  envelope(ada, revoked(['11']), at(9)),
  envelope(ada, issued({ generation: 2, certificate: { ...issued().data.certificate, serial: '44' } }), at(10)),
];

describe('user facts folded in another thread', () => {
  it('given every kind of profile event, when their facts cross as a flat list and are folded, then every row is what evolveUserRow gives, with its keys in the same order', () => {
    const expected = new Map<string, UserRow | undefined>();
    const flat: unknown[] = [];
    for (const event of history) {
      expected.set(event.streamId, evolveUserRow(expected.get(event.streamId), event));
      pushUserFact(flat, event.streamId, userFactOf(event));
    }
    // As a message would carry it.
    const crossed = structuredClone(flat);
    const folded = new Map<string, UserRow | undefined>();
    foldUserFacts(crossed, folded);

    expect([...folded.keys()]).toEqual([...expected.keys()]);
    for (const [streamId, row] of expected) {
      expect(folded.get(streamId)).toEqual(row);
      expect(JSON.stringify(folded.get(streamId))).toBe(JSON.stringify(row));
    }
    expect(folded.get('profile-never-issued')).toBeUndefined();
    expect(folded.get(ada)).toMatchObject({ generation: 2, status: 'active', currentSerial: '44', renewals: 0, undelivered: null });
    expect(folded.get(bob)).toMatchObject({ currentSerial: '33', renewals: 1, autoRenew: false, lastRenewalFailure: null });
  });

  it('given a list folded in two halves, then the rows are those of one fold', () => {
    const flat: unknown[] = [];
    for (const event of history) pushUserFact(flat, event.streamId, userFactOf(event));
    const whole = new Map<string, UserRow | undefined>();
    foldUserFacts(flat, whole);
    const firstHalf: unknown[] = [];
    const secondHalf: unknown[] = [];
    history.forEach((event, i) => pushUserFact(i < 6 ? firstHalf : secondHalf, event.streamId, userFactOf(event)));
    const halves = new Map<string, UserRow | undefined>();
    foldUserFacts(firstHalf, halves);
    foldUserFacts(secondHalf, halves);
    expect(halves).toEqual(whole);
  });

  it('given a list that is not one pushUserFact wrote, then folding it fails loudly instead of guessing', () => {
    expect(() => foldUserFacts([ada, 99], new Map())).toThrow('internal error: user fact code 99');
  });
});
