// The whole-log pass with its read worker (projections/projection-read-worker.ts, run from the
// build: `npm run build` first) gives exactly the read models of the single-thread pass and of a
// catch-up a page at a time, however the pages are shared between the worker and the main thread
// and whatever gaps the positions have; it fails on an invalid stored event with the single
// thread's error, and runs in one thread when the worker's script is missing.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../adapters/eventstore/event-store.js';
import { SqliteEventStore, type StreamAppend } from '../../adapters/eventstore/sqlite-event-store.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { ProjectionDecodeError, SqliteProjectionStore, type ProjectionStoreOptions } from '../../projections/sqlite-projection-store.js';
import { PEM } from '../domain/profile-fixtures.js';
import { randomSerial, SyntheticProfiles, type SyntheticProfile } from '../support/synthetic-profile-events.js';

const WORKER = new URL('../../dist/projections/projection-read-worker.js', import.meta.url);
const SLOW_WORKER = new URL('./fixtures/read-worker-slow.mjs', import.meta.url);
const encodeCrlEntry: ProjectionStoreOptions['encodeCrlEntry'] = (e) =>
  encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason });

const dirs: string[] = [];
const dbs: Database.Database[] = [];
afterEach(() => {
  dbs.splice(0).forEach((db) => db.close());
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function openDb(): Database.Database {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-pipeline-'));
  dirs.push(dir);
  const db = openSqliteDatabase(join(dir, 'ledger.sqlite'), { synchronous: 'OFF' });
  dbs.push(db);
  return db;
}

/**
 * 3,000 made-up profiles of 9 events each (27,000: more than one page of the whole-log pass),
 * their streams interleaved round by round: issued, resends and toggles, a renewal for every
 * fourth, a revocation for every third. `poison` replaces one event's data with an invalid one.
 */
function seed(db: Database.Database, poison?: { round: number; profile: number }): number {
  const synthetic = new SyntheticProfiles(PEM, new Date(Date.UTC(2026, 10, 21, 9)));
  const store = new SqliteEventStore(db);
  const profiles: SyntheticProfile[] = Array.from({ length: 3_000 }, (_, i) => synthetic.profile(i, 'pipe'));
  const streams = profiles.map((p, i) => {
    const events = synthetic.stream(p, i, 9, i % 3 === 0);
    if (i % 4 === 1) {
      events[5] = synthetic.event('ProfileRenewed', {
        previousSerial: p.serial,
        expirationDate: '2027-06-30',
        certificate: { serial: randomSerial(), notBefore: '2026-11-21T09:00:00.000Z', notAfter: '2027-06-30T23:59:59.000Z', pem: PEM },
      });
    }
    return events;
  });
  let count = 0;
  for (let round = 0; round < 9; round++) {
    const batch: StreamAppend[] = profiles.map((p, i) => {
      let event: NewEvent = streams[i]![round]!;
      if (poison?.round === round && poison.profile === i) event = { ...event, type: 'ProfileResent', data: { serial: 'NOT HEX', via: 'smtp' } };
      return { streamId: p.streamId, expectedRevision: round === 0 ? 'no_stream' : BigInt(round - 1), events: [event] };
    });
    store.appendManySync(batch);
    count += batch.length;
  }
  return count;
}

const readAllOf = (db: Database.Database) => {
  const store = new SqliteEventStore(db);
  return (after: bigint, limit: number) => store.readAll({ after, limit });
};

beforeAll(() => {
  expect(existsSync(fileURLToPath(WORKER)), `${fileURLToPath(WORKER)} is missing: run npm run build first`).toBe(true);
});

describe('the whole-log pass with a read worker', () => {
  it('given a long embedded log, when rebuilt with the worker, without it, and caught up a page at a time, then every read model is identical', async () => {
    const db = openDb();
    const events = seed(db);
    const readAll = readAllOf(db);

    const pipelined = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: WORKER });
    expect(await pipelined.rebuild(readAll)).toBe(events);
    expect(pipelined.lastWholeLogPass).toBe('pipelined');
    const withWorker = pipelined.dump();
    expect(withWorker['audit_log']).toHaveLength(events);

    const single = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: false });
    expect(await single.rebuild(readAll)).toBe(events);
    expect(single.lastWholeLogPass).toBe('single');
    expect(single.dump()).toEqual(withWorker);

    // Caught up in pages of 997 from a first event applied alone: never a whole-log pass.
    const paged = new SqliteProjectionStore(db, { encodeCrlEntry, batchSize: 997 });
    db.transaction(() => ['users', 'certificates', 'crl_entries', 'audit_log', 'gateway', 'projection_checkpoint'].forEach((t) => db.exec(`DELETE FROM ${t}`)))();
    await paged.catchUp(async (after) => (after === 0n ? (await readAll(after, 1)).slice() : []));
    expect(paged.checkpoint()).toBe(1n);
    paged.lastWholeLogPass = undefined;
    expect(await paged.catchUp(async (after, limit) => (await readAll(after, limit)).slice())).toBe(events - 1);
    expect(paged.lastWholeLogPass).toBeUndefined();
    expect(paged.dump()).toEqual(withWorker);
  });

  it('given a worker slower than the main thread, when rebuilt, then the main thread projects pages too and every read model is as the single thread makes it', async () => {
    const db = openDb();
    const events = seed(db);
    const readAll = readAllOf(db);
    const single = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: false });
    await single.rebuild(readAll);
    const expected = single.dump();

    const shared = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: SLOW_WORKER });
    expect(await shared.rebuild(readAll)).toBe(events);
    expect(shared.lastWholeLogPass).toBe('pipelined');
    const pages = shared.lastPipelinedPages!;
    expect(pages.worker + pages.thisThread).toBe(Math.ceil(events / 2_000));
    expect(pages.thisThread).toBeGreaterThan(0);
    expect(pages.worker).toBeGreaterThan(0);
    expect(shared.dump()).toEqual(expected);
  });

  it('given a log whose positions have gaps (events deleted by hand), when rebuilt with the worker, then it projects what is there as the single thread does', async () => {
    const db = openDb();
    const events = seed(db);
    // Every seventh event over several pages, and all of one whole page (the pass's pages are
    // ranges of 2,000 positions).
    const deleted = db.prepare('DELETE FROM events WHERE (position BETWEEN 3000 AND 9000 AND position % 7 = 0) OR position BETWEEN 12001 AND 14000').run().changes;
    expect(deleted).toBe(857 + 2_000);
    const readAll = readAllOf(db);
    const single = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: false });
    expect(await single.rebuild(readAll)).toBe(events - deleted);
    const expected = single.dump();
    for (const readWorker of [WORKER, SLOW_WORKER]) {
      const pipelined = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker });
      expect(await pipelined.rebuild(readAll)).toBe(events - deleted);
      expect(pipelined.lastWholeLogPass).toBe('pipelined');
      expect(pipelined.dump()).toEqual(expected);
    }
  });

  it('given an invalid event far into the log, when rebuilt with the worker, then it fails as the single thread does and leaves the read models empty', async () => {
    const db = openDb();
    seed(db, { round: 8, profile: 2_000 });
    const readAll = readAllOf(db);
    const failure = async (options: Partial<ProjectionStoreOptions>): Promise<unknown> => {
      const store = new SqliteProjectionStore(db, { encodeCrlEntry, ...options });
      const error = await store.rebuild(readAll).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(store.checkpoint()).toBe(0n);
      expect(store.dump()['audit_log']).toEqual([]);
      return error;
    };
    const pipelined = await failure({ readWorker: WORKER });
    const shared = await failure({ readWorker: SLOW_WORKER });
    const single = await failure({ readWorker: false });
    expect(pipelined).toBeInstanceOf(ProjectionDecodeError);
    expect(shared).toBeInstanceOf(ProjectionDecodeError);
    expect(single).toBeInstanceOf(ProjectionDecodeError);
    expect((pipelined as Error).message).toBe((single as Error).message);
    expect((shared as Error).message).toBe((single as Error).message);
    expect((single as Error).message).toMatch(/^event at position 26001 \(profile-p[0-9a-f]{24}\): ProfileResent version 1 does not match its schema: serial /);
  });

  it('given a worker that stops dead after its first page, when rebuilt, then the pass fails saying so and leaves the read models empty, and a rebuild after it is complete', async () => {
    const db = openDb();
    const events = seed(db);
    const readAll = readAllOf(db);
    const dying = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: new URL('./fixtures/read-worker-dying-after-one-page.mjs', import.meta.url) });
    await expect(dying.rebuild(readAll)).rejects.toThrow('the projection read worker failed: the read worker exited with code 7');
    expect(dying.checkpoint()).toBe(0n);
    expect(dying.dump()['audit_log']).toEqual([]);
    expect(dying.dump()['users']).toEqual([]);

    const again = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: WORKER });
    expect(await again.rebuild(readAll)).toBe(events);
    expect(again.dump()['audit_log']).toHaveLength(events);
  });

  it('given no worker script where one is expected, when rebuilt, then the pass runs in one thread with the same result', async () => {
    const db = openDb();
    const events = seed(db);
    const readAll = readAllOf(db);
    const missing = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: new URL('./no-such-worker.js', WORKER) });
    expect(await missing.rebuild(readAll)).toBe(events);
    expect(missing.lastWholeLogPass).toBe('single');
    const pipelined = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: WORKER });
    const dump = missing.dump();
    await pipelined.rebuild(readAll);
    expect(pipelined.lastWholeLogPass).toBe('pipelined');
    expect(pipelined.dump()).toEqual(dump);
  });

  it('given a log read through another path (a filtered page), then the pass stays in one thread', async () => {
    const db = openDb();
    seed(db);
    const readAll = readAllOf(db);
    const store = new SqliteProjectionStore(db, { encodeCrlEntry, readWorker: WORKER });
    await store.rebuild(async (after, limit) => (await readAll(after, limit)).filter(() => true));
    expect(store.lastWholeLogPass).toBe('single');
  });
});
