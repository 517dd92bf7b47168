// Events written by older releases read as today's, through an ordered chain of upcasters that is
// checked at start-up; events from a newer release are refused, never half-understood.
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { decodeEventData, decodeStoredEvent, UPCASTERS, verifyUpcasterChain } from '../../domain/upcasters.js';
import { issued, certificate } from './profile-fixtures.js';

const v1Issued = {
  profileId: 'p0123456789abcdef01234567',
  generation: 1,
  email: 'ada@example.com',
  traffic: 'all',
  name: { first: 'Ada', last: 'Lovelace' },
  expires: '2027-12-31',
  creationReason: 'remote access',
  certificate: certificate('11'),
  routes: [],
};

describe('the upcaster chain', () => {
  it('reaches every current schema version from version 1 without a gap', () => {
    expect(verifyUpcasterChain()).toEqual(E.right(true));
  });

  it('is refused at start-up when a step is missing', () => {
    expect(verifyUpcasterChain([])).toEqual(E.left('ProfileIssued: no upcaster from version 1 to 2'));
  });

  it('is refused at start-up when a step is duplicated', () => {
    const first = UPCASTERS[0]!;
    expect(E.isLeft(verifyUpcasterChain([first, first]))).toBe(true);
  });
});

describe('reading ProfileIssued written by release 1.0', () => {
  it('gives today’s event with auto-renew off, the name split and the fields renamed', () => {
    expect(decodeEventData('ProfileIssued', 1, v1Issued)).toEqual(E.right(issued()));
  });

  it('refuses a 1.0 event that does not match the 1.0 schema', () => {
    const result = decodeEventData('ProfileIssued', 1, { ...v1Issued, expires: '2027-02-30' });
    expect(result).toMatchObject({ _tag: 'Left', left: { kind: 'InvalidEventData', version: 1 } });
  });
});

describe('reading events this release does not know', () => {
  it('refuses a schema version newer than this release understands', () => {
    expect(decodeEventData('ProfileIssued', 3, issued().data)).toMatchObject({
      _tag: 'Left',
      left: { kind: 'NewerSchemaVersion', supported: 2 },
    });
  });

  it('refuses an unknown event type', () => {
    expect(decodeEventData('ProfileTeleported', 1, {})).toMatchObject({ _tag: 'Left', left: { kind: 'UnknownEventType' } });
  });

  it('refuses an event without who and when', () => {
    const stored = { streamId: 's', revision: 0n, position: 1n, type: 'AutoRenewEnabled', schemaVersion: 1, data: {}, metadata: { actor: 'ops' } };
    expect(decodeStoredEvent(stored)).toMatchObject({ _tag: 'Left', left: { kind: 'InvalidMetadata' } });
  });
});
