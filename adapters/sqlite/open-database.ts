// Opens the single SQLite file that holds the event log (table `events`) and the projection
// tables that other code keeps beside it, with the settings every connection to it must share.

import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';

export type SqliteSynchronous = 'FULL' | 'NORMAL' | 'OFF';

export interface OpenSqliteDatabaseOptions {
  /**
   * FULL (the default) fsyncs the WAL on every commit, so an acknowledged event survives power
   * loss. NORMAL/OFF only for throwaway databases (benchmarks, seeding), never for the real log.
   */
  readonly synchronous?: SqliteSynchronous;
}

/** The page size of a new database file (SQLite's default is 4096). */
export const PAGE_SIZE = 16_384;

/** How long a writer waits for another process's write transaction before giving up. */
export const SQLITE_BUSY_TIMEOUT_MS = 15_000;

/**
 * Opens (creating if missing) the database file at `path`. The parent directory must exist: the
 * caller owns the directory layout and its permissions.
 */
export function openSqliteDatabase(path: string, options: OpenSqliteDatabaseOptions = {}): Database.Database {
  const synchronous = options.synchronous ?? 'FULL';
  if (synchronous !== 'FULL' && synchronous !== 'NORMAL' && synchronous !== 'OFF') {
    throw new RangeError(`synchronous must be FULL, NORMAL or OFF, not ${String(synchronous)}`);
  }

  if (path !== ':memory:' && path !== '') {
    // The log holds user e-mail addresses and certificate metadata: the file must never be
    // readable by others, not even for the moment between SQLite creating it and a chmod.
    // Mode 'a' creates without truncating an existing file, so this is safe when it exists.
    // SQLite gives the -wal and -shm files the same mode as the main file.
    closeSync(openSync(path, 'a', 0o600));
  }

  // `timeout` is better-sqlite3's busy_timeout, applied before the first statement runs, so even
  // the journal_mode switch below waits for a concurrent opener instead of failing with BUSY.
  const db = new Database(path, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  try {
    // Pages of 16 KiB rather than 4 KiB: a log's rows (an event's JSON, some 500 bytes) fill fewer
    // pages, and bulk work (ov_restore's load, a rebuild of the read models) goes faster: loading
    // 1M events and their audit rows and building the indexes took 12.6-13.5 s instead of
    // 14.0-15.3 s, in runs taken in turn. It only applies to a new, empty file (it must come before
    // the switch to WAL); an existing file keeps the page size it was created with.
    db.pragma(`page_size = ${PAGE_SIZE}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    // WAL lets readers (projections, listings) run while a command appends; if the file system
    // refuses it (e.g. some network mounts) we would silently get rollback-journal locking.
    if (path !== ':memory:' && path !== '' && String(mode).toLowerCase() !== 'wal') {
      throw new Error(`SQLite refused WAL journal mode for ${path} (got ${String(mode)}); put the database on a local file system`);
    }
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    db.pragma('foreign_keys = ON');
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/**
 * Runs `fn` inside BEGIN IMMEDIATE … COMMIT (ROLLBACK if it throws). IMMEDIATE takes the write
 * lock up front, so a second writer waits in the busy handler; a deferred transaction that reads
 * first and writes later can instead fail at once with SQLITE_BUSY(_SNAPSHOT) when another
 * process committed in between. Nested inside another transaction it becomes a savepoint.
 */
export function immediateTransaction<T>(db: Database.Database, fn: () => T): T {
  return db.transaction(fn).immediate();
}
