// Event store on the embedded SQLite file shared with the projection tables. Every method is
// synchronous underneath (better-sqlite3 is); the async port methods only wrap them, and the
// projection catch-up, which runs in the same connection, uses the *Sync variants directly.

import Database from 'better-sqlite3';
import {
  EventStoreUnavailableError,
  WrongExpectedRevisionError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadAllOptions,
  type RecordedEvent,
} from './event-store.js';

export interface SqliteEventStoreOptions {
  /**
   * When true, close() also closes the database. Off by default because the connection is
   * normally shared with the projections, and whoever opened it closes it.
   */
  readonly ownsDatabase?: boolean;
}

/** An event for SqliteEventStore.bulkLoader: at the revision of its stream it already has. */
export interface LoadedEvent extends NewEvent {
  readonly streamId: string;
  readonly revision: bigint;
  /** data and metadata already as JSON text (as an archive line held them), stored as they are. */
  readonly json?: { readonly data: string; readonly metadata: string } | undefined;
}

export interface BulkLoader {
  /** Appends the events in one transaction; returns the position each was given. */
  append(events: readonly LoadedEvent[]): bigint[];
  /** Builds the (stream, revision) index; throws if a stream holds a revision twice. */
  finish(): void;
}

/** One stream's share of an appendManySync call. */
export interface StreamAppend {
  readonly streamId: string;
  readonly expectedRevision: ExpectedRevision;
  readonly events: readonly NewEvent[];
}

// Column order of every SELECT below; rows are read in raw (array) mode because building an
// object per row costs noticeably when the projections replay a million events.
const EVENT_COLUMNS = 'position, stream_id, revision, type, schema_version, data, metadata';
type EventRow = [bigint, string, bigint, string, bigint, string, string];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  position       INTEGER PRIMARY KEY AUTOINCREMENT,
  stream_id      TEXT    NOT NULL,
  revision       INTEGER NOT NULL,
  type           TEXT    NOT NULL,
  schema_version INTEGER NOT NULL,
  data           TEXT    NOT NULL,
  metadata       TEXT    NOT NULL
);
`;
// AUTOINCREMENT rather than a plain rowid: positions are checkpoints held by projections, so a
// position must never be handed out twice, even if the newest rows were ever deleted by hand.
// The unique (stream_id, revision) index is both the last line of defence against two writers
// giving out the same revision and the index that readStream and the revision check use. It is a
// named index rather than a UNIQUE clause of the table so that a bulk load into an empty store
// (ov_restore's staging store, see bulkLoader) can build it once at the end.
const STREAM_REVISION_INDEX = 'CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream_revision ON events (stream_id, revision)';

export class SqliteEventStore implements EventStore {
  private readonly db: Database.Database;
  private readonly ownsDatabase: boolean;
  private readonly lastRevisionStmt: Database.Statement<[string]>;
  private readonly insertStmt: Database.Statement<[string, bigint, string, number, string, string]>;
  private readonly readStreamStmt: Database.Statement<[string]>;
  private readonly readAllStmt: Database.Statement<[bigint, number]>;
  private readonly headStmt: Database.Statement<[]>;
  private readonly appendTx: Database.Transaction<(batches: readonly SerialisedAppend[]) => AppendResult[]>;

  constructor(db: Database.Database, options: SqliteEventStoreOptions = {}) {
    this.db = db;
    this.ownsDatabase = options.ownsDatabase ?? false;
    this.guard(() => {
      db.exec(SCHEMA);
      db.exec(STREAM_REVISION_INDEX);
    });

    // safeIntegers: positions and revisions come back as bigint, never as a lossy double.
    this.lastRevisionStmt = db
      .prepare<[string]>('SELECT revision FROM events WHERE stream_id = ? ORDER BY revision DESC LIMIT 1')
      .pluck()
      .safeIntegers(true);
    this.insertStmt = db
      .prepare<[string, bigint, string, number, string, string]>(
        'INSERT INTO events (stream_id, revision, type, schema_version, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .safeIntegers(true);
    this.readStreamStmt = db
      .prepare<[string]>(`SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = ? ORDER BY revision`)
      .raw(true)
      .safeIntegers(true);
    this.readAllStmt = db
      .prepare<[bigint, number]>(`SELECT ${EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?`)
      .raw(true)
      .safeIntegers(true);
    this.headStmt = db.prepare<[]>('SELECT coalesce(max(position), 0) FROM events').pluck().safeIntegers(true);

    // Cached once: db.transaction() builds wrapper functions, not worth redoing per append.
    // .immediate() is what callers get: the revision check and the inserts happen under the
    // write lock, so no other process can slip an event in between them.
    this.appendTx = db.transaction((batches: readonly SerialisedAppend[]) => batches.map((b) => this.appendOne(b)));
  }

  async appendToStream(
    streamId: string,
    expectedRevision: ExpectedRevision,
    events: readonly NewEvent[],
  ): Promise<AppendResult> {
    return this.appendToStreamSync(streamId, expectedRevision, events);
  }

  async readStream(streamId: string): Promise<RecordedEvent[]> {
    return this.readStreamSync(streamId);
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.readAllSync(options);
  }

  async headPosition(): Promise<bigint> {
    return this.headPositionSync();
  }

  async close(): Promise<void> {
    if (this.ownsDatabase && this.db.open) this.db.close();
  }

  appendToStreamSync(streamId: string, expectedRevision: ExpectedRevision, events: readonly NewEvent[]): AppendResult {
    const [result] = this.appendManySync([{ streamId, expectedRevision, events }]);
    return result!;
  }

  /**
   * Appends to several streams in ONE write transaction: all of them or, if any expected
   * revision is wrong, none. Meant for seeding benchmarks and test fixtures fast (one fsync for
   * many streams); commands append one stream per call so that a conflict stays local.
   */
  appendManySync(batches: readonly StreamAppend[]): AppendResult[] {
    for (const batch of batches) validateAppend(batch);
    // Serialise before taking the write lock: JSON work inside it would stall other writers,
    // and a non-serialisable value must fail without having started a transaction.
    const prepared = batches.map((b): SerialisedAppend => ({ ...b, events: b.events.map(serialiseEvent) }));
    return this.guard(() => this.appendTx.immediate(prepared));
  }

  /**
   * Loads events into this EMPTY store in the order given, each at the revision it names, with
   * no revision check per event: for ov_restore's staging store, whose events have already been
   * checked (every stream contiguous from revision 0) by the restore's replay. The unique
   * (stream, revision) index is dropped while loading and built once by finish(), which halves
   * the cost of a million appends to streams spread at random over the index, and still refuses
   * a (stream, revision) given twice. Positions are handed out from 1, as appends would.
   */
  bulkLoader(): BulkLoader {
    const empty = this.guard(() => this.headStmt.get() as bigint) === 0n;
    if (!empty) throw new Error('internal error: a bulk load goes into an empty event store only');
    this.guard(() => this.db.exec('DROP INDEX IF EXISTS events_by_stream_revision'));
    const load = this.db.transaction((events: readonly LoadedEvent[]) =>
      events.map((e) => {
        const { data, metadata } = e.json ?? serialiseEvent(e);
        return BigInt(this.insertStmt.run(e.streamId, e.revision, e.type, e.schemaVersion, data, metadata).lastInsertRowid);
      }),
    );
    return {
      append: (events) => this.guard(() => load.immediate(events)),
      finish: () => this.guard(() => this.db.exec(STREAM_REVISION_INDEX)),
    };
  }

  readStreamSync(streamId: string): RecordedEvent[] {
    const rows = this.guard(() => this.readStreamStmt.all(streamId) as EventRow[]);
    return rows.map(toRecordedEvent);
  }

  readAllSync(options: ReadAllOptions): RecordedEvent[] {
    const page = this.readAllRows(options).map(toRecordedEvent);
    // Says where the page came from, so that a whole-log projection pass over this connection's
    // own file may read the following pages with a second connection (see sqliteLogPageSource).
    Object.defineProperty(page, LOG_PAGE_SOURCE, { value: { db: this.db, head: () => this.headPositionSync() } satisfies SqliteLogPageSource });
    return page;
  }

  /**
   * As readAllSync, each event with its data and metadata also as the JSON text the store holds
   * (written by JSON.stringify): what ov_backup writes into its archive without serialising the
   * parsed values again.
   */
  readAllWithJsonSync(options: ReadAllOptions): Array<RecordedEvent & { readonly json: { readonly data: string; readonly metadata: string } }> {
    return this.readAllRows(options).map((row) => Object.assign(toRecordedEvent(row), { json: { data: row[5], metadata: row[6] } }));
  }

  private readAllRows(options: ReadAllOptions): EventRow[] {
    validateReadAll(options);
    return this.guard(() => this.readAllStmt.all(options.after, options.limit) as EventRow[]);
  }

  headPositionSync(): bigint {
    return this.guard(() => this.headStmt.get() as bigint);
  }

  // Runs inside appendTx, i.e. under the write lock; events are already serialised.
  private appendOne(batch: SerialisedAppend): AppendResult {
    const last = this.lastRevisionStmt.get(batch.streamId) as bigint | undefined;
    const actual: bigint | 'no_stream' = last ?? 'no_stream';
    if (!revisionMatches(batch.expectedRevision, actual)) {
      throw new WrongExpectedRevisionError(batch.streamId, batch.expectedRevision, actual);
    }
    let revision = last ?? -1n;
    let position = 0n;
    for (const e of batch.events) {
      revision += 1n;
      const info = this.insertStmt.run(batch.streamId, revision, e.type, e.schemaVersion, e.data, e.metadata);
      position = BigInt(info.lastInsertRowid);
    }
    return { nextExpectedRevision: revision, position };
  }

  // Translates lock and I/O failures into the port's "store unavailable" error, with what the
  // operator can do about it; everything else (including WrongExpectedRevisionError) passes.
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw this.translate(error);
    }
  }

  private translate(error: unknown): unknown {
    if (!(error instanceof Database.SqliteError)) return error;
    const file = this.db.name;
    const code = error.code;
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new EventStoreUnavailableError(
        `the event store ${file} stayed locked by another process for longer than the busy timeout (${code}); ` +
          `retry the command, and if it keeps failing look for a stuck process holding the file (e.g. \`fuser ${file}\`)`,
        { cause: error },
      );
    }
    if (code.startsWith('SQLITE_FULL')) {
      return new EventStoreUnavailableError(`the disk holding the event store ${file} is full (${code}); free space and retry`, {
        cause: error,
      });
    }
    if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_PERM')) {
      return new EventStoreUnavailableError(
        `the event store ${file} (or its -wal/-shm files or directory) cannot be written by this user (${code}); ` +
          `run the command as the user that owns it`,
        { cause: error },
      );
    }
    if (code.startsWith('SQLITE_IOERR')) {
      return new EventStoreUnavailableError(`I/O error on the event store ${file} (${code}); check the disk and retry`, {
        cause: error,
      });
    }
    return error;
  }
}

interface SerialisedEvent {
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: string;
  readonly metadata: string;
}

interface SerialisedAppend {
  readonly streamId: string;
  readonly expectedRevision: ExpectedRevision;
  readonly events: readonly SerialisedEvent[];
}

function serialiseEvent(event: NewEvent): SerialisedEvent {
  return {
    type: event.type,
    schemaVersion: event.schemaVersion,
    data: toJson(event.data, 'data', event.type),
    metadata: toJson(event.metadata, 'metadata', event.type),
  };
}

function toJson(value: unknown, field: string, type: string): string {
  // JSON.stringify(undefined) is undefined, which would only surface as a NOT NULL failure.
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`event ${type}: ${field} is not a JSON value`);
  return json;
}

function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    position: row[0],
    streamId: row[1],
    revision: row[2],
    type: row[3],
    schemaVersion: Number(row[4]),
    data: JSON.parse(row[5]) as unknown,
    metadata: JSON.parse(row[6]) as unknown,
  };
}

const LOG_PAGE_SOURCE = Symbol.for('ovpn-ledger.sqlite-log-page-source');

/** The connection a readAll page was read through, when it is a page of a SqliteEventStore as read. */
export interface SqliteLogPageSource {
  readonly db: Database.Database;
  /** The position of the newest event in the log (0 when empty). */
  head(): bigint;
}

/**
 * The connection `page` was read through, if it is an unaltered page of SqliteEventStore.readAll
 * (a filtered or rebuilt array has no source): the next pages are the same rows of that file.
 */
export function sqliteLogPageSource(page: readonly unknown[]): SqliteLogPageSource | undefined {
  return (page as { [LOG_PAGE_SOURCE]?: SqliteLogPageSource })[LOG_PAGE_SOURCE];
}

/**
 * The log of a database file read through a read-only connection of its own, the way readAll
 * reads it: for a worker thread that reads ahead while another connection writes (WAL lets a
 * reader run beside the writer, and it sees the log as last committed).
 */
export class SqliteLogReader {
  private readonly db: Database.Database;
  private readonly readAllStmt: Database.Statement<[bigint, number]>;

  constructor(file: string) {
    this.db = new Database(file, { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 15000');
    this.readAllStmt = this.db
      .prepare<[bigint, number]>(`SELECT ${EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?`)
      .raw(true)
      .safeIntegers(true);
  }

  readAll(options: ReadAllOptions): RecordedEvent[] {
    validateReadAll(options);
    return (this.readAllStmt.all(options.after, options.limit) as EventRow[]).map(toRecordedEvent);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function revisionMatches(expected: ExpectedRevision, actual: bigint | 'no_stream'): boolean {
  if (expected === 'any') return true;
  return expected === actual;
}

function validateAppend(batch: StreamAppend): void {
  const { streamId, expectedRevision, events } = batch;
  if (typeof streamId !== 'string' || streamId.length === 0) throw new TypeError('streamId must be a non-empty string');
  if (typeof expectedRevision !== 'bigint' && expectedRevision !== 'no_stream' && expectedRevision !== 'any') {
    // A number here would never equal a bigint revision and turn every append into a "conflict".
    throw new TypeError(`expectedRevision must be a bigint, 'no_stream' or 'any', not ${String(expectedRevision)}`);
  }
  // An empty append has no "last event written" to report, so the port's result is undefined.
  if (events.length === 0) throw new RangeError(`append to ${streamId} has no events`);
  for (const e of events) {
    if (typeof e.type !== 'string' || e.type.length === 0) throw new TypeError(`event type must be a non-empty string`);
    if (!Number.isSafeInteger(e.schemaVersion)) throw new TypeError(`event ${e.type}: schemaVersion must be an integer`);
  }
}

function validateReadAll(options: ReadAllOptions): void {
  // LIMIT -1 means "no limit" in SQLite: a bad limit must not turn into reading the whole log.
  if (!Number.isSafeInteger(options.limit) || options.limit < 1) {
    throw new RangeError(`limit must be a positive integer, not ${String(options.limit)}`);
  }
  if (typeof options.after !== 'bigint' || options.after < 0n) {
    throw new RangeError(`after must be a bigint >= 0n, not ${String(options.after)}`);
  }
}
