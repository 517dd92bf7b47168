// Benchmark of a gateway on EventStoreDB, against the EventStoreDB TEST DOUBLE (not a server:
// see test/support/esdb-test-double.ts) running as a process of its own, as a server would.
// Not a test; run after building:
//
//   npm run build && node dist/test/bench/esdb-catchup-bench.js [--events 1000000] [--runs 3] [--revocations 10] [--keep]
//        [--client-readall]
//
// --client-readall reads $all through the client's public readAll (EsdbEventStore's fastReads
// off) instead of the adapter's own decoding of the answers, to compare the two.
//
// What it measures (the targets of the EventStoreDB issue):
//   1. catch-up of a fresh gateway's read models from N events read through EsdbEventStore (the
//      real client, real gRPC, from another process): at least 20,000 events/s; and the read
//      alone, without projecting, to show where the time goes; the catch-up runs --runs times
//      (each into a fresh file) and the table gives the best and the median;
//   2. ov_follow (the built command) on that gateway: from the append of a revocation by another
//      writer to the CRL file replaced on disk, with the CRL the seeded history gives (a third of
//      the profiles revoked): at most 2 s.
// The seeded events are valid ledger events of made-up profiles (10 per profile, a third
// revoked), written by the double itself in the bytes EsdbEventStore sends.
//
// This machine's load is printed with the figures: other work on it slows everything down.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { ensureReadModelSource, eventStoreIdentity } from '../../infra/event-store-selection.js';
import type { Environment } from '../../infra/environment.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { SyntheticProfiles } from '../support/synthetic-profile-events.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BIN_DIR = join(ROOT, 'dist', 'bin');
const DOUBLE_MAIN = join(ROOT, 'dist', 'test', 'support', 'esdb-test-double-main.js');

interface Options {
  readonly events: number;
  readonly runs: number;
  readonly revocations: number;
  readonly keep: boolean;
  readonly clientReadAll: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const values: Record<string, number> = { events: 1_000_000, runs: 3, revocations: 10 };
  let keep = false;
  let clientReadAll = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--keep') {
      keep = true;
      continue;
    }
    if (arg === '--client-readall') {
      clientReadAll = true;
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const key = m?.[1];
    if (key === undefined || !(key in values)) throw new Error(`unknown argument ${arg}`);
    const n = Number(m?.[2] ?? argv[++i]);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${key} needs a positive integer`);
    values[key] = n;
  }
  return { events: values['events']!, runs: values['runs']!, revocations: values['revocations']!, keep, clientReadAll };
}

const log = (line: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const sec = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** utime + stime of a process, in ms (Linux /proc). */
function processCpuMs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Everything a child process printed so far. */
const outputs = new WeakMap<ChildProcess, { out: string; err: string; exited: boolean }>();

function collectOutput(child: ChildProcess): ChildProcess {
  const o = { out: '', err: '', exited: false };
  outputs.set(child, o);
  child.stdout?.on('data', (d: Buffer) => (o.out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (o.err += d.toString()));
  child.on('exit', () => (o.exited = true));
  return child;
}

/** Resolves with the first match of `pattern` in what the child printed on stdout. */
async function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs: number): Promise<RegExpExecArray> {
  const o = outputs.get(child)!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(o.out);
    if (m) return m;
    if (o.exited) throw new Error(`${what} exited before ${pattern}\n${o.out}\n${o.err}`);
    if (Date.now() > deadline) throw new Error(`${what}: no ${pattern} within ${timeoutMs} ms\n${o.out}\n${o.err}`);
    await sleep(20);
  }
}

function runCommand(command: string, args: readonly string[], env: NodeJS.ProcessEnv): string {
  return execFileSync(process.execPath, [join(BIN_DIR, `${command}.js`), ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  for (const f of [DOUBLE_MAIN, join(BIN_DIR, 'ov_follow.js'), join(BIN_DIR, 'ov_init.js')]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build first`);
  }
  const root = mkdtempSync(join(tmpdir(), 'ovl-esdb-bench-'));
  const children: ChildProcess[] = [];
  try {
    // A real certificate PEM for the seeded ProfileIssued events.
    const pemPath = join(root, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(root, 'cert.key'), '-subj', '/CN=bench', '-days', '2', '-out', pemPath], {
      stdio: 'ignore',
    });

    log(`seeding ${int(options.events)} events into the test double (its own process)…`);
    const double = collectOutput(
      spawn(process.execPath, [DOUBLE_MAIN, '--seed-events', String(options.events), '--seed-pem', pemPath], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    children.push(double);
    const seeded = await waitForLine(double, /seeded (\d+) events in ([\d.]+) s/, 'the test double', 30 * 60_000);
    const listening = await waitForLine(double, /listening (\S+)/, 'the test double', 60_000);
    const connectionString = listening[1]!;
    log(`seeded in ${seeded[2]} s; ${connectionString}`);

    // 1a. The read alone.
    const storeOptions = { fastReads: !options.clientReadAll };
    const reader = EsdbEventStore.connect(connectionString, storeOptions);
    const readPath = reader.decodesReads ? "the adapter decodes the server's answers" : "the client's readAll";
    let t = performance.now();
    let c = ownCpuMs();
    let s = processCpuMs(double.pid!);
    let readCount = 0;
    for (let after = 0n; ; ) {
      const page = await reader.readAll({ after, limit: 5_000 });
      if (page.length === 0) break;
      readCount += page.length;
      after = page.at(-1)!.position;
    }
    const read = { ms: performance.now() - t, cpuMs: ownCpuMs() - c, serverCpuMs: (processCpuMs(double.pid!) ?? NaN) - (s ?? NaN), count: readCount };
    await reader.close();
    log(`read alone: ${int(read.count)} events in ${sec(read.ms)}`);

    // 1b. Catch-up of a fresh gateway's read models, as openLedger does it; the last run's file
    // becomes the gateway of step 2.
    const store = EsdbEventStore.connect(connectionString, storeOptions);
    const readAll = (after: bigint, limit: number) => store.readAll({ after, limit });
    const catchUps: { ms: number; cpuMs: number; serverCpuMs: number; count: number }[] = [];
    let gatewayDir = '';
    let crlEntries = 0;
    let active: ReturnType<SqliteProjectionStore['activeUsers']> = [];
    for (let run = 1; run <= options.runs; run++) {
      gatewayDir = join(root, `gateway-${run}`);
      mkdirSync(join(gatewayDir, 'state'), { recursive: true, mode: 0o755 });
      const db = openSqliteDatabase(join(gatewayDir, 'state', 'ledger.sqlite'));
      const projections = new SqliteProjectionStore(db, {
        encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
      });
      await ensureReadModelSource(db, projections, eventStoreIdentity({ eventStore: connectionString } as Environment), readAll, pino({ level: 'silent' }));
      t = performance.now();
      c = ownCpuMs();
      s = processCpuMs(double.pid!);
      const applied = await projections.catchUp(readAll);
      const result = { ms: performance.now() - t, cpuMs: ownCpuMs() - c, serverCpuMs: (processCpuMs(double.pid!) ?? NaN) - (s ?? NaN), count: applied };
      catchUps.push(result);
      crlEntries = projections.crlEntryCount();
      active = projections.activeUsers().slice(0, options.revocations);
      db.close();
      log(`catch-up ${run}/${options.runs}: ${int(applied)} events in ${sec(result.ms)} (${int((applied / result.ms) * 1000)} events/s)`);
      if (run < options.runs) rmSync(gatewayDir, { recursive: true, force: true });
    }
    const stateDir = join(gatewayDir, 'state');
    const configDir = join(gatewayDir, 'etc');
    const rate = (r: { ms: number; count: number }) => (r.count / r.ms) * 1000;
    const byRate = [...catchUps].sort((a, b) => rate(b) - rate(a));
    const best = byRate[0]!;
    const middle = byRate[byRate.length >> 1]!;

    // 2. ov_follow on that gateway: revocation appended by another writer → CRL file replaced.
    const env: NodeJS.ProcessEnv = { ...process.env, OVL_STATE_DIR: stateDir, OVL_CONFIG_DIR: configDir, OVL_EVENT_STORE: connectionString };
    for (const key of ['OVL_NOW', 'OVL_LOG_FILE', 'OVL_LOG_LEVEL']) delete env[key];
    log('ov_init on the caught-up gateway (CA key generation)…');
    runCommand('ov_init', ['--public-host', 'vpn.example.com', '--route', '10.0.0.0/16'], env);
    const follower = collectOutput(spawn(process.execPath, [join(BIN_DIR, 'ov_follow.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    children.push(follower);
    await waitForLine(follower, /caught up/, 'ov_follow', 5 * 60_000);
    const crlPath = join(stateDir, 'openvpn', 'crl.pem');
    const synthetic = new SyntheticProfiles(readFileSync(pemPath, 'utf8'));
    const delays: { fromCall: number; fromAck: number }[] = [];
    for (const user of active) {
      const stream = await store.readStream(user.streamId);
      const inodeBefore = statSync(crlPath).ino;
      const profile = { streamId: user.streamId, profileId: user.profileId, email: user.email, serial: user.currentSerial };
      const called = performance.now();
      await store.appendToStream(user.streamId, stream.at(-1)!.revision, [synthetic.revoked(profile)]);
      const acknowledged = performance.now();
      const deadline = Date.now() + 30_000;
      while (statSync(crlPath).ino === inodeBefore) {
        if (Date.now() > deadline) throw new Error('ov_follow did not rewrite the CRL within 30 s');
        await sleep(2);
      }
      const rewritten = performance.now();
      delays.push({ fromCall: rewritten - called, fromAck: rewritten - acknowledged });
      log(`revocation ${delays.length}/${active.length}: CRL replaced ${(rewritten - called).toFixed(0)} ms after the append call`);
      await sleep(300);
    }
    follower.kill('SIGTERM');
    await new Promise((r) => follower.once('close', r));
    const crlText = execFileSync('openssl', ['crl', '-in', crlPath, '-CAfile', join(stateDir, 'openvpn', 'ca.crt'), '-noout', '-text'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 512 * 1024 * 1024,
    });
    const onCrl = new Set([...crlText.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase()));
    const allListed = active.every((u) => onCrl.has(u.currentSerial));
    await store.close();

    const perEvent = (ms: number, n: number) => `${((ms * 1000) / n).toFixed(0)} µs/event`;
    const rows: [string, string, string][] = [
      ['events in the store (plus the double\'s own system events)', int(Number(seeded[1])), ''],
      ['seeding the double (in its process, no gRPC)', `${seeded[2]} s`, ''],
      [
        `catch-up of a fresh gateway's read models through EsdbEventStore, best of ${catchUps.length}`,
        `${sec(best.ms)}, ${int(rate(best))} events/s`,
        '≥ 20,000 events/s',
      ],
      ['  median run', `${sec(middle.ms)}, ${int(rate(middle))} events/s`, ''],
      ['  CPU of the best run: this process (client + projections) / the double', `${perEvent(best.cpuMs, best.count)} / ${perEvent(best.serverCpuMs, best.count)}`, ''],
      [`read alone (EsdbEventStore.readAll, pages of 5,000; ${readPath})`, `${sec(read.ms)}, ${int((read.count / read.ms) * 1000)} events/s`, ''],
      ['  CPU: this process (client) / the double', `${perEvent(read.cpuMs, read.count)} / ${perEvent(read.serverCpuMs, read.count)}`, ''],
      ['CRL entries after catch-up', int(crlEntries), ''],
      [
        `ov_follow: append of a revocation → CRL file replaced (median / max of ${delays.length})`,
        `${median(delays.map((d) => d.fromCall)).toFixed(0)} ms / ${Math.max(...delays.map((d) => d.fromCall)).toFixed(0)} ms`,
        '≤ 2 s',
      ],
      ['  counted from the append\'s acknowledgement', `${median(delays.map((d) => d.fromAck)).toFixed(0)} ms / ${Math.max(...delays.map((d) => d.fromAck)).toFixed(0)} ms`, ''],
      ['every revoked serial on the CRL (openssl crl -CAfile)', allListed ? 'yes' : 'NO', ''],
    ];
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const w1 = Math.max(...rows.map((r) => r[1].length));
    const line = (a: string, b: string, c: string) => `| ${a.padEnd(w0)} | ${b.padEnd(w1)} | ${c} |`;
    process.stdout.write(
      [
        `EventStoreDB adapter benchmark against the test double — node ${process.version}, ${cpus().length} CPU(s), load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
        line('measure', 'result', 'target'),
        line('-'.repeat(w0), '-'.repeat(w1), '------'),
        ...rows.map((r) => line(...r)),
        '',
      ].join('\n'),
    );
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    if (options.keep) log(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
