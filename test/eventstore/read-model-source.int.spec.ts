// Which log the local read models follow (infra/event-store-selection.ts): OVL_EVENT_STORE picks
// the store, and when it changes the read models are rebuilt from the new log instead of being
// caught up from a checkpoint that belongs to another log.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import * as E from 'fp-ts/lib/Either.js';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InMemoryEventStore } from '../../adapters/eventstore/in-memory-event-store.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { readEnvironment, type Environment } from '../../infra/environment.js';
import { ensureReadModelSource, eventStoreIdentity, openRemoteEventStore } from '../../infra/event-store-selection.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { SyntheticProfiles } from '../support/synthetic-profile-events.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const silent = pino({ level: 'silent' });
const envWith = (eventStore: string | undefined) => ({ eventStore }) as Environment;

describe('OVL_EVENT_STORE', () => {
  it('given no OVL_EVENT_STORE, then the environment names no store and the identity is the embedded one', () => {
    const env = readEnvironment({ OVL_STATE_DIR: '/tmp/x' });
    expect(E.isRight(env) && env.right.eventStore).toBeUndefined();
    expect(eventStoreIdentity(envWith(undefined))).toBe('embedded');
  });

  it('given something that is not an EventStoreDB connection string, then the environment is refused naming the variable, not its value', () => {
    const env = readEnvironment({ OVL_EVENT_STORE: 'http://user:s3cret@host:2113' });
    expect(E.isLeft(env) && env.left).toMatch(/^environment variable OVL_EVENT_STORE must be an EventStoreDB connection string/);
    expect(E.isLeft(env) && env.left).not.toMatch(/s3cret/);
  });

  it('given connection strings, then the identity is the scheme and hosts: credentials and options do not make another log', () => {
    expect(eventStoreIdentity(envWith('esdb://admin:changeit@ESDB.internal:2113?tls=false'))).toBe('esdb://esdb.internal:2113');
    expect(eventStoreIdentity(envWith('esdb://esdb.internal:2113?tls=false&defaultDeadline=20000'))).toBe('esdb://esdb.internal:2113');
    expect(eventStoreIdentity(envWith('esdb+discover://a:2113,b:2113'))).toBe('esdb+discover://a:2113,b:2113');
  });

  it('given a connection string the client cannot parse, then opening the store is a configuration failure (exit 5) naming OVL_EVENT_STORE', async () => {
    const opened = await openRemoteEventStore(envWith('esdb://host:notaport'));
    expect(E.isLeft(opened) && opened.left.exitCode).toBe(5);
    expect(E.isLeft(opened) && opened.left.message).toMatch(/^OVL_EVENT_STORE: /);
  });
});

describe('ensureReadModelSource', () => {
  let dir: string;
  let db: Database.Database;
  let projections: SqliteProjectionStore;
  const synthetic = new SyntheticProfiles(PEM);

  async function logWith(profiles: number, tag: string): Promise<InMemoryEventStore> {
    const store = new InMemoryEventStore();
    for (let i = 0; i < profiles; i++) {
      const p = synthetic.profile(i, tag);
      await store.appendToStream(p.streamId, 'no_stream', synthetic.stream(p, i, 3, i % 2 === 0));
    }
    return store;
  }
  const reader = (store: InMemoryEventStore) => (after: bigint, limit: number) => store.readAll({ after, limit });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ovl-source-'));
    db = openSqliteDatabase(join(dir, 'ledger.sqlite'));
    projections = new SqliteProjectionStore(db, {
      encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
    });
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('given fresh read models, then the source is recorded and nothing is rebuilt; the same source again changes nothing', async () => {
    const log = await logWith(2, 'a');

    expect(await ensureReadModelSource(db, projections, 'esdb://x:2113', reader(log), silent)).toBe(false);
    await projections.catchUp(reader(log));
    const before = projections.dump();

    expect(await ensureReadModelSource(db, projections, 'esdb://x:2113', reader(log), silent)).toBe(false);
    expect(projections.dump()).toEqual(before);
  });

  it('given read models built from another log, when the source changes, then they are rebuilt from the new log alone', async () => {
    const embedded = await logWith(3, 'old');
    await ensureReadModelSource(db, projections, 'embedded', reader(embedded), silent);
    await projections.catchUp(reader(embedded));
    const fleet = await logWith(2, 'fleet');

    expect(await ensureReadModelSource(db, projections, 'esdb://x:2113', reader(fleet), silent)).toBe(true);

    expect(projections.checkpoint()).toBe(await fleet.headPosition());
    const emails = (projections.dump()['users'] as { email: string }[]).map((u) => u.email).sort();
    expect(emails).toEqual(['fleet.user0@example.org', 'fleet.user1@example.org']);
    expect(await ensureReadModelSource(db, projections, 'esdb://x:2113', reader(fleet), silent)).toBe(false);
  });

  it('given a file from before the source was recorded (a checkpoint, no record), then it counts as built from the embedded log', async () => {
    const embedded = await logWith(1, 'old');
    await projections.catchUp(reader(embedded));

    expect(await ensureReadModelSource(db, projections, 'embedded', reader(embedded), silent)).toBe(false);
    db.exec('DELETE FROM read_model_source');
    expect(await ensureReadModelSource(db, projections, 'esdb://x:2113', reader(await logWith(1, 'new')), silent)).toBe(true);
  });
});
