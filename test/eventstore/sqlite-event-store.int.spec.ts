import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventStoreUnavailableError, WrongExpectedRevisionError, type NewEvent } from '../../adapters/eventstore/event-store.js';
import { SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import { PAGE_SIZE, immediateTransaction, openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { describeEventStoreContract } from './event-store-contract.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ovpn-ledger-es-'));
}

function ev(type: string, data: unknown = {}): NewEvent {
  return { type, schemaVersion: 1, data, metadata: { by: 'test' } };
}

describeEventStoreContract('SqliteEventStore (file in a temp dir)', async () => {
  const dir = tempDir();
  const db = openSqliteDatabase(join(dir, 'ledger.db'));
  return {
    store: new SqliteEventStore(db),
    cleanup: async () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteEventStore on a real file', () => {
  let dir: string;
  let path: string;
  const opened: Database.Database[] = [];
  const open = (): Database.Database => {
    const db = openSqliteDatabase(path);
    opened.push(db);
    return db;
  };

  beforeEach(() => {
    dir = tempDir();
    path = join(dir, 'ledger.db');
  });

  afterEach(() => {
    for (const db of opened.splice(0)) if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('given events appended and the database closed, when the file is reopened, then the same events are there and appends continue at the next revision and position', async () => {
    const first = new SqliteEventStore(open());
    await first.appendToStream('user-a', 'no_stream', [ev('A0', { n: 'ü' }), ev('A1')]);
    await first.appendToStream('user-b', 'no_stream', [ev('B0')]);
    const before = await first.readAll({ after: 0n, limit: 100 });
    opened[0]!.close();

    const reopened = new SqliteEventStore(open());

    expect(await reopened.readAll({ after: 0n, limit: 100 })).toStrictEqual(before);
    expect(await reopened.headPosition()).toBe(3n);
    const next = await reopened.appendToStream('user-a', 1n, [ev('A2')]);
    expect(next).toEqual({ nextExpectedRevision: 2n, position: 4n });
    await expect(reopened.appendToStream('user-b', 'no_stream', [ev('B?')])).rejects.toBeInstanceOf(
      WrongExpectedRevisionError,
    );
  });

  it('given no database file, when it is opened, then the file (and its WAL) is created with mode 0600', async () => {
    const store = new SqliteEventStore(open());
    await store.appendToStream('user-a', 'no_stream', [ev('A0')]);

    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(`${path}-wal`).mode & 0o777).toBe(0o600);
  });

  it('given an existing database file, when it is opened again, then its contents are kept (opening never truncates)', async () => {
    await new SqliteEventStore(open()).appendToStream('user-a', 'no_stream', [ev('A0')]);
    opened[0]!.close();
    const sizeBefore = statSync(path).size;

    const store = new SqliteEventStore(open());

    expect(statSync(path).size).toBe(sizeBefore);
    expect(await store.readStream('user-a')).toHaveLength(1);
  });

  it('given a path that is not a database, when it is opened, then it fails instead of overwriting the file', () => {
    writeFileSync(path, 'this is not sqlite, and it is someone else\'s file\n'.repeat(100));

    expect(() => new SqliteEventStore(open())).toThrow();
  });

  it('given the default options, when the database is opened, then it uses WAL, synchronous FULL, a 15 s busy timeout and foreign keys', () => {
    const db = open();

    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(db.pragma('busy_timeout', { simple: true })).toBe(15_000);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
  });

  it('given no database file, when it is created, then its pages are 16 KiB', async () => {
    const store = new SqliteEventStore(open());
    await store.appendToStream('user-a', 'no_stream', [ev('A0')]);

    expect(opened[0]!.pragma('page_size', { simple: true })).toBe(PAGE_SIZE);
    expect(PAGE_SIZE).toBe(16_384);
  });

  it('given a database file created with 4 KiB pages, when it is opened, then it keeps them and its events', async () => {
    const old = new Database(path);
    old.pragma('page_size = 4096');
    old.pragma('journal_mode = WAL');
    old.close();
    await new SqliteEventStore(open()).appendToStream('user-a', 'no_stream', [ev('A0')]);
    opened[0]!.close();

    const reopened = open();

    expect(reopened.pragma('page_size', { simple: true })).toBe(4096);
    expect((await new SqliteEventStore(reopened).readStream('user-a')).map((e) => e.type)).toStrictEqual(['A0']);
  });

  it('given synchronous NORMAL, when the database is opened, then that setting is used', () => {
    const db = openSqliteDatabase(path, { synchronous: 'NORMAL' });
    opened.push(db);

    expect(db.pragma('synchronous', { simple: true })).toBe(1);
  });

  it('given another connection holding the write lock past the busy timeout, when appending, then it rejects with EventStoreUnavailableError saying what to do, and writes nothing', async () => {
    const db = open();
    const store = new SqliteEventStore(db);
    db.pragma('busy_timeout = 200'); // so the test does not wait the production 15 s
    const other = open();
    other.exec('BEGIN IMMEDIATE');

    const error = await store.appendToStream('user-a', 'no_stream', [ev('A0')]).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(EventStoreUnavailableError);
    expect((error as Error).message).toMatch(/locked by another process.*retry/);
    other.exec('ROLLBACK');
    expect(await store.readStream('user-a')).toEqual([]);
  });

  it('given appendManySync with several streams where one expected revision is wrong, when it runs, then it throws WrongExpectedRevisionError and none of the streams is written', () => {
    const store = new SqliteEventStore(open());
    store.appendToStreamSync('user-b', 'no_stream', [ev('B0')]);

    expect(() =>
      store.appendManySync([
        { streamId: 'user-a', expectedRevision: 'no_stream', events: [ev('A0'), ev('A1')] },
        { streamId: 'user-b', expectedRevision: 'no_stream', events: [ev('B1')] },
      ]),
    ).toThrow(WrongExpectedRevisionError);

    expect(store.readStreamSync('user-a')).toEqual([]);
    expect(store.headPositionSync()).toBe(1n);
  });

  it('given appendManySync with several streams, when it succeeds, then each stream gets its own result and positions follow the batch order', () => {
    const store = new SqliteEventStore(open());

    const results = store.appendManySync([
      { streamId: 'user-a', expectedRevision: 'no_stream', events: [ev('A0'), ev('A1')] },
      { streamId: 'user-b', expectedRevision: 'any', events: [ev('B0')] },
      { streamId: 'user-a', expectedRevision: 1n, events: [ev('A2')] },
    ]);

    expect(results).toEqual([
      { nextExpectedRevision: 1n, position: 2n },
      { nextExpectedRevision: 0n, position: 3n },
      { nextExpectedRevision: 2n, position: 4n },
    ]);
    expect(store.readAllSync({ after: 0n, limit: 10 }).map((e) => e.type)).toEqual(['A0', 'A1', 'B0', 'A2']);
  });

  it('given an append inside an outer immediateTransaction that later throws, when it rolls back, then the event is gone too (the store joins the caller\'s transaction)', () => {
    const db = open();
    const store = new SqliteEventStore(db);

    expect(() =>
      immediateTransaction(db, () => {
        store.appendToStreamSync('user-a', 'no_stream', [ev('A0')]);
        throw new Error('projection update failed');
      }),
    ).toThrow('projection update failed');

    expect(store.headPositionSync()).toBe(0n);
  });

  it('given a store that does not own the connection, when it is closed, then the connection stays open for the projections; with ownsDatabase it is closed', async () => {
    const shared = open();
    await new SqliteEventStore(shared).close();
    expect(shared.open).toBe(true);

    const owned = open();
    await new SqliteEventStore(owned, { ownsDatabase: true }).close();
    expect(owned.open).toBe(false);
  });
});
