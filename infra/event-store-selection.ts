// Which event store a gateway uses: the embedded SQLite log in its state directory (the default),
// or EventStoreDB when OVL_EVENT_STORE holds a connection string (a fleet of gateways sharing one
// user base). Either way the read models stay in the local SQLite file, with their checkpoint.
//
// A checkpoint is a position in ONE log: positions of the embedded log (1, 2, 3…) and of an
// EventStoreDB (byte offsets) mean nothing in the other. So the file records which log its read
// models follow, and when OVL_EVENT_STORE changes (embedded ↔ EventStoreDB, or another server),
// the read models are rebuilt once from the log now in use, instead of being caught up from a
// position that belongs to another log.
import type BetterSqlite3 from 'better-sqlite3';
import * as E from 'fp-ts/lib/Either.js';
import type { Logger } from 'pino';
import type { EsdbEventStore } from '../adapters/eventstore/esdb-event-store.js';
import { misconfigured, type Failure } from '../commands/failure.js';
import type { ReadAllPage, SqliteProjectionStore } from '../projections/sqlite-projection-store.js';
import type { Environment } from './environment.js';

/**
 * The EventStoreDB store named by OVL_EVENT_STORE, or undefined for the embedded store. The
 * client library (gRPC, protobuf) is loaded only then: it would add a fifth of a second of CPU to
 * every command of a gateway that does not use it.
 */
export async function openRemoteEventStore(env: Environment): Promise<E.Either<Failure, EsdbEventStore | undefined>> {
  if (env.eventStore === undefined) return E.right(undefined);
  const { EsdbEventStore, InvalidConnectionStringError } = await import('../adapters/eventstore/esdb-event-store.js');
  try {
    return E.right(EsdbEventStore.connect(env.eventStore));
  } catch (error) {
    if (error instanceof InvalidConnectionStringError) return E.left(misconfigured(`OVL_EVENT_STORE: ${error.message}`));
    throw error;
  }
}

/**
 * What identifies the log: 'embedded', or the scheme and host list of the connection string
 * (credentials and options left out: a new password or deadline is the same log).
 */
export function eventStoreIdentity(env: Environment): string {
  if (env.eventStore === undefined) return 'embedded';
  const m = /^(esdb(?:\+discover)?):\/\/(?:[^@/?]*@)?([^/?]*)/i.exec(env.eventStore.trim());
  return m ? `${m[1]!.toLowerCase()}://${m[2]!.toLowerCase()}` : env.eventStore;
}

/**
 * Makes sure the read models in `db` were built from the log `identity` names; if they were
 * built from another one, rebuilds them from `readAll`. Returns true when it rebuilt.
 */
export async function ensureReadModelSource(
  db: BetterSqlite3.Database,
  projections: SqliteProjectionStore,
  identity: string,
  readAll: ReadAllPage,
  log: Logger,
): Promise<boolean> {
  db.exec('CREATE TABLE IF NOT EXISTS read_model_source (id INTEGER PRIMARY KEY CHECK (id = 1), source TEXT NOT NULL)');
  const row = db.prepare<[], { source: string }>('SELECT source FROM read_model_source WHERE id = 1').get();
  // A file from before this table existed was always built from the embedded log.
  const previous = row?.source ?? (projections.checkpoint() > 0n ? 'embedded' : undefined);
  let rebuilt = false;
  if (previous !== undefined && previous !== identity) {
    log.warn({ from: previous, to: identity }, 'event store changed: rebuilding the local read models from the new log');
    const applied = await projections.rebuild(readAll);
    log.info({ applied }, 'read models rebuilt');
    rebuilt = true;
  }
  if (row?.source !== identity) {
    db.prepare<[string]>(
      'INSERT INTO read_model_source (id, source) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET source = excluded.source',
    ).run(identity);
  }
  return rebuilt;
}
