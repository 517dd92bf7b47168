// Moving a gateway between the embedded store and EventStoreDB with ov_backup and ov_restore,
// through the built CLI, with the EventStoreDB TEST DOUBLE (test/support/esdb-test-double.ts: the
// real client speaking the real protocol to an in-memory server, not an EventStoreDB) reached
// through OVL_EVENT_STORE exactly as a real server would be.
//
// One scenario, in order: an embedded gateway (users in both traffic modes, one revoked) is
// backed up and restored into a fresh state directory whose log is an empty EventStoreDB; that
// gateway lists, audits and revokes exactly as the source does. Its own backup (read from the
// server) restores into a fresh embedded state, identical again. A restore into a server that
// already holds events is refused with nothing changed anywhere, a restore interrupted by the
// server going away says what was written, ov_init on a new state directory against the fleet's
// server is refused without the fleet's CA, and a profile issued after the restore works.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
import type { RecordedEvent } from '../../adapters/eventstore/event-store.js';
import { assertCliBuilt, cliBinPath, runCli, snapshotTree, type CliCommand, type CliResult } from '../support/cli.js';
import { EsdbTestDouble } from '../support/esdb-test-double.js';

const BACKUP = 'ov_backup' as CliCommand;
const RESTORE = 'ov_restore' as CliCommand;
const AUDIT = 'ov_user_audit' as CliCommand;

interface Gateway {
  readonly state: string;
  readonly config: string;
  /** OVL_EVENT_STORE, or undefined for the embedded store. */
  readonly eventStore: string | undefined;
}

const USERS = [
  { name: 'alice', traffic: 'all', days: 90 },
  { name: 'bob', traffic: 'partial', days: 60 },
  { name: 'carol', traffic: 'all', days: 60 },
  { name: 'carol', traffic: 'partial', days: 30 },
  { name: 'dave', traffic: 'partial', days: 45 },
] as const;

let root: string;
let double: EsdbTestDouble;
let source: Gateway;
let onEsdb: Gateway;
let backAgain: Gateway;
let firstArchive: string | undefined;
let esdbArchive: string | undefined;

const utcDatePlus = (days: number): string => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);

const envOf = (gw: Gateway): Record<string, string | undefined> => ({
  OVL_STATE_DIR: gw.state,
  OVL_CONFIG_DIR: gw.config,
  OVL_EVENT_STORE: gw.eventStore,
  OVL_NOW: undefined,
  OVL_LOG_FILE: undefined,
  OVL_LOG_LEVEL: undefined,
});

const run = (gw: Gateway, command: CliCommand, args: readonly string[]): Promise<CliResult> =>
  runCli(command, args, { env: envOf(gw), timeoutMs: 120_000 });

async function ok(gw: Gateway, command: CliCommand, args: readonly string[]): Promise<string> {
  const res = await run(gw, command, args);
  if (res.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  return res.stdout;
}

function gatewayAt(name: string, eventStore: string | undefined): Gateway {
  return { state: join(root, name, 'state'), config: join(root, name, 'config'), eventStore };
}

/** Serials on the gateway's CRL (lower-case hex, sorted), checked against its CA by openssl. */
function crlSerials(gw: Gateway): string[] {
  const text = execFileSync(
    'openssl',
    ['crl', '-in', join(gw.state, 'openvpn', 'crl.pem'), '-CAfile', join(gw.state, 'openvpn', 'ca.crt'), '-noout', '-text'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase()).sort();
}

/** Our events in the double (its own $-events left out). */
const userRecords = (d: EsdbTestDouble) => d.records().filter((r) => !r.streamName.startsWith('$') && !r.type.startsWith('$'));

/** Every event of a log as stored, without the positions (each store has its own). */
type StoredEvent = Omit<RecordedEvent, 'position'>;

function embeddedEvents(gw: Gateway): StoredEvent[] {
  const db = new Database(join(gw.state, 'ledger.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('SELECT stream_id, revision, type, schema_version, data, metadata FROM events ORDER BY position').all() as {
      stream_id: string;
      revision: number | bigint;
      type: string;
      schema_version: number;
      data: string;
      metadata: string;
    }[];
    return rows.map((r) => ({
      streamId: r.stream_id,
      revision: BigInt(r.revision),
      type: r.type,
      schemaVersion: r.schema_version,
      data: JSON.parse(r.data) as unknown,
      metadata: JSON.parse(r.metadata) as unknown,
    }));
  } finally {
    db.close();
  }
}

async function esdbEvents(connectionString: string): Promise<StoredEvent[]> {
  const store = EsdbEventStore.connect(connectionString);
  try {
    const out: StoredEvent[] = [];
    for (let after = 0n; ; ) {
      const page = await store.readAll({ after, limit: 500 });
      if (page.length === 0) return out;
      for (const { position, ...rest } of page) {
        out.push(rest);
        after = position;
      }
    }
  } finally {
    await store.close();
  }
}

/** Every audit lens as JSON, with what is the store's own left out: positions, and the CRL (re-signed by each restore). */
async function auditLenses(gw: Gateway): Promise<Record<string, unknown>> {
  const lenses = [
    ['--summary'],
    ['--expiring', '--days', '400'],
    ['--renewed'],
    ['--revoked'],
    ['--stuck'],
    ...[...new Set(USERS.map((u) => u.name))].map((n) => ['--history', '--email', `${n}@example.com`]),
  ];
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => k !== 'position' && k !== 'crl' && k !== 'generatedAt' && k !== 'now')
        .map(([k, v]) => [k, strip(v)]),
    );
  };
  const out: Record<string, unknown> = {};
  for (const lens of lenses) out[lens.join(' ')] = strip(JSON.parse(await ok(gw, AUDIT, [...lens, '--json'])));
  return out;
}

/** What an operator compares after a move: the user list, every audit lens, the CRL's serials. */
async function gatewayFacts(gw: Gateway): Promise<{ users: unknown; audit: Record<string, unknown>; crl: string[] }> {
  return { users: JSON.parse(await ok(gw, 'ov_user_list', ['--json'])), audit: await auditLenses(gw), crl: crlSerials(gw) };
}

function archiveIn(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith('.tar.gz'));
  expect(files).toHaveLength(1);
  return join(dir, files[0]!);
}

beforeAll(async () => {
  assertCliBuilt();
  for (const c of [BACKUP, RESTORE, AUDIT]) if (!existsSync(cliBinPath(c))) throw new Error(`${cliBinPath(c)} does not exist: run npm run build first`);
  root = mkdtempSync(join(tmpdir(), 'ovl-across-'));
  chmodSync(root, 0o755);
  double = await EsdbTestDouble.start({ systemEventsPerAppend: 1 });
  source = gatewayAt('source', undefined);
  onEsdb = gatewayAt('on-esdb', double.connectionString);
  backAgain = gatewayAt('back-again', undefined);
  for (const name of ['source', 'on-esdb', 'back-again', 'backups-1', 'backups-2']) mkdirSync(join(root, name), { mode: 0o755 });

  await ok(source, 'ov_init', ['--public-host', 'vpn.example.com', '--route', '10.30.0.0/16']);
  writeFileSync(
    join(source.config, 'email.conf'),
    `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME="Across stores"\nDELIVERY=outbox\nOUTBOX_DIR=${join(root, 'outbox')}\n`,
    { mode: 0o600 },
  );
  for (const u of USERS) {
    await ok(source, 'ov_user_add', [
      '--first-name', u.name[0]!.toUpperCase() + u.name.slice(1),
      '--last-name', 'Mover',
      '--email', `${u.name}@example.com`,
      '--traffic', u.traffic,
      '--expiration-date', utcDatePlus(u.days),
      '--creation-reason', 'e2e: backup across stores',
    ]);
  }
  await ok(source, 'ov_user_delete', ['--email', 'carol@example.com', '--traffic', 'all', '--reason', 'left the company']);
}, 240_000);

afterAll(async () => {
  await double?.stop();
  if (root && process.env['OVL_KEEP_E2E'] !== '1') rmSync(root, { recursive: true, force: true });
});

describe('given an embedded gateway with users in both traffic modes, one of them revoked', () => {
  it('when ov_backup runs, then it reads the embedded store and writes the archive', async () => {
    const out = await ok(source, BACKUP, ['--output-dir', join(root, 'backups-1')]);

    firstArchive = archiveIn(join(root, 'backups-1'));
    expect(out).toContain(`Backup written to ${firstArchive} (mode 0600)`);
    expect(out).not.toMatch(/EventStoreDB/);
  });

  it('when ov_restore --dry-run runs with OVL_EVENT_STORE naming an empty EventStoreDB, then it says it would append every event, and writes nothing anywhere', async () => {
    const res = await run(onEsdb, RESTORE, ['--dry-run', firstArchive!]);

    expect(res.code, res.stderr).toBe(0);
    const events = embeddedEvents(source).length;
    expect(res.stdout).toContain(`Would append the ${events} events to EventStoreDB at ${double.connectionString}, which holds none yet.`);
    expect(userRecords(double)).toHaveLength(0);
    expect(existsSync(onEsdb.state)).toBe(false);
  });

  it('when ov_restore runs with OVL_EVENT_STORE naming an empty EventStoreDB, then the server holds every event as the embedded store held it, in the same order', async () => {
    const res = await run(onEsdb, RESTORE, [firstArchive!]);

    expect(res.code, res.stderr).toBe(0);
    const expected = embeddedEvents(source);
    expect(res.stdout).toContain(`Appended ${expected.length} events to EventStoreDB at ${double.connectionString}; the local read models were built from it.`);
    expect(await esdbEvents(double.connectionString)).toEqual(expected);
    // Only the state and config directories appeared: no staging directory, no spooled events.
    expect(readdirSync(join(root, 'on-esdb')).sort()).toEqual(['config', 'state']);
    expect(readdirSync(onEsdb.state).sort()).toEqual(['keys', 'ledger.sqlite', 'openvpn', 'profiles', 'run']);
  });

  it('then the gateway on EventStoreDB lists the same users, answers every audit lens the same, and its CRL has the same serials', async () => {
    const [before, after] = [await gatewayFacts(source), await gatewayFacts(onEsdb)];

    expect(after.users).toEqual(before.users);
    expect(after.audit).toEqual(before.audit);
    expect(after.crl).toEqual(before.crl);
    expect(after.crl).toHaveLength(1);
  });

  it('then its read models follow EventStoreDB from the start: the first command does not rebuild them, and the checkpoint is a server position', async () => {
    const db = new Database(join(onEsdb.state, 'ledger.sqlite'), { readonly: true });
    try {
      const source = db.prepare('SELECT source FROM read_model_source WHERE id = 1').get() as { source: string } | undefined;
      const checkpoint = db.prepare('SELECT position FROM projection_checkpoint WHERE id = 1').get() as { position: string };
      expect(source?.source).toBe(`esdb://127.0.0.1:${double.port}`);
      expect(BigInt(checkpoint.position)).toBe(userRecords(double).at(-1)!.position);
    } finally {
      db.close();
    }
  });

  describe('and when the gateway on EventStoreDB is backed up and restored into a fresh embedded state', () => {
    it('when ov_backup runs with OVL_EVENT_STORE, then the archive holds the server\'s events up to its head when the backup started', async () => {
      const out = await ok(onEsdb, BACKUP, ['--output-dir', join(root, 'backups-2')]);

      esdbArchive = archiveIn(join(root, 'backups-2'));
      const head = userRecords(double).at(-1)!.position;
      expect(out).toContain(`The events are those of EventStoreDB at ${double.connectionString} up to position ${head}, its head when the backup started.`);
      expect(out).toMatch(new RegExp(`^ {2}events: {11}${embeddedEvents(source).length} \\(last position ${head}\\)$`, 'm'));
    });

    it('when that archive is restored without OVL_EVENT_STORE, then the embedded gateway lists, audits and revokes exactly as the first one', async () => {
      const res = await run(backAgain, RESTORE, [esdbArchive!]);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).not.toMatch(/EventStoreDB/);

      expect(embeddedEvents(backAgain)).toEqual(embeddedEvents(source));
      expect(await gatewayFacts(backAgain)).toEqual(await gatewayFacts(source));
      for (const file of ['keys/ca.key', 'keys/server.key', 'keys/tls-crypt.key', 'keys/profile-id.key', 'openvpn/ca.crt', 'openvpn/server.crt']) {
        expect(readFileSync(join(backAgain.state, file)).equals(readFileSync(join(source.state, file))), file).toBe(true);
      }
    });
  });

  describe('and when the target EventStoreDB already holds events', () => {
    const refusedAlike = (res: CliResult): void => {
      const lines = res.stderr.replace(/\n$/, '').split('\n');
      expect({ code: res.code, stdout: res.stdout, lines: lines.length }, res.stderr).toEqual({ code: 3, stdout: '', lines: 1 });
      expect(lines[0]).toBe(
        `ov_restore: EventStoreDB at ${double.connectionString} (OVL_EVENT_STORE) already holds ovpn-ledger events; a restore writes a whole history ` +
          'and would mix it with the one there: restore into an empty database (a new data directory or server), or without OVL_EVENT_STORE into the embedded store; nothing was changed',
      );
    };

    it('when ov_restore runs into a fresh state directory, then it is refused in one line, no state directory appears and the server holds the same events', async () => {
      const fresh = gatewayAt('refused-fresh', double.connectionString);
      mkdirSync(join(root, 'refused-fresh'), { mode: 0o755 });
      const held = double.records().length;

      refusedAlike(await run(fresh, RESTORE, [firstArchive!]));

      expect(readdirSync(join(root, 'refused-fresh'))).toEqual([]);
      expect(double.records().length).toBe(held);
    });

    it('when ov_restore --force runs over an existing gateway, then it is refused and every file of that gateway is byte for byte as it was', async () => {
      const target: Gateway = { ...backAgain, eventStore: double.connectionString };
      const [state, config, siblings] = [snapshotTree(target.state), snapshotTree(target.config), readdirSync(join(root, 'back-again')).sort()];
      const held = double.records().length;

      refusedAlike(await run(target, RESTORE, ['--force', firstArchive!]));

      expect(snapshotTree(target.state)).toEqual(state);
      expect(snapshotTree(target.config)).toEqual(config);
      expect(readdirSync(join(root, 'back-again')).sort()).toEqual(siblings);
      expect(double.records().length).toBe(held);
    });

    it('when ov_restore --dry-run runs, then the archive passes and the output says a restore into that server would be refused', async () => {
      const res = await run(gatewayAt('dry-nonempty', double.connectionString), RESTORE, ['--dry-run', firstArchive!]);

      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toContain(`EventStoreDB at ${double.connectionString} already holds events: a restore into it would be refused (it needs an empty database).`);
    });
  });

  it('when ov_init runs on a new state directory against the fleet\'s EventStoreDB without the fleet\'s CA, then it is refused and creates no key', async () => {
    const newcomer = gatewayAt('newcomer', double.connectionString);
    const held = double.records().length;

    const res = await run(newcomer, 'ov_init', ['--public-host', 'vpn.example.com', '--route', '10.30.0.0/16']);

    expect(res.code, res.stdout).toBe(3);
    expect(res.stderr).toMatch(/^ov_init: the event log already records an initialised gateway \(CA fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}\), but .*keys\/ca\.key is missing here: to join that gateway's fleet, copy keys\/ \(mode 0700\) and openvpn\/ from one of its gateways, or from an ov_backup archive of it, into .*; no key was created\n$/);
    expect(existsSync(join(newcomer.state, 'keys', 'ca.key'))).toBe(false);
    expect(existsSync(join(newcomer.state, 'openvpn', 'ca.crt'))).toBe(false);
    expect(double.records().length).toBe(held);

    // With the fleet's PKI copied over, the same command joins.
    cpSync(join(onEsdb.state, 'keys'), join(newcomer.state, 'keys'), { recursive: true });
    cpSync(join(onEsdb.state, 'openvpn'), join(newcomer.state, 'openvpn'), { recursive: true });
    cpSync(onEsdb.config, newcomer.config, { recursive: true });
    expect(await ok(newcomer, 'ov_init', ['--public-host', 'vpn.example.com', '--route', '10.30.0.0/16'])).toMatch(/already initialised/i);
  });

  it('when a profile is issued on the gateway on EventStoreDB after the restore, then it is appended there, listed, chains to the restored CA, and revoking it reaches the CRL', async () => {
    const before = userRecords(double).length;
    writeFileSync(
      join(onEsdb.config, 'email.conf'),
      `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME="Across stores"\nDELIVERY=outbox\nOUTBOX_DIR=${join(root, 'outbox-esdb')}\n`,
      { mode: 0o600 },
    );

    const out = await ok(onEsdb, 'ov_user_add', [
      '--first-name', 'Erin', '--last-name', 'Mover', '--email', 'erin@example.com', '--traffic', 'partial',
      '--expiration-date', utcDatePlus(60), '--creation-reason', 'issued after the move',
    ]);

    const profilePath = /^Kept at (.+)\.$/m.exec(out)?.[1];
    expect(profilePath, out).toBeDefined();
    expect(userRecords(double).length).toBeGreaterThan(before);
    expect(userRecords(double).at(-1)!.type).toBe('ProfileIssued');
    const listed = JSON.parse(await ok(onEsdb, 'ov_user_list', ['--json'])) as { email: string; traffic: string; serial: string }[];
    const erin = listed.find((u) => u.email === 'erin@example.com');
    expect(erin?.serial).toBe(basename(profilePath!, '.ovpn'));
    const cert = /<cert>\n([\s\S]*?)\n<\/cert>/.exec(readFileSync(profilePath!, 'utf8'))?.[1];
    const certPath = join(root, 'erin.crt');
    writeFileSync(certPath, `${cert}\n`);
    expect(execFileSync('openssl', ['verify', '-CAfile', join(source.state, 'openvpn', 'ca.crt'), certPath], { encoding: 'utf8' })).toMatch(/: OK/);

    await ok(onEsdb, 'ov_user_delete', ['--email', 'erin@example.com', '--traffic', 'partial']);
    expect(crlSerials(onEsdb)).toEqual([...crlSerials(source), erin!.serial].sort());
  });
});

describe('given an EventStoreDB that goes away while ov_restore appends to it', () => {
  it('when the restore stops half way, then it says how many events the server holds and how to recover, and the state directory never appears', async () => {
    const flaky = await EsdbTestDouble.start({ systemEventsPerAppend: 0 });
    try {
      let appends = 0;
      flaky.on('appended', () => {
        if (++appends === 3) void flaky.stop();
      });
      const target = gatewayAt('interrupted', flaky.connectionString);
      mkdirSync(join(root, 'interrupted'), { mode: 0o755 });

      const res = await run(target, RESTORE, [firstArchive!]);

      const total = embeddedEvents(source).length;
      if (process.env['OVL_E2E_VERBOSE']) console.log(res.stderr);
      expect(res.code, res.stderr).toBe(1);
      expect(res.stdout).toBe('');
      expect(res.stderr.split('\n')).toHaveLength(2);
      expect(res.stderr).toContain(`ov_restore: the restore stopped while appending to EventStoreDB at ${flaky.connectionString}:`);
      const said = new RegExp(`the server now holds the first (\\d+) of the archive's ${total} events \\(the last one confirmed: \\S+ revision \\d+\\)(, perhaps (one|\\d+) more from the append that failed,)?`).exec(res.stderr);
      expect(said, res.stderr).not.toBeNull();
      // The append whose answer was lost may or may not have landed: the message says so.
      const confirmed = Number(said![1]);
      const held = userRecords(flaky).length;
      expect(confirmed).toBeGreaterThan(0);
      expect(held).toBeGreaterThanOrEqual(confirmed);
      expect(held).toBeLessThan(total);
      if (held > confirmed) expect(said![2]).toBeDefined();
      expect(res.stderr).toMatch(/appends cannot be undone; .*interrupted\/state was not changed; to recover, empty that database .* then run ov_restore again\n$/);
      expect(readdirSync(join(root, 'interrupted'))).toEqual([]);
    } finally {
      await flaky.stop();
    }
  }, 60_000);
});
