// SqliteEventStore.bulkLoader: how ov_restore fills its staging store. Events go in at the
// revisions they carry, without a check each; the (stream, revision) index built at the end still
// refuses a revision given twice, and the store behaves as an appended one afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WrongExpectedRevisionError } from '../../adapters/eventstore/event-store.js';
import { SqliteEventStore, type LoadedEvent } from '../../adapters/eventstore/sqlite-event-store.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';

const loaded = (streamId: string, revision: bigint, type = 'ProfileResent'): LoadedEvent => ({
  streamId,
  revision,
  type,
  schemaVersion: 1,
  data: { n: Number(revision) },
  metadata: { actor: 'test' },
});

describe('bulk loading an empty SQLite event store', () => {
  let dir: string;
  let db: Database.Database;
  let store: SqliteEventStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ovpn-ledger-bulk-'));
    db = openSqliteDatabase(join(dir, 'ledger.sqlite'));
    store = new SqliteEventStore(db);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('given interleaved streams, when loaded in two batches, then positions run from 1 and each stream reads back in revision order', async () => {
    const loader = store.bulkLoader();
    expect(loader.append([loaded('a', 0n), loaded('b', 0n), loaded('a', 1n)])).toEqual([1n, 2n, 3n]);
    expect(loader.append([loaded('b', 1n), loaded('a', 2n)])).toEqual([4n, 5n]);
    loader.finish();

    const a = await store.readStream('a');
    expect(a.map((e) => [e.revision, e.position, e.data])).toEqual([
      [0n, 1n, { n: 0 }],
      [1n, 3n, { n: 1 }],
      [2n, 5n, { n: 2 }],
    ]);
    expect((await store.readAll({ after: 0n, limit: 10 })).map((e) => e.streamId)).toEqual(['a', 'b', 'a', 'b', 'a']);
  });

  it('given a bulk-loaded store, when a command appends with a stale expected revision, then it is a conflict as on any store', async () => {
    const loader = store.bulkLoader();
    loader.append([loaded('a', 0n), loaded('a', 1n)]);
    loader.finish();

    await expect(store.appendToStream('a', 0n, [{ type: 'X', schemaVersion: 1, data: {}, metadata: {} }])).rejects.toBeInstanceOf(
      WrongExpectedRevisionError,
    );
    const next = await store.appendToStream('a', 1n, [{ type: 'X', schemaVersion: 1, data: {}, metadata: {} }]);
    expect(next).toEqual({ nextExpectedRevision: 2n, position: 3n });
  });

  it('given a revision loaded twice, when the load finishes, then building the index refuses it', () => {
    const loader = store.bulkLoader();
    loader.append([loaded('a', 0n), loaded('a', 0n)]);
    expect(() => loader.finish()).toThrow(/UNIQUE/);
  });

  it('given a store that already holds events, when a bulk load starts, then it is refused and nothing changes', async () => {
    await store.appendToStream('a', 'no_stream', [{ type: 'X', schemaVersion: 1, data: {}, metadata: {} }]);
    expect(() => store.bulkLoader()).toThrow(/empty event store only/);
    await expect(store.appendToStream('a', 'no_stream', [{ type: 'X', schemaVersion: 1, data: {}, metadata: {} }])).rejects.toBeInstanceOf(
      WrongExpectedRevisionError,
    );
    expect(await store.headPosition()).toBe(1n);
  });

  it('given a fresh file, then its (stream, revision) uniqueness is one named index, not a second copy of it', () => {
    const indexes = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
      .pluck()
      .all();
    expect(indexes).toEqual(['events_by_stream_revision']);
  });
});
