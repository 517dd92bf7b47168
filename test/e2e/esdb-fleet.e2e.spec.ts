// Two gateways sharing one event store: the EventStoreDB TEST DOUBLE (test/support/esdb-test-double.ts,
// not an EventStoreDB), reached by the built commands through OVL_EVENT_STORE exactly as a real
// server would be. Each gateway keeps its own state directory and read models; they share the
// fleet's PKI (keys/ and openvpn/ copied from the gateway that ran ov_init, as an operator does
// with ov_backup/ov_restore).
//
// One scenario, in order: users added on either gateway are listed on the other; ov_follow on
// gateway 2 rewrites its CRL within 2 s of a revocation on gateway 1; ov_follow stopped (SIGTERM),
// killed (SIGKILL) and restarted mid-stream, with the store going away and coming back in
// between, ends with exactly the read models a full rebuild from the store gives.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { assertCliBuilt, cliBinPath, runCli, runCliOk, type CliCommand } from '../support/cli.js';
import { EsdbTestDouble } from '../support/esdb-test-double.js';
import { SyntheticProfiles, type SyntheticProfile } from '../support/synthetic-profile-events.js';

const followBin = join(dirname(cliBinPath('ov_init')), 'ov_follow.js');
const now = () => performance.timeOrigin + performance.now();

interface Gateway {
  readonly name: string;
  readonly stateDir: string;
  readonly configDir: string;
  readonly outboxDir: string;
}

let root: string;
let double: EsdbTestDouble;
let gw1: Gateway;
let gw2: Gateway;

function gateway(name: string): Gateway {
  const base = join(root, name);
  return { name, stateDir: join(base, 'state'), configDir: join(base, 'etc'), outboxDir: join(base, 'outbox') };
}

const envOf = (gw: Gateway): Record<string, string | undefined> => ({
  OVL_STATE_DIR: gw.stateDir,
  OVL_CONFIG_DIR: gw.configDir,
  OVL_EVENT_STORE: double.connectionString,
  OVL_NOW: undefined,
  OVL_LOG_FILE: undefined,
  OVL_LOG_LEVEL: undefined,
});

const on = (gw: Gateway, command: CliCommand, args: readonly string[]) => runCliOk(command, args, { env: envOf(gw) });

function addArgs(first: string, email: string): string[] {
  const expires = new Date(Date.now() + 120 * 86_400_000).toISOString().slice(0, 10);
  return ['--first-name', first, '--last-name', 'Fleet', '--email', email, '--traffic', 'all', '--expiration-date', expires, '--creation-reason', 'fleet test'];
}

async function listed(gw: Gateway): Promise<{ email: string; serial: string }[]> {
  return JSON.parse(await on(gw, 'ov_user_list', ['--json'])) as { email: string; serial: string }[];
}

function crlSerials(gw: Gateway): string[] {
  const text = execFileSync(
    'openssl',
    ['crl', '-in', join(gw.stateDir, 'openvpn', 'crl.pem'), '-CAfile', join(gw.stateDir, 'openvpn', 'ca.crt'), '-noout', '-text'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase());
}

/** ov_follow as a process, with its output collected. */
class Follower {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(gw: Gateway) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries(envOf(gw))) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    this.child = spawn(process.execPath, [followBin], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }

  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    const start = Date.now();
    while (!pattern.test(this.stdout)) {
      if (Date.now() - start > timeoutMs) {
        throw new Error(`ov_follow did not print ${pattern} within ${timeoutMs} ms\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      }
      await sleep(10);
    }
  }
}

/** The checkpoint of a gateway's read models, read without disturbing it. */
function checkpointOf(gw: Gateway): bigint {
  const db = openSqliteDatabase(join(gw.stateDir, 'ledger.sqlite'));
  try {
    const row = db.prepare<[], { position: string }>('SELECT position FROM projection_checkpoint WHERE id = 1').get();
    return row ? BigInt(row.position) : 0n;
  } finally {
    db.close();
  }
}

const encodeCrlEntry = (e: { serial: string; revokedAt: string; reason: Parameters<typeof encodeRevokedEntry>[0]['reason'] }) =>
  encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason });

beforeAll(async () => {
  assertCliBuilt();
  if (!existsSync(followBin)) throw new Error(`${followBin} does not exist: run npm run build first`);
  root = mkdtempSync(join(tmpdir(), 'ovl-fleet-'));
  double = await EsdbTestDouble.start({ systemEventsPerAppend: 1 });
  gw1 = gateway('gw1');
  gw2 = gateway('gw2');

  await on(gw1, 'ov_init', ['--public-host', 'vpn.example.com', '--route', '10.40.0.0/16']);
  // The fleet's PKI and configuration, carried over to the second gateway.
  mkdirSync(gw2.stateDir, { recursive: true });
  cpSync(join(gw1.stateDir, 'keys'), join(gw2.stateDir, 'keys'), { recursive: true });
  cpSync(join(gw1.stateDir, 'openvpn'), join(gw2.stateDir, 'openvpn'), { recursive: true });
  cpSync(gw1.configDir, gw2.configDir, { recursive: true });
  chmodSync(join(gw2.stateDir, 'keys'), 0o700);
  for (const gw of [gw1, gw2]) {
    writeFileSync(
      join(gw.configDir, 'email.conf'),
      ['FROM_EMAIL=vpn@example.com', `ENVIRONMENT_NAME="Fleet ${gw.name}"`, 'DELIVERY=outbox', `OUTBOX_DIR=${gw.outboxDir}`, ''].join('\n'),
      { mode: 0o600 },
    );
  }
}, 180_000);

afterAll(async () => {
  await double?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('given two gateways sharing one event store (the EventStoreDB test double)', () => {
  let follower: Follower | undefined;
  let adaSerial: string;

  afterAll(async () => {
    if (follower && follower.child.exitCode === null) {
      follower.child.kill('SIGKILL');
      await follower.exited;
    }
  });

  it('when ov_init runs on the second gateway with the fleet\'s keys, then it finds the gateway already initialised in the store and changes nothing', async () => {
    const out = await on(gw2, 'ov_init', ['--public-host', 'vpn.example.com', '--route', '10.40.0.0/16']);

    expect(out).toMatch(/already initialised/i);
    expect(existsSync(join(gw2.stateDir, 'ledger.sqlite'))).toBe(true);
  });

  it('when a user is added on gateway 1, then gateway 2 lists it with the same serial, and the other way round', async () => {
    await on(gw1, 'ov_user_add', addArgs('Ada', 'ada@example.com'));
    await on(gw2, 'ov_user_add', addArgs('Bob', 'bob@example.com'));

    const onGw2 = await listed(gw2);
    const onGw1 = await listed(gw1);
    expect(onGw2.map((u) => u.email)).toEqual(['ada@example.com', 'bob@example.com']);
    expect(onGw1).toEqual(onGw2);
    adaSerial = onGw1.find((u) => u.email === 'ada@example.com')!.serial;
  });

  it('when the same pair is added on both gateways, then the store lets only one of them issue it (the stream revision is checked)', async () => {
    const res = await runCli('ov_user_add', addArgs('Ada', 'ada@example.com'), { env: envOf(gw2) });

    expect(res.code).toBe(3);
  });

  it('when ada is revoked on gateway 1 while ov_follow runs on gateway 2, then gateway 2\'s CRL lists her serial within 2 s of the append', async () => {
    follower = new Follower(gw2);
    await follower.waitFor(/caught up/);
    const crlPath = join(gw2.stateDir, 'openvpn', 'crl.pem');
    const inodeBefore = statSync(crlPath).ino;
    let appendedAt: number | undefined;
    double.on('appended', (n) => {
      if (n.records.some((r) => r.type === 'ProfileRevoked')) appendedAt ??= n.atMs;
    });

    const deletion = on(gw1, 'ov_user_delete', ['--email', 'ada@example.com', '--traffic', 'all']);
    let rewrittenAt: number | undefined;
    const deadline = Date.now() + 20_000;
    while (rewrittenAt === undefined && Date.now() < deadline) {
      if (appendedAt !== undefined && existsSync(crlPath) && statSync(crlPath).ino !== inodeBefore) rewrittenAt = now();
      else await sleep(2);
    }
    await deletion;

    expect(appendedAt, 'the revocation was never appended').toBeDefined();
    expect(rewrittenAt, `gateway 2's CRL was never rewritten\n${follower.stdout}\n${follower.stderr}`).toBeDefined();
    const delayMs = rewrittenAt! - appendedAt!;
    console.log(`ov_follow: revocation on gateway 1 to CRL rewritten on gateway 2: ${delayMs.toFixed(0)} ms`);
    expect(delayMs).toBeLessThan(2_000);
    expect(crlSerials(gw2)).toContain(adaSerial);
    expect(crlSerials(gw1)).toContain(adaSerial);
    expect((await listed(gw2)).map((u) => u.email)).toEqual(['bob@example.com']);
    expect(follower.stdout).toMatch(/applied ProfileRevoked of profile-p[0-9a-f]{24} \(position \d+\)/);
    expect(follower.stdout).toMatch(/CRL #\d+ written with 1 entries/);
  });

  it('when ov_follow is stopped, killed and restarted mid-stream and the store goes away and comes back, then gateway 2 ends with the read models of a full rebuild', async () => {
    const pem = (JSON.parse(Buffer.from(double.records().find((r) => r.type === 'ProfileIssued')!.data).toString('utf8')) as {
      certificate: { pem: string };
    }).certificate.pem;
    const synthetic = new SyntheticProfiles(pem);
    const writer = EsdbEventStore.connect(double.connectionString);
    const revokedSerials: string[] = [];
    const appendProfiles = async (from: number, to: number, during?: Map<number, () => void>): Promise<void> => {
      for (let i = from; i < to; i++) {
        during?.get(i)?.();
        const p: SyntheticProfile = synthetic.profile(i, 'fleet');
        const revoke = i % 2 === 0;
        await writer.appendToStream(p.streamId, 'no_stream', synthetic.stream(p, i, 4, revoke));
        if (revoke) revokedSerials.push(p.serial);
      }
    };

    // 1. SIGTERM while events flow: it finishes the page in hand and exits 0.
    const first = follower!;
    await appendProfiles(0, 60, new Map([[30, () => first.child.kill('SIGTERM')]]));
    const firstExit = await first.exited;
    expect(firstExit.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/SIGTERM received, stopping/);
    expect(first.stdout).toMatch(/stopped at position \d+ \(subscription\)/);

    // 2. Restarted; the store goes away mid-stream and comes back on the same address.
    await appendProfiles(60, 80);
    const second = new Follower(gw2);
    await second.waitFor(/caught up/);
    await appendProfiles(80, 100);
    await double.stop();
    await second.waitFor(/event store unavailable/);
    await double.start();
    await appendProfiles(100, 140);
    await second.waitFor(/caught up[\s\S]*caught up/);

    // 3. SIGKILL mid-stream: no clean stop at all.
    await appendProfiles(140, 180, new Map([[150, () => second.child.kill('SIGKILL')]]));
    expect((await second.exited).signal).toBe('SIGKILL');

    // 4. Restarted once more; it catches up to the head, then stops cleanly.
    const third = new Follower(gw2);
    follower = third;
    await appendProfiles(180, 200);
    await third.waitFor(/following/);
    const head = await writer.headPosition();
    const deadline = Date.now() + 30_000;
    while (checkpointOf(gw2) < head && Date.now() < deadline) await sleep(20);
    third.child.kill('SIGTERM');
    expect((await third.exited).code, third.stderr).toBe(0);
    expect(checkpointOf(gw2)).toBe(head);

    // Gateway 2's read models against a rebuild from the whole store.
    const gw2Db = openSqliteDatabase(join(gw2.stateDir, 'ledger.sqlite'));
    const followed = new SqliteProjectionStore(gw2Db, { encodeCrlEntry }).dump();
    gw2Db.close();
    const freshDir = mkdtempSync(join(root, 'rebuild-'));
    const freshDb = openSqliteDatabase(join(freshDir, 'ledger.sqlite'));
    const fresh = new SqliteProjectionStore(freshDb, { encodeCrlEntry });
    await fresh.rebuild((after, limit) => writer.readAll({ after, limit }));
    const rebuilt = fresh.dump();
    freshDb.close();
    await writer.close();

    if (process.env['OVL_FLEET_DEBUG']) console.log(first.stdout, second.stdout, third.stdout);
    expect(followed).toEqual(rebuilt);
    expect(rebuilt['audit_log']!.length).toBe(4 + 200 * 4); // gateway, ada, bob, ada's revocation, and the made-up ones
    const onCrl = crlSerials(gw2);
    for (const serial of [adaSerial, ...revokedSerials]) expect(onCrl).toContain(serial);
    expect(onCrl).toHaveLength(1 + revokedSerials.length);
  }, 180_000);
});
