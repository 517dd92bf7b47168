// Where the read models live: tables in the gateway's SQLite file, caught up from the event log
// through one checkpoint (the last global position applied). Every projection is updated in the
// same transaction as the checkpoint, so a killed process leaves them consistent, and two
// processes catching up at once never apply an event twice.
import type BetterSqlite3 from 'better-sqlite3';
import * as E from 'fp-ts/lib/Either.js';
import { isGatewayEvent, type Envelope, type ProfileEvent } from '../domain/events.js';
import { decodeStoredEvent, describeDecodeError, type StoredEventLike } from '../domain/upcasters.js';
import type { CalendarDate, CrlReason, Traffic } from '../domain/values.js';
import { auditRecordOf, type AuditRecord } from './audit-history.js';
import { crlEntriesFrom, type CrlEntry } from './crl-entries.js';
import { evolveUserRow, type UserRow } from './user-list.js';
import { evolveGateway, type GatewayRow } from './gateway.js';

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
CREATE INDEX IF NOT EXISTS users_by_email ON users (email, traffic);
CREATE INDEX IF NOT EXISTS users_by_status_expiry ON users (status, expiration_date);
-- ov_user_list reads active rows in (email, traffic) order straight off this index, with no sort.
CREATE INDEX IF NOT EXISTS users_by_status_email ON users (status, email, traffic);
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

const AUDIT_INDEXES = [
  { name: 'audit_by_stream', create: 'CREATE INDEX IF NOT EXISTS audit_by_stream ON audit_log (stream_id, position)' },
  { name: 'audit_by_type_at', create: 'CREATE INDEX IF NOT EXISTS audit_by_type_at ON audit_log (type, at)' },
];

// Pages of the whole-log pass: large enough to amortise each read, small enough to stay in memory.
const WHOLE_LOG_PAGE = 20_000;

const PROJECTION_TABLES = ['users', 'certificates', 'crl_entries', 'audit_log', 'gateway', 'projection_checkpoint'];

/**
 * The shape of the read-model tables. Read models are disposable: when a release changes their
 * shape, they are dropped and rebuilt from the log on the next catch-up, never migrated.
 */
const READ_MODEL_SHAPE = 2;

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
}

export class SqliteProjectionStore {
  private readonly batchSize: number;
  private readonly stmt;

  constructor(
    private readonly db: Db,
    private readonly options: ProjectionStoreOptions,
  ) {
    resetIfShapeChanged(db);
    db.exec(SCHEMA);
    // Created here too, so a whole-log pass that died between dropping and recreating them heals.
    for (const index of AUDIT_INDEXES) db.exec(index.create);
    this.batchSize = options.batchSize ?? 5_000;
    this.stmt = {
      checkpoint: db.prepare<[], { position: string }>('SELECT position FROM projection_checkpoint WHERE id = 1'),
      setCheckpoint: db.prepare<[string]>(
        'INSERT INTO projection_checkpoint (id, position) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET position = excluded.position',
      ),
      user: db.prepare<[string], { row: string }>('SELECT row FROM users WHERE stream_id = ?'),
      upsertUser: db.prepare<[string, string, string, string, string, string, string, string, string, number, string, number, string]>(
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
      insertAudit: db.prepare<[string, string, string, string, string, string]>(
        'INSERT INTO audit_log (position, stream_id, type, at, actor, details) VALUES (?, ?, ?, ?, ?, ?)',
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
    this.db.exec('BEGIN IMMEDIATE');
    try {
      if (this.checkpoint() !== 0n) {
        this.db.exec('COMMIT');
        return undefined;
      }
      this.clear();
      for (const index of AUDIT_INDEXES) this.db.exec(`DROP INDEX IF EXISTS ${index.name}`);
      const users = new Map<string, UserRow | undefined>();
      let last = 0n;
      let applied = 0;
      for (;;) {
        const page = await readAll(last, WHOLE_LOG_PAGE);
        if (page.length === 0) break;
        for (const stored of page) {
          this.apply(this.decode(stored), users, false);
          last = stored.position;
        }
        applied += page.length;
      }
      this.writeUsers(users);
      for (const index of AUDIT_INDEXES) this.db.exec(index.create);
      if (last > 0n) this.stmt.setCheckpoint.run(last.toString());
      this.db.exec('COMMIT');
      return applied;
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw error;
    }
  }

  /**
   * The whole log projected while it is being written, for a store built from nothing (the
   * staging store of ov_restore, whose events are decoded and checked as they are read from the
   * archive): the caller appends each batch and hands the same events over, decoded, with the
   * positions the store gave them, so no event is read back or decoded a second time. The tables
   * come out as projectWholeLog makes them: user rows held in memory and written at the end, the
   * audit indexes built once after the rows. Each batch is one transaction; nobody else writes to
   * such a store, and a store given up half way is thrown away with its directory.
   */
  projectLogAsWritten(): { apply(events: readonly Envelope[]): void; finish(): number } {
    if (this.checkpoint() !== 0n) throw new Error('internal error: the log is projected as written only into empty read models');
    this.db
      .transaction(() => {
        this.clear();
        for (const index of AUDIT_INDEXES) this.db.exec(`DROP INDEX IF EXISTS ${index.name}`);
      })
      .immediate();
    const users = new Map<string, UserRow | undefined>();
    let last = 0n;
    let applied = 0;
    const applyBatch = this.db.transaction((events: readonly Envelope[]) => {
      for (const event of events) {
        if (event.position <= last) throw new Error(`internal error: position ${event.position} projected after ${last}`);
        this.apply(event, users, false);
        last = event.position;
      }
      applied += events.length;
    });
    return {
      apply: (events) => applyBatch.immediate(events),
      finish: () => {
        this.db
          .transaction(() => {
            this.writeUsers(users);
            for (const index of AUDIT_INDEXES) this.db.exec(index.create);
            if (last > 0n) this.stmt.setCheckpoint.run(last.toString());
          })
          .immediate();
        return applied;
      },
    };
  }

  private decode(stored: StoredEventLike): Envelope {
    const decoded = decodeStoredEvent(stored);
    if (E.isLeft(decoded)) {
      throw new ProjectionDecodeError(`event at position ${stored.position} (${stored.streamId}): ${describeDecodeError(decoded.left)}`);
    }
    return decoded.right;
  }

  private writeUsers(users: ReadonlyMap<string, UserRow | undefined>): void {
    for (const [streamId, row] of users) {
      if (row) {
        this.stmt.upsertUser.run(
          streamId,
          row.profileId,
          row.email,
          row.traffic,
          row.status,
          row.expirationDate,
          row.firstName,
          row.lastName,
          row.createdAt,
          row.autoRenew ? 1 : 0,
          row.currentSerial,
          row.renewals,
          JSON.stringify(row),
        );
      }
    }
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
        this.writeUsers(users);
        if (last > current) this.stmt.setCheckpoint.run(last.toString());
        return applied;
      })
      .immediate();
  }

  /** `lookUp`: whether a user row not yet in `users` may exist in the table (false when projecting from empty). */
  private apply(event: Envelope, users: Map<string, UserRow | undefined>, lookUp: boolean): void {
    const audit = auditRecordOf(event);
    this.stmt.insertAudit.run(
      audit.position.toString(),
      audit.streamId,
      audit.type,
      audit.at,
      audit.actor,
      JSON.stringify(audit.details),
    );
    if (isGatewayEvent(event)) {
      const previous = this.stmt.gateway.get();
      const next = evolveGateway(previous ? (JSON.parse(previous.row) as GatewayRow) : undefined, event);
      if (next) this.stmt.setGateway.run(JSON.stringify(next));
      return;
    }
    const profileEvent = event as Envelope<ProfileEvent>;
    const before = users.has(event.streamId) || !lookUp ? users.get(event.streamId) : this.userRow(event.streamId);
    users.set(event.streamId, evolveUserRow(before, profileEvent));
    if (profileEvent.type === 'ProfileIssued' || profileEvent.type === 'ProfileRenewed' || profileEvent.type === 'RenewalCertificateIssued') {
      const c = profileEvent.data.certificate;
      this.stmt.insertCertificate.run(c.serial, event.streamId, c.notAfter);
    }
    for (const entry of crlEntriesFrom(profileEvent)) {
      this.stmt.insertCrlEntry.run(entry.serial, entry.revokedAt, entry.reason, this.options.encodeCrlEntry(entry));
    }
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
