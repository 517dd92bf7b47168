// The read models are a pure function of the log: caught up a page at a time, or rebuilt from
// scratch, they hold the same rows; and they answer what the commands ask.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InMemoryEventStore } from '../../adapters/eventstore/in-memory-event-store.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { CURRENT_SCHEMAS, type ProfileEvent } from '../../domain/events.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { certificate, issued, renewed, revoked } from '../domain/profile-fixtures.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function projectionStore(batchSize = 5_000) {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-proj-'));
  dirs.push(dir);
  const db = openSqliteDatabase(join(dir, 'ledger.sqlite'));
  return new SqliteProjectionStore(db, {
    batchSize,
    encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
  });
}

let minute = 0;
async function append(store: InMemoryEventStore, streamId: string, events: ProfileEvent[]) {
  const existing = await store.readStream(streamId);
  await store.appendToStream(
    streamId,
    existing.length === 0 ? 'no_stream' : BigInt(existing.length - 1),
    events.map((e) => ({
      type: e.type,
      schemaVersion: CURRENT_SCHEMAS[e.type].version,
      data: e.data,
      metadata: { actor: 'ops', at: new Date(Date.UTC(2026, 10, 21, 9, minute++)).toISOString(), tool: 'test' },
    })),
  );
}

const pid = (n: number) => `p${n.toString(16).padStart(24, '0')}`;
const readAll = (store: InMemoryEventStore) => (after: bigint, limit: number) => store.readAll({ after, limit });

async function aBusyLog(): Promise<InMemoryEventStore> {
  const store = new InMemoryEventStore();
  for (let n = 1; n <= 30; n++) {
    const serial = (0x1000 + n).toString(16);
    const stream = `profile-${pid(n)}`;
    await append(store, stream, [
      issued({ profileId: pid(n), email: `user${n}@example.com`, traffic: n % 2 ? 'all' : 'partial', certificate: certificate(serial) }),
    ]);
    if (n % 3 === 0) await append(store, stream, [{ type: 'AutoRenewEnabled', data: {} }]);
    if (n % 4 === 0) await append(store, stream, [renewed((0x2000 + n).toString(16), serial, '2028-12-31T23:59:59.000Z')]);
    if (n % 5 === 0) await append(store, stream, [revoked([serial])]);
  }
  return store;
}

describe('catching up and rebuilding', () => {
  it('given a busy log, when caught up in pages of 7 or rebuilt in one go, then every read model is identical', async () => {
    const log = await aBusyLog();
    const paged = projectionStore(7);
    await paged.catchUp(readAll(log));
    const whole = projectionStore();
    await whole.catchUp(readAll(log));
    await whole.rebuild(readAll(log));
    expect(paged.dump()).toEqual(whole.dump());
    expect(paged.checkpoint()).toBe(await log.headPosition());
  });

  it('given caught-up read models, when catching up again, then nothing is applied twice', async () => {
    const log = await aBusyLog();
    const projections = projectionStore();
    const first = await projections.catchUp(readAll(log));
    const before = projections.dump();
    expect(first).toBeGreaterThan(30);
    expect(await projections.catchUp(readAll(log))).toBe(0);
    expect(projections.dump()).toEqual(before);
  });
});

describe('the user list', () => {
  it('given issued, renewed and revoked profiles, then it lists the active ones with their newest expiry', async () => {
    const log = new InMemoryEventStore();
    await append(log, 'profile-a', [issued({ profileId: pid(1), email: 'a@example.com' })]);
    await append(log, 'profile-a', [renewed('22', '11', '2028-06-30T23:59:59.000Z')]);
    await append(log, 'profile-b', [issued({ profileId: pid(2), email: 'b@example.com', certificate: certificate('33') })]);
    await append(log, 'profile-b', [revoked(['33'])]);
    const projections = projectionStore();
    await projections.catchUp(readAll(log));
    expect(projections.activeUsers().map((u) => [u.email, u.expirationDate, u.currentSerial, u.renewals])).toEqual([
      ['a@example.com', '2028-06-30', '22', 1],
    ]);
    expect(projections.activeUserCount()).toBe(1);
    expect(projections.findUser('b@example.com', 'all')?.status).toBe('revoked');
  });

  it('given profiles expiring on different days, then only those before today are expired', async () => {
    const log = new InMemoryEventStore();
    await append(log, 'profile-a', [issued({ profileId: pid(1), email: 'a@example.com', expirationDate: '2027-01-10' })]);
    await append(log, 'profile-b', [issued({ profileId: pid(2), email: 'b@example.com', expirationDate: '2027-01-11', certificate: certificate('33') })]);
    const projections = projectionStore();
    await projections.catchUp(readAll(log));
    expect(projections.expiredUsers('2027-01-11').map((u) => u.email)).toEqual(['a@example.com']);
    expect(projections.expiredUsers('2027-01-10')).toEqual([]);
  });
});

describe('the CRL entries', () => {
  it('given revocations, then each revoked serial is listed once, in order, with the time of its revocation', async () => {
    const log = await aBusyLog();
    const projections = projectionStore();
    await projections.catchUp(readAll(log));
    const entries = projections.crlEntries();
    expect(entries.map((e) => e.serial)).toEqual(['1005', '100a', '100f', '1014', '1019', '101e']);
    expect(entries.every((e) => e.reason === 'cessationOfOperation' && e.revokedAt.startsWith('2026-11-21T'))).toBe(true);
    expect(projections.serialExists('2004')).toBe(true);
  });
});

describe('the audit history', () => {
  it('given a profile’s lifecycle, then every event is recorded in order with who and when, without the certificate PEM', async () => {
    const log = new InMemoryEventStore();
    await append(log, 'profile-a', [issued({ profileId: pid(1) })]);
    await append(log, 'profile-a', [{ type: 'AutoRenewEnabled', data: {} }]);
    await append(log, 'profile-a', [revoked(['11'])]);
    const projections = projectionStore();
    await projections.catchUp(readAll(log));
    const history = projections.auditOfStream('profile-a');
    expect(history.map((h) => [h.type, h.actor])).toEqual([
      ['ProfileIssued', 'ops'],
      ['AutoRenewEnabled', 'ops'],
      ['ProfileRevoked', 'ops'],
    ]);
    expect(JSON.stringify(history.map((h) => h.details))).not.toContain('BEGIN CERTIFICATE');
  });
});
