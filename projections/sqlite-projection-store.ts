// Where the read models live: tables in the gateway's SQLite file, caught up from the event log
// through one checkpoint (the last global position applied). Every projection is updated in the
// same transaction as the checkpoint, so a killed process leaves them consistent, and two
// processes catching up at once never apply an event twice.
import type BetterSqlite3 from 'better-sqlite3';
import * as E from 'fp-ts/lib/Either.js';
import type { Envelope } from '../domain/events.js';
import { decodeStoredEvent, describeDecodeError, type StoredEventLike } from '../domain/upcasters.js';
import type { CalendarDate, CrlReason, Traffic } from '../domain/values.js';
import type { AuditRecord } from './audit-history.js';
import type { CrlEntry } from './crl-entries.js';
import type { UserRow } from './user-list.js';
import { evolveGateway, type GatewayRow } from './gateway.js';
import { foldUserFacts, projectEvent, projectStoredPage, sortedUserColumns, userColumns, type RowPage, type RowSink } from './projected-rows.js';
import { ReadPipeline, ReadWorkerUnavailable, readWorkerScript, type Delivery, type ProjectedPage } from './projection-read-pipeline.js';
import { sqliteLogPageSource } from '../adapters/eventstore/sqlite-event-store.js';

type Db = BetterSqlite3.Database;

export type ReadAllPage = (after: bigint, limit: number) => Promise<readonly StoredEventLike[]>;

export class ProjectionDecodeError extends Error {
  override readonly name = 'ProjectionDecodeError';
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS projection_checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  position TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
  stream_id TEXT PRIMARY KEY,
  profile_id TEXT NOT NULL,
  email TEXT NOT NULL,
  traffic TEXT NOT NULL,
  status TEXT NOT NULL,
  expiration_date TEXT NOT NULL,
  first_name TEXT NOT NULL,
  last_name TEXT NOT NULL,
  created_at TEXT NOT NULL,
  auto_renew INTEGER NOT NULL,
  current_serial TEXT NOT NULL,
  renewals INTEGER NOT NULL,
  row TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
  serial TEXT PRIMARY KEY,
  stream_id TEXT NOT NULL,
  not_after TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crl_entries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  serial TEXT NOT NULL UNIQUE,
  revoked_at TEXT NOT NULL,
  reason TEXT NOT NULL,
  der BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
  position INTEGER PRIMARY KEY,
  stream_id TEXT NOT NULL,
  type TEXT NOT NULL,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  details TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gateway (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  row TEXT NOT NULL
);
`;

const noUserRow = (): undefined => undefined;

/** An event of the log that does not decode, in the same words whichever thread decoded it. */
const decodeFailure = (position: bigint, streamId: string, detail: string): ProjectionDecodeError =>
  new ProjectionDecodeError(`event at position ${position} (${streamId}): ${detail}`);

/** What a whole-log pass projected: how many events, the last position, the user rows (sortedUserColumns). */
interface WholeLogPass {
  readonly applied: number;
  readonly last: bigint;
  readonly userColumns: readonly (readonly unknown[])[];
}

// The indexes of users (see USER_INDEXES) and audit_log are created by the constructor, beside
// SCHEMA: a whole-log pass drops them and builds them once after the rows.
const USER_INDEXES = [
  { name: 'users_by_email', create: 'CREATE INDEX IF NOT EXISTS users_by_email ON users (email, traffic)' },
  { name: 'users_by_status_expiry', create: 'CREATE INDEX IF NOT EXISTS users_by_status_expiry ON users (status, expiration_date)' },
  // ov_user_list reads active rows in (email, traffic) order off this index alone, with no sort:
  // it holds every column the list prints, so the wide rows (with their JSON) are never visited.
  // At 92,000 profiles that took the listing query from ~0.9 s to ~0.3 s.
  {
    name: 'users_listing',
    create: `CREATE INDEX IF NOT EXISTS users_listing ON users
      (status, email, traffic, first_name, last_name, expiration_date, created_at, auto_renew, current_serial, renewals)`,
  },
];

const AUDIT_BY_TYPE_AT = { name: 'audit_by_type_at', create: 'CREATE INDEX IF NOT EXISTS audit_by_type_at ON audit_log (type, at)' };
const AUDIT_INDEXES = [{ name: 'audit_by_stream', create: 'CREATE INDEX IF NOT EXISTS audit_by_stream ON audit_log (stream_id, position)' }, AUDIT_BY_TYPE_AT];

// Pages of the whole-log pass: large enough to amortise each read, small enough to stay in memory.
const WHOLE_LOG_PAGE = 20_000;
// Pages of the read worker, and how many it may decode ahead of the pages applied.
const PIPELINE_PAGE = 2_000;
const PIPELINE_WINDOW = 8;
// Pages this thread projected itself that wait for earlier ones from the worker, at most.
const MAX_PAGES_AHEAD = 2;
// Audit rows go in AUDIT_ROWS_PER_INSERT at a time: one statement step instead of 64.
const AUDIT_ROWS_PER_INSERT = 64;
// The page cache of a whole-log pass with the read worker (KiB).
const WHOLE_LOG_CACHE_KIB = 131_072;

const PROJECTION_TABLES = ['users', 'certificates', 'crl_entries', 'audit_log', 'gateway', 'projection_checkpoint'];

/**
 * The shape of the read-model tables. Read models are disposable: when a release changes their
 * shape, they are dropped and rebuilt from the log on the next catch-up, never migrated.
 */
const READ_MODEL_SHAPE = 3;

function resetIfShapeChanged(db: Db): void {
  const current = () =>
    db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'read_model_shape'`).get() &&
    db.prepare<[], { version: number }>('SELECT version FROM read_model_shape WHERE id = 1').get()?.version === READ_MODEL_SHAPE;
  // Checked outside a write transaction first: every command opens the store, and a write lock
  // (with its fsync) on every start would cost more than the check.
  if (current()) return;
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS read_model_shape (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)');
    const row = db.prepare<[], { version: number }>('SELECT version FROM read_model_shape WHERE id = 1').get();
    if (row?.version === READ_MODEL_SHAPE) return;
    for (const table of PROJECTION_TABLES) db.exec(`DROP TABLE IF EXISTS ${table}`);
    if (db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'`).get()) {
      db.exec(`DELETE FROM sqlite_sequence WHERE name = 'crl_entries'`);
    }
    db.prepare('INSERT INTO read_model_shape (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version').run(READ_MODEL_SHAPE);
  }).immediate();
}

export interface ProjectionStoreOptions {
  /** DER of one CRL entry: computed once when the revocation is projected, reused by every render. */
  readonly encodeCrlEntry: (entry: CrlEntry) => Buffer;
  readonly batchSize?: number;
  /**
   * The read-and-decode worker of a whole-log pass over the embedded log: its script, or false
   * for the single-thread path. By default the script beside this module (or the bundle's).
   */
  readonly readWorker?: URL | false;
}

export class SqliteProjectionStore {
  private readonly batchSize: number;
  private readonly stmt;
  /** How the last whole-log pass ran (for benchmarks and tests). */
  lastWholeLogPass: 'single' | 'pipelined' | undefined;
  /** Of the last pass with the read worker, how many pages each thread projected (for benchmarks and tests). */
  lastPipelinedPages: { readonly worker: number; readonly thisThread: number } | undefined;
  /** Audit rows not yet inserted, six values each; flushed before every commit. */
  private readonly auditRows: unknown[] = [];
  /** Where projectEvent puts the rows of an event: into the tables (the audit rows buffered). */
  private readonly sink: RowSink = {
    audit: (position, streamId, type, at, actor, details) => {
      const rows = this.auditRows;
      rows.push(position, streamId, type, at, actor, details);
      if (rows.length === 6 * AUDIT_ROWS_PER_INSERT) {
        this.stmt.insertAuditRows.run(rows);
        rows.length = 0;
      }
    },
    certificate: (serial, streamId, notAfter) => {
      this.stmt.insertCertificate.run(serial, streamId, notAfter);
    },
    crlEntry: (entry) => {
      this.stmt.insertCrlEntry.run(entry.serial, entry.revokedAt, entry.reason, this.options.encodeCrlEntry(entry));
    },
    gateway: (event) => {
      const previous = this.stmt.gateway.get();
      const next = evolveGateway(previous ? (JSON.parse(previous.row) as GatewayRow) : undefined, event);
      if (next) this.stmt.setGateway.run(JSON.stringify(next));
    },
  };
  private readonly userRowOf = (streamId: string): UserRow | undefined => this.userRow(streamId);

  constructor(
    private readonly db: Db,
    private readonly options: ProjectionStoreOptions,
  ) {
    resetIfShapeChanged(db);
    db.exec(SCHEMA);
    // Created here too, so a whole-log pass that died between dropping and recreating them heals.
    for (const index of [...USER_INDEXES, ...AUDIT_INDEXES]) db.exec(index.create);
    this.batchSize = options.batchSize ?? 5_000;
    this.stmt = {
      checkpoint: db.prepare<[], { position: string }>('SELECT position FROM projection_checkpoint WHERE id = 1'),
      setCheckpoint: db.prepare<[string]>(
        'INSERT INTO projection_checkpoint (id, position) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET position = excluded.position',
      ),
      user: db.prepare<[string], { row: string }>('SELECT row FROM users WHERE stream_id = ?'),
      upsertUser: db.prepare<unknown[]>(
        `INSERT INTO users (stream_id, profile_id, email, traffic, status, expiration_date, first_name, last_name, created_at,
           auto_renew, current_serial, renewals, row) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (stream_id) DO UPDATE SET profile_id = excluded.profile_id, email = excluded.email,
           traffic = excluded.traffic, status = excluded.status, expiration_date = excluded.expiration_date,
           first_name = excluded.first_name, last_name = excluded.last_name, created_at = excluded.created_at,
           auto_renew = excluded.auto_renew, current_serial = excluded.current_serial, renewals = excluded.renewals, row = excluded.row`,
      ),
      insertCertificate: db.prepare<[string, string, string]>(
        'INSERT OR IGNORE INTO certificates (serial, stream_id, not_after) VALUES (?, ?, ?)',
      ),
      insertCrlEntry: db.prepare<[string, string, string, Buffer]>(
        'INSERT OR IGNORE INTO crl_entries (serial, revoked_at, reason, der) VALUES (?, ?, ?, ?)',
      ),
      insertAudit: db.prepare<unknown[]>('INSERT INTO audit_log (position, stream_id, type, at, actor, details) VALUES (?, ?, ?, ?, ?, ?)'),
      insertAuditRows: db.prepare<unknown[]>(
        `INSERT INTO audit_log (position, stream_id, type, at, actor, details) VALUES ${Array(AUDIT_ROWS_PER_INSERT).fill('(?, ?, ?, ?, ?, ?)').join(', ')}`,
      ),
      gateway: db.prepare<[], { row: string }>('SELECT row FROM gateway WHERE id = 1'),
      setGateway: db.prepare<[string]>(
        'INSERT INTO gateway (id, row) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET row = excluded.row',
      ),
    };
  }

  checkpoint(): bigint {
    const r = this.stmt.checkpoint.get();
    return r ? BigInt(r.position) : 0n;
  }

  /**
   * Applies every event after the checkpoint; returns how many were applied. From checkpoint 0
   * (a new gateway, a rebuild, the first command after a restore) the whole log is projected in
   * one pass; otherwise a page at a time.
   */
  async catchUp(readAll: ReadAllPage): Promise<number> {
    if (this.checkpoint() === 0n) {
      const projected = await this.projectWholeLog(readAll);
      if (projected !== undefined) return projected;
    }
    let applied = 0;
    for (;;) {
      const after = this.checkpoint();
      const page = await readAll(after, this.batchSize);
      if (page.length === 0) return applied;
      applied += this.applyPage(page);
    }
  }

  /** Drops every read model and rebuilds it from the whole log. */
  async rebuild(readAll: ReadAllPage): Promise<number> {
    this.db.transaction(() => this.clear()).immediate();
    return this.catchUp(readAll);
  }

  private clear(): void {
    for (const table of PROJECTION_TABLES) this.db.exec(`DELETE FROM ${table}`);
    this.db.exec(`DELETE FROM sqlite_sequence WHERE name = 'crl_entries'`);
  }

  /**
   * The whole log in one transaction: user rows are held in memory and written once at the end,
   * and the audit indexes are built once after the rows instead of maintained row by row. A
   * killed process rolls the transaction back and leaves the read models empty, as they were.
   * Returns undefined when another process projected the log meanwhile.
   */
  private async projectWholeLog(readAll: ReadAllPage): Promise<number | undefined> {
    const cacheSize = this.db.pragma('cache_size', { simple: true }) as number;
    this.db.exec('BEGIN IMMEDIATE');
    try {
      if (this.checkpoint() !== 0n) {
        this.db.exec('COMMIT');
        return undefined;
      }
      this.clear();
      for (const index of [...AUDIT_INDEXES, ...USER_INDEXES]) this.db.exec(`DROP INDEX IF EXISTS ${index.name}`);
      this.lastPipelinedPages = undefined;
      let pass: WholeLogPass | undefined;
      let pipelined = false;
      const first = await readAll(0n, WHOLE_LOG_PAGE);
      // A long embedded log: a worker thread shares the reading and decoding with this one.
      const pipeline = first.length === WHOLE_LOG_PAGE ? this.startReadPipeline(first) : undefined;
      if (pipeline) {
        try {
          pass = await this.projectPipelined(pipeline, readAll);
          pipelined = pass !== undefined;
        } finally {
          await pipeline.close();
        }
      }
      pass ??= await this.projectInThisThread(readAll, pipeline ? undefined : first);
      this.flushAudit();
      this.insertUserColumns(pass.userColumns);
      for (const index of [...AUDIT_INDEXES, ...USER_INDEXES]) this.db.exec(index.create);
      if (pass.last > 0n) this.stmt.setCheckpoint.run(pass.last.toString());
      this.db.exec('COMMIT');
      this.lastWholeLogPass = pipelined ? 'pipelined' : 'single';
      return pass.applied;
    } catch (error) {
      this.auditRows.length = 0;
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw error;
    } finally {
      this.db.pragma(`cache_size = ${cacheSize}`);
    }
  }

  /** The whole log read, decoded and projected here; `first` is its first page when already read. */
  private async projectInThisThread(
    readAll: ReadAllPage,
    first: readonly StoredEventLike[] | undefined,
  ): Promise<WholeLogPass> {
    const users = new Map<string, UserRow | undefined>();
    let last = 0n;
    let applied = 0;
    for (let page = first ?? (await readAll(last, WHOLE_LOG_PAGE)); page.length > 0; page = await readAll(last, WHOLE_LOG_PAGE)) {
      for (const stored of page) {
        this.apply(this.decode(stored), users, false);
        last = stored.position;
      }
      applied += page.length;
    }
    return { applied, last, userColumns: sortedUserColumns(users) };
  }

  /**
   * The whole log with the read worker: this thread inserts every page's rows in log order, and
   * whenever the next page is not in yet it claims one and projects it itself, handing the
   * worker its user facts. Undefined when the worker never got going (nothing inserted then).
   */
  private async projectPipelined(
    pipeline: ReadPipeline,
    readAll: ReadAllPage,
  ): Promise<WholeLogPass | undefined> {
    // With the worker, this thread has time to spare: a larger page cache keeps the tables'
    // B-trees in memory (measured: faster; in one thread it made no difference, only a larger
    // RSS). And the (type, at) index is kept as the rows go in, which is nearly in insertion
    // order: 1M events, the pass took as long, the final index builds 1.9 s instead of 3.1 s. The
    // (stream, position) index, kept as well, slowed the pass by 3 s, so it is built at the end.
    this.db.pragma(`cache_size = -${WHOLE_LOG_CACHE_KIB}`);
    this.db.exec(AUDIT_BY_TYPE_AT.create);
    /** Pages projected (by either thread) that are not next in line yet, or their first invalid event. */
    const ahead = new Map<number, RowPage | Error>();
    let next = 0;
    let last = 0n;
    let applied = 0;
    let userColumns: readonly (readonly unknown[])[] | undefined;
    let projectedHere = 0;
    const take = (delivery: Delivery): void => {
      if (delivery.kind === 'end') userColumns = delivery.userColumns;
      else if (delivery.kind === 'page') ahead.set(delivery.index, delivery.page);
      else {
        const e = delivery.error;
        ahead.set(delivery.index, decodeFailure(e.position, e.streamId, e.detail));
      }
    };
    try {
      while (next < pipeline.pages) {
        const page = ahead.get(next);
        if (page !== undefined) {
          ahead.delete(next);
          if (page instanceof Error) throw page;
          if (page.count > 0) {
            if (page.first <= last) throw new Error(`internal error: position ${page.first} projected after ${last}`);
            this.insertRows(page);
            last = page.last;
            applied += page.count;
          }
          next++;
          continue;
        }
        const delivered = await pipeline.poll();
        if (delivered) {
          take(delivered);
          continue;
        }
        const claimed = ahead.size < MAX_PAGES_AHEAD ? pipeline.claim() : undefined;
        if (claimed) {
          ahead.set(claimed.index, await this.projectClaimedPage(pipeline, readAll, claimed));
          projectedHere++;
        }
        else take(await pipeline.next());
      }
      this.flushAudit();
      // Every page is in; while the worker folds the last facts and serialises the user rows,
      // this thread builds the audit indexes (which the end would otherwise wait for as well).
      for (const index of AUDIT_INDEXES) this.db.exec(index.create);
      while (!userColumns) take(await pipeline.next());
      this.lastPipelinedPages = { worker: pipeline.pages - projectedHere, thisThread: projectedHere };
      return { applied, last, userColumns };
    } catch (error) {
      if (!(error instanceof ReadWorkerUnavailable)) throw error;
      // The worker never got going: this thread reads the log itself, from the start again.
      this.auditRows.length = 0;
      this.clear();
      return undefined;
    }
  }

  /** A page claimed by this thread, projected as the worker does; its user facts go to the worker. */
  private async projectClaimedPage(
    pipeline: ReadPipeline,
    readAll: ReadAllPage,
    claimed: { readonly index: number; readonly after: bigint; readonly upTo: bigint },
  ): Promise<RowPage | Error> {
    const { page, facts, invalid } = projectStoredPage(await readAll(claimed.after, PIPELINE_PAGE), claimed.upTo);
    if (invalid) return decodeFailure(invalid.stored.position, invalid.stored.streamId, describeDecodeError(invalid.error));
    pipeline.facts(claimed.index, facts);
    return page;
  }

  /**
   * The whole log projected while it is being written, for a store built from nothing (the
   * staging store of ov_restore, whose events are decoded and checked as they are read from the
   * archive): the caller appends each batch and hands the same events over, decoded, with the
   * positions the store gave them, so no event is read back or decoded a second time. The tables
   * come out as projectWholeLog makes them: user rows held in memory and written at the end, the
   * audit and users indexes built once after the rows. Each batch is one transaction; nobody else writes to
   * such a store, and a store given up half way is thrown away with its directory.
   */
  projectLogAsWritten(): { apply(events: readonly Envelope[]): void; finish(): number } {
    const pass = this.asWritten();
    return {
      apply: (events) =>
        pass.batch(() => {
          for (const event of events) {
            pass.advance(event.position, event.position);
            this.apply(event, pass.users, false);
          }
          return events.length;
        }),
      finish: pass.finish,
    };
  }

  /**
   * As projectLogAsWritten, for a caller that projected the events itself (with projectEventRows
   * and userFactOf): each batch is the rows of the events appended last, in log order, in pages
   * with their user facts as pushUserFact lists them. ov_restore's checking thread projects what
   * it decodes, and its staging thread, which stores the events, inserts the rows without
   * decoding them again.
   */
  projectRowsAsWritten(): { apply(pages: readonly { readonly page: RowPage; readonly userFacts: readonly unknown[] }[]): void; finish(): number } {
    const pass = this.asWritten();
    return {
      apply: (pages) =>
        pass.batch(() => {
          let count = 0;
          for (const { page, userFacts } of pages) {
            if (page.count === 0) continue;
            pass.advance(page.first, page.last);
            this.insertRows(page);
            foldUserFacts(userFacts, pass.users);
            count += page.count;
          }
          return count;
        }),
      finish: pass.finish,
    };
  }

  /** The frame of both: empty read models without their indexes, a transaction per batch, the user rows and indexes at the end. */
  private asWritten(): {
    users: Map<string, UserRow | undefined>;
    /** Says that the events from `first` to `upTo` are being projected: after the last ones, in order. */
    advance(first: bigint, upTo: bigint): void;
    batch(project: () => number): void;
    finish(): number;
  } {
    if (this.checkpoint() !== 0n) throw new Error('internal error: the log is projected as written only into empty read models');
    this.db
      .transaction(() => {
        this.clear();
        for (const index of [...AUDIT_INDEXES, ...USER_INDEXES]) this.db.exec(`DROP INDEX IF EXISTS ${index.name}`);
      })
      .immediate();
    const users = new Map<string, UserRow | undefined>();
    let last = 0n;
    let applied = 0;
    const batch = this.db.transaction((project: () => number) => {
      applied += project();
      this.flushAudit();
    });
    return {
      users,
      advance: (first, upTo) => {
        if (first <= last || upTo < first) throw new Error(`internal error: positions ${first} to ${upTo} projected after ${last}`);
        last = upTo;
      },
      batch: (project) => batch.immediate(project),
      finish: () => {
        this.db
          .transaction(() => {
            this.writeUsers(users, true);
            // Built once over the sorted rows rather than kept row by row (1M events: the users
            // write took 2.0 s with its three indexes in place).
            for (const index of [...AUDIT_INDEXES, ...USER_INDEXES]) this.db.exec(index.create);
            if (last > 0n) this.stmt.setCheckpoint.run(last.toString());
          })
          .immediate();
        return applied;
      },
    };
  }

  /**
   * The read worker for the whole log, when `first` is a page of the embedded log read through
   * this very connection (so the worker's own connection reads the same file, whose write lock
   * this pass holds: nobody appends meanwhile) and the worker's script is there.
   */
  private startReadPipeline(first: readonly StoredEventLike[]): ReadPipeline | undefined {
    const source = sqliteLogPageSource(first);
    if (source?.db !== this.db || this.db.memory) return undefined;
    const script = readWorkerScript(this.options.readWorker);
    if (!script) return undefined;
    try {
      const claims = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
      return new ReadPipeline(script, { file: this.db.name, after: 0n, head: source.head(), pageSize: PIPELINE_PAGE, window: PIPELINE_WINDOW, claims });
    } catch {
      return undefined;
    }
  }

  private decode(stored: StoredEventLike): Envelope {
    const decoded = decodeStoredEvent(stored);
    if (E.isLeft(decoded)) throw decodeFailure(stored.position, stored.streamId, describeDecodeError(decoded.left));
    return decoded.right;
  }

  /** `sorted`: in stream id order, so that the primary key is built by appending (a whole-log pass). */
  private writeUsers(users: ReadonlyMap<string, UserRow | undefined>, sorted = false): void {
    if (sorted) return this.insertUserColumns(sortedUserColumns(users));
    for (const [streamId, row] of users) if (row) this.stmt.upsertUser.run(userColumns(streamId, row));
  }

  /** User rows as sortedUserColumns gives them. */
  private insertUserColumns(rows: readonly (readonly unknown[])[]): void {
    for (const columns of rows) this.stmt.upsertUser.run(columns);
  }

  private applyPage(page: readonly StoredEventLike[]): number {
    return this.db
      .transaction(() => {
        // Another process may have applied some of this page since we read the checkpoint.
        const current = this.checkpoint();
        const users = new Map<string, UserRow | undefined>();
        let applied = 0;
        let last = current;
        for (const stored of page) {
          if (stored.position <= current) continue;
          this.apply(this.decode(stored), users, true);
          last = stored.position;
          applied++;
        }
        this.flushAudit();
        this.writeUsers(users);
        if (last > current) this.stmt.setCheckpoint.run(last.toString());
        return applied;
      })
      .immediate();
  }

  /**
   * `lookUp`: whether a user row not yet in `users` may exist in the table (false when projecting
   * from empty). The audit row is buffered: flushAudit() before the transaction ends.
   */
  private apply(event: Envelope, users: Map<string, UserRow | undefined>, lookUp: boolean): void {
    projectEvent(event, this.sink, users, lookUp ? this.userRowOf : noUserRow);
  }

  /** The rows the read worker projected from a page of events, inserted in log order. */
  private insertRows(page: ProjectedPage): void {
    const audit = page.audit;
    const chunk = 6 * AUDIT_ROWS_PER_INSERT;
    let i = 0;
    if (this.auditRows.length === 0) {
      for (; i + chunk <= audit.length; i += chunk) this.stmt.insertAuditRows.run(audit.slice(i, i + chunk));
    }
    for (; i < audit.length; i += 6) {
      this.sink.audit(audit[i] as bigint, audit[i + 1] as string, audit[i + 2] as string, audit[i + 3] as string, audit[i + 4] as string, audit[i + 5] as string);
    }
    const certificates = page.certificates;
    for (let c = 0; c < certificates.length; c += 3) this.stmt.insertCertificate.run(certificates[c]!, certificates[c + 1]!, certificates[c + 2]!);
    const crl = page.crl;
    for (let c = 0; c < crl.length; c += 3) this.sink.crlEntry({ serial: crl[c]!, revokedAt: crl[c + 1]!, reason: crl[c + 2] as CrlReason });
    for (const event of page.gateway) this.sink.gateway(event);
  }

  private flushAudit(): void {
    const rows = this.auditRows;
    for (let i = 0; i < rows.length; i += 6) this.stmt.insertAudit.run(rows.slice(i, i + 6));
    rows.length = 0;
  }

  private userRow(streamId: string): UserRow | undefined {
    const r = this.stmt.user.get(streamId);
    return r ? (JSON.parse(r.row) as UserRow) : undefined;
  }

  // ---- queries -------------------------------------------------------------------------------

  gateway(): GatewayRow | undefined {
    const r = this.stmt.gateway.get();
    return r ? (JSON.parse(r.row) as GatewayRow) : undefined;
  }

  findUser(email: string, traffic: Traffic): UserRow | undefined {
    const r = this.db
      .prepare<[string, string], { row: string }>('SELECT row FROM users WHERE email = ? AND traffic = ?')
      .get(email, traffic);
    return r ? (JSON.parse(r.row) as UserRow) : undefined;
  }

  /**
   * The list as text lines or JSON objects, rendered by SQLite itself: one string per profile
   * crosses into JavaScript instead of nine, which at 100,000 profiles is most of the command's
   * time and garbage.
   */
  renderedUsers(filter: { expiredBefore?: CalendarDate }, format: 'table' | 'json'): string[] {
    const where = filter.expiredBefore === undefined ? `status = 'active'` : `status = 'active' AND expiration_date < @before`;
    const order = filter.expiredBefore === undefined ? 'email, traffic' : 'expiration_date, email, traffic';
    const params = filter.expiredBefore === undefined ? {} : { before: filter.expiredBefore };
    if (format === 'json') {
      return this.db
        .prepare(
          `SELECT json_object('email', email, 'traffic', traffic, 'firstName', first_name, 'lastName', last_name,
             'expirationDate', expiration_date, 'createdAt', created_at, 'autoRenew', json(CASE auto_renew WHEN 1 THEN 'true' ELSE 'false' END),
             'serial', current_serial, 'renewals', renewals) FROM users WHERE ${where} ORDER BY ${order}`,
        )
        .pluck()
        .all(params) as string[];
    }
    const widths = this.db
      .prepare(`SELECT max(length(email)), max(length(traffic)), max(length(first_name) + 1 + length(last_name)) FROM users WHERE ${where}`)
      .raw()
      .get(params) as [number | null, number | null, number | null];
    if (widths[0] === null) return [];
    const [email, traffic, name] = [Math.max(5, widths[0]), Math.max(7, widths[1] ?? 0), Math.max(4, widths[2] ?? 0)];
    const header = `${'EMAIL'.padEnd(email)}  ${'TRAFFIC'.padEnd(traffic)}  ${'NAME'.padEnd(name)}  ${'EXPIRES'.padEnd(10)}  ${'CREATED'.padEnd(20)}  AUTO-RENEW`;
    const lines = this.db
      .prepare(
        `SELECT printf('%-!*s  %-!*s  %-!*s  %-10s  %-20s  %s', @email, email, @traffic, traffic, @name, first_name || ' ' || last_name,
           expiration_date, CASE WHEN length(created_at) = 24 THEN substr(created_at, 1, 19) || 'Z' ELSE created_at END,
           CASE auto_renew WHEN 1 THEN 'yes' ELSE 'no' END) FROM users WHERE ${where} ORDER BY ${order}`,
      )
      .pluck()
      .all({ ...params, email, traffic, name }) as string[];
    lines.unshift(header);
    return lines;
  }

  /** Active profiles in (email, traffic) order. */
  activeUsers(): UserRow[] {
    return this.db
      .prepare<[], { row: string }>(`SELECT row FROM users WHERE status = 'active' ORDER BY email, traffic`)
      .all()
      .map((r) => JSON.parse(r.row) as UserRow);
  }

  /** How many profiles are active (activeUsers().length, without reading their rows). */
  activeUserCount(): number {
    return (this.db.prepare(`SELECT COUNT(*) AS n FROM users WHERE status = 'active'`).get() as { n: number }).n;
  }

  /** Active profiles whose expiration date is before `today`. */
  expiredUsers(today: CalendarDate): UserRow[] {
    return this.db
      .prepare<[string], { row: string }>(
        `SELECT row FROM users WHERE status = 'active' AND expiration_date < ? ORDER BY expiration_date, email, traffic`,
      )
      .all(today)
      .map((r) => JSON.parse(r.row) as UserRow);
  }

  /** Active auto-renewing profiles expiring on or before `cutoff` (the renewal job's work list). */
  renewalCandidates(cutoff: CalendarDate): UserRow[] {
    return this.db
      .prepare<[string], { row: string }>(
        `SELECT row FROM users WHERE status = 'active' AND expiration_date <= ? ORDER BY expiration_date, email, traffic`,
      )
      .all(cutoff)
      .map((r) => JSON.parse(r.row) as UserRow)
      .filter((u) => u.autoRenew);
  }

  serialExists(serial: string): boolean {
    return this.db.prepare('SELECT 1 FROM certificates WHERE serial = ?').get(serial) !== undefined;
  }

  crlEntryCount(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM crl_entries').get() as { n: number }).n;
  }

  /** Entry DERs in revocation order, streamed so a 100,000-entry CRL never sits in memory twice. */
  *crlEntryDers(): IterableIterator<Buffer> {
    for (const r of this.db.prepare<[], { der: Buffer }>('SELECT der FROM crl_entries ORDER BY seq').iterate()) {
      yield r.der;
    }
  }

  crlEntries(): CrlEntry[] {
    return this.db
      .prepare<[], { serial: string; revokedAt: string; reason: CrlReason }>(
        'SELECT serial, revoked_at AS revokedAt, reason FROM crl_entries ORDER BY seq',
      )
      .all();
  }

  auditOfStream(streamId: string): AuditRecord[] {
    return this.db
      .prepare<[string], { position: number; stream_id: string; type: AuditRecord['type']; at: string; actor: string; details: string }>(
        'SELECT position, stream_id, type, at, actor, details FROM audit_log WHERE stream_id = ? ORDER BY position',
      )
      .all(streamId)
      .map((r) => ({
        position: BigInt(r.position),
        streamId: r.stream_id,
        type: r.type,
        at: r.at,
        actor: r.actor,
        details: JSON.parse(r.details) as Record<string, unknown>,
      }));
  }

  // ---- audit queries (ov_user_audit; see projections/as-of-view.ts for the AuditView they answer) ----

  /** Profiles whose current generation is active, revoked, and active with an unresolved renewal failure. */
  userCounts(): { active: number; revoked: number; stuck: number } {
    const r = this.db
      .prepare<[], { active: number | null; revoked: number | null; stuck: number | null }>(
        `SELECT SUM(status = 'active') AS active, SUM(status = 'revoked') AS revoked,
           SUM(status = 'active' AND json_extract(row, '$.lastRenewalFailure') IS NOT NULL) AS stuck
         FROM users`,
      )
      .get();
    return { active: r?.active ?? 0, revoked: r?.revoked ?? 0, stuck: r?.stuck ?? 0 };
  }

  /** Active profiles whose expiration date lies in [from, to], by expiration date, email, traffic. */
  activeExpiringBetween(from: CalendarDate, to: CalendarDate): UserRow[] {
    return this.db
      .prepare<[string, string], { row: string }>(
        `SELECT row FROM users WHERE status = 'active' AND expiration_date >= ? AND expiration_date <= ?
         ORDER BY expiration_date, email, traffic`,
      )
      .all(from, to)
      .map((r) => JSON.parse(r.row) as UserRow);
  }

  /** Active profiles whose last renewal attempt failed and that were not renewed since, by failure time. */
  stuckUsers(): UserRow[] {
    return this.db
      .prepare<[], { row: string }>(
        `SELECT row FROM users WHERE status = 'active' AND json_extract(row, '$.lastRenewalFailure') IS NOT NULL
         ORDER BY json_extract(row, '$.lastRenewalFailure.at'), email, traffic`,
      )
      .all()
      .map((r) => JSON.parse(r.row) as UserRow);
  }

  /** ProfileRenewed events, and the profile streams that have at least one. */
  renewalCounts(): { renewals: number; renewedProfiles: number } {
    const r = this.db
      .prepare<[], { renewals: number; renewedProfiles: number }>(
        `SELECT COUNT(*) AS renewals, COUNT(DISTINCT stream_id) AS renewedProfiles FROM audit_log WHERE type = 'ProfileRenewed'`,
      )
      .get();
    return { renewals: r?.renewals ?? 0, renewedProfiles: r?.renewedProfiles ?? 0 };
  }

  /**
   * Audit records of one type with from <= at < before (string comparison, so a bare YYYY-MM-DD
   * works as a bound), in log order, with the pair of the stream each belongs to.
   */
  auditOfTypeWithPair(
    type: AuditRecord['type'],
    range: { readonly from?: string | undefined; readonly before?: string | undefined },
  ): Array<AuditRecord & { email: string; traffic: Traffic }> {
    return this.db
      .prepare<
        [string, string | null, string | null, string | null, string | null],
        { position: number; stream_id: string; type: AuditRecord['type']; at: string; actor: string; details: string; email: string; traffic: Traffic }
      >(
        `SELECT a.position, a.stream_id, a.type, a.at, a.actor, a.details, u.email, u.traffic
         FROM audit_log a JOIN users u ON u.stream_id = a.stream_id
         WHERE a.type = ? AND (? IS NULL OR a.at >= ?) AND (? IS NULL OR a.at < ?)
         ORDER BY a.position`,
      )
      .all(type, range.from ?? null, range.from ?? null, range.before ?? null, range.before ?? null)
      .map((r) => ({
        position: BigInt(r.position),
        streamId: r.stream_id,
        type: r.type,
        at: r.at,
        actor: r.actor,
        details: JSON.parse(r.details) as Record<string, unknown>,
        email: r.email,
        traffic: r.traffic,
      }));
  }

  // ---- network queries (ov_status, ov_network_refresh) ----

  /**
   * Active partial profiles grouped by the route set recorded when they were issued: a handful of
   * distinct sets however many profiles there are. `routes` is null for rows projected before
   * routes were kept in the row (a rebuild fills it in).
   */
  activePartialRouteSets(): Array<{ routes: string[] | null; count: number }> {
    return this.db
      .prepare<[], { routes: string | null; count: number }>(
        `SELECT json_extract(row, '$.routes') AS routes, COUNT(*) AS count FROM users
         WHERE status = 'active' AND traffic = 'partial' GROUP BY 1 ORDER BY 1`,
      )
      .all()
      .map((r) => ({ routes: r.routes === null ? null : (JSON.parse(r.routes) as string[]), count: r.count }));
  }

  /** Active partial profiles issued with exactly this route set (as activePartialRouteSets gave it). */
  activePartialUsersWithRoutes(routes: readonly string[]): UserRow[] {
    return this.db
      .prepare<[string], { row: string }>(
        `SELECT row FROM users WHERE status = 'active' AND traffic = 'partial' AND json_extract(row, '$.routes') = ?
         ORDER BY email`,
      )
      .all(JSON.stringify(routes))
      .map((r) => JSON.parse(r.row) as UserRow);
  }

  /** The rows of these profile ids (certificate common names), for naming connected clients. */
  usersByProfileIds(profileIds: readonly string[]): UserRow[] {
    if (profileIds.length === 0) return [];
    // A profile's stream id is `profile-<id>`: the primary key, so each look-up is one index probe.
    const statement = this.db.prepare<[string, string], { row: string }>('SELECT row FROM users WHERE stream_id = ? AND profile_id = ?');
    return profileIds.flatMap((id) => statement.all(`profile-${id}`, id).map((r) => JSON.parse(r.row) as UserRow));
  }

  /** A canonical dump of every read model, to prove a rebuild gives the identical result. */
  dump(): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    for (const table of PROJECTION_TABLES) {
      out[table] = this.db.prepare(`SELECT * FROM ${table} ORDER BY 1`).all();
    }
    return out;
  }
}
