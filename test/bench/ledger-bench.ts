// Benchmark of the whole ledger at gateway scale: a store holding P profiles and E events (by
// default 100,000 and 1,000,000, of which 100,000 revocations fill the CRL), measured through the
// built CLI as an operator runs it. Not a test; run after building:
//
//   npm run build && node dist/test/bench/ledger-bench.js [--profiles 100000] [--events 1000000]
//        [--runs 7] [--add-runs 7] [--delete-runs 5] [--keep]
//
// What it checks (the targets of the scale issue):
//   1. ov_user_list (and --json) as a fresh process: at most 0.7 s more than `node -e 0`;
//   2. ov_user_add on the big store: at most 1.5x the cost on a just-initialised store;
//   3. a full projection rebuild over every event, in-process: at least 50,000 events/s;
//   4. ov_user_delete end to end with a 100,000-entry CRL, and `openssl crl -CAfile` on the result.
// The existing crl-bench.ts compares the CRL encoder alone with `openssl ca -gencrl`.
//
// Set-up: the real ov_init in a temp dir, then events appended through the store's own append
// path (SqliteEventStore.appendManySync, synchronous=OFF for seeding only). Certificates in the
// seeded events are one real PEM reused; serials are unique, random, positive and minimal.

import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import { stateLayout, type StateLayout } from '../../adapters/fs/state-layout.js';
import { createClientCertificate, generateRsaKeyPair } from '../../adapters/pki/certificates.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { addDays, utcDateOf, type Traffic } from '../../domain/values.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { appendPlanned, planEvents, projectionDigest, ROUTE, SerialSource, type Plan, type ProfileRef } from './seeding.js';
import { printTable, type Row } from './result-table.js';

const DAY = 86_400_000;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BIN_DIR = join(ROOT, 'dist', 'bin');

// ---- options -----------------------------------------------------------------------------------

interface Options {
  readonly profiles: number;
  readonly events: number;
  readonly runs: number;
  readonly addRuns: number;
  readonly deleteRuns: number;
  readonly keep: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const values: Record<string, number> = { profiles: 100_000, events: 1_000_000, runs: 7, 'add-runs': 7, 'delete-runs': 5 };
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--keep') {
      keep = true;
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const key = m?.[1];
    if (key === undefined || !(key in values)) throw new Error(`unknown argument ${arg}`);
    const raw = m?.[2] ?? argv[++i];
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${key} needs a positive integer, got ${String(raw)}`);
    values[key] = n;
  }
  const o = {
    profiles: values['profiles']!,
    events: values['events']!,
    runs: Math.max(5, values['runs']!),
    addRuns: Math.max(7, values['add-runs']!),
    deleteRuns: values['delete-runs']!,
    keep,
  };
  // Every profile is issued and revoked once, 80 % are issued again: 2.8 events per profile at least.
  if (o.events < Math.ceil(o.profiles * 2.8) + 1) {
    throw new Error(`--events must be at least 2.8 x --profiles + 1 (${Math.ceil(o.profiles * 2.8) + 1}) for this event mix`);
  }
  return o;
}

// ---- small helpers -----------------------------------------------------------------------------

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const sec = (ms: number): string => `${(ms / 1000).toFixed(3)} s`;
const spread = (xs: readonly number[]): string => `${sec(Math.min(...xs))}–${sec(Math.max(...xs))}`;
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const log = (line: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

// ---- running the CLI ---------------------------------------------------------------------------

interface Gateway {
  readonly name: string;
  readonly stateDir: string;
  readonly configDir: string;
  readonly outboxDir: string;
  readonly layout: StateLayout;
  readonly env: NodeJS.ProcessEnv;
}

function makeGateway(root: string, name: string): Gateway {
  const base = join(root, name);
  const stateDir = join(base, 'state');
  const configDir = join(base, 'etc');
  const outboxDir = join(base, 'outbox');
  mkdirSync(base, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, OVL_STATE_DIR: stateDir, OVL_CONFIG_DIR: configDir };
  for (const key of ['OVL_NOW', 'OVL_LOG_FILE', 'OVL_LOG_LEVEL']) delete env[key];
  return { name, stateDir, configDir, outboxDir, layout: stateLayout(stateDir), env };
}

interface Run {
  readonly ms: number;
  /** user + system CPU of the child (GNU time), undefined without /usr/bin/time. */
  readonly cpuMs: number | undefined;
  /** Peak RSS of the child (GNU time), undefined without /usr/bin/time. */
  readonly rssKb: number | undefined;
  readonly code: number | null;
  readonly stdoutBytes: number;
  readonly stdoutLines: number;
  readonly stdout: string;
  readonly stderr: string;
}

// GNU time adds the child's CPU time and peak RSS to every measured run; CPU time matters on a
// shared machine, where wall time also measures whoever else is running (see the load average).
const GNU_TIME = '/usr/bin/time';
const HAVE_GNU_TIME = existsSync(GNU_TIME);
let timeFileCounter = 0;

/**
 * Spawns a process (under GNU time when present), drains its stdout through a pipe, and times it
 * from spawn to exit. The GNU time wrapper is the same for every command, baseline included.
 */
function run(argv: readonly string[], env: NodeJS.ProcessEnv, capture = false): Promise<Run> {
  const timeFile = HAVE_GNU_TIME ? join(tmpdir(), `ledger-bench-time-${process.pid}-${timeFileCounter++}.txt`) : undefined;
  const full = timeFile === undefined ? argv : [GNU_TIME, '-f', '%U %S %M', '-o', timeFile, ...argv];
  return new Promise((resolvePromise, reject) => {
    const start = performance.now();
    const child = spawn(full[0]!, full.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let lines = 0;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      if (capture) out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - start;
      let cpuMs: number | undefined;
      let rssKb: number | undefined;
      if (timeFile !== undefined && existsSync(timeFile)) {
        // After a non-zero exit GNU time writes "Command exited with non-zero status N" first.
        const [user, system, rss] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
        rmSync(timeFile, { force: true });
        if (Number.isFinite(user) && Number.isFinite(system)) cpuMs = (user! + system!) * 1000;
        if (Number.isFinite(rss)) rssKb = rss;
      }
      resolvePromise({
        ms,
        cpuMs,
        rssKb,
        code,
        stdoutBytes: bytes,
        stdoutLines: lines,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

const cli = (gw: Gateway, command: string, args: readonly string[] = [], capture = false): Promise<Run> =>
  run([process.execPath, join(BIN_DIR, `${command}.js`), ...args], gw.env, capture);

async function cliOk(gw: Gateway, command: string, args: readonly string[] = [], capture = false): Promise<Run> {
  const r = await cli(gw, command, args, capture);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} on the ${gw.name} store exited ${String(r.code)}:\n${r.stderr}`);
  return r;
}

/** Wall and CPU of a series of runs. */
class Series {
  readonly wall: number[] = [];
  readonly cpu: number[] = [];
  rssKb = 0;
  add(r: Run): Run {
    this.wall.push(r.ms);
    if (r.cpuMs !== undefined) this.cpu.push(r.cpuMs);
    if (r.rssKb !== undefined) this.rssKb = Math.max(this.rssKb, r.rssKb);
    return r;
  }
  get wallMedian(): number {
    return median(this.wall);
  }
  /** Median CPU time, or undefined when not every run had one. */
  get cpuMedian(): number | undefined {
    return this.cpu.length === this.wall.length && this.cpu.length > 0 ? median(this.cpu) : undefined;
  }
  describe(): string {
    const cpu = this.cpuMedian;
    return `${sec(this.wallMedian)} [${spread(this.wall)}]${cpu === undefined ? '' : `, cpu ${sec(cpu)}`}`;
  }
}

// ---- seeding -----------------------------------------------------------------------------------

interface SeedResult {
  readonly plan: Plan;
  readonly planMs: number;
  readonly appendMs: number;
  readonly head: bigint;
}

async function seed(gw: Gateway, options: Options): Promise<SeedResult> {
  const db = openSqliteDatabase(gw.layout.database, { synchronous: 'OFF' });
  try {
    const store = new SqliteEventStore(db);
    const existing = Number(store.headPositionSync());
    const key = Buffer.from(readFileSync(gw.layout.profileIdKey, 'utf8').trim(), 'hex');
    // The same keyed hash as infra/composition-root.ts profileIdOf.
    const profileIdOf = (email: string, traffic: Traffic): string =>
      `p${createHmac('sha256', key).update(`${email}\n${traffic}`).digest('hex').slice(0, 24)}`;

    // One real client certificate from this gateway's CA, reused in every seeded event.
    const caKey = readFileSync(gw.layout.caKey, 'utf8');
    const caCert = readFileSync(gw.layout.caCert, 'utf8');
    const keys = await generateRsaKeyPair(2048);
    const now = Date.now();
    const pem = createClientCertificate({
      ca: { certificatePem: caCert, privateKeyPem: caKey },
      publicKeyPem: keys.publicKeyPem,
      commonName: profileIdOf('seed@example.com', 'all'),
      serialHex: new SerialSource().next(),
      validity: { notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY) },
    });

    const planStart = performance.now();
    const plan = planEvents(options, existing, { profileIdOf, pem, now });
    const planMs = performance.now() - planStart;
    log(`planned ${int(plan.events.length)} events in ${sec(planMs)}; appending`);

    const appendMs = appendPlanned(store, plan.events, log);
    const head = store.headPositionSync();
    return { plan, planMs, appendMs, head };
  } finally {
    db.close();
  }
}

// ---- in-process rebuild --------------------------------------------------------------------------

async function rebuildInProcess(
  gw: Gateway,
): Promise<{ ms: number; cpuMs: number; applied: number; head: bigint; identical: boolean; crlEntries: number }> {
  const db = openSqliteDatabase(gw.layout.database);
  try {
    const store = new SqliteEventStore(db);
    // The same CRL-entry encoder as the composition root.
    const projections = new SqliteProjectionStore(db, {
      encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
    });
    const before = projectionDigest(db);
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    const applied = await projections.rebuild((after, limit) => store.readAll({ after, limit }));
    const cpu = process.cpuUsage(cpuStart);
    const ms = performance.now() - start;
    const after = projectionDigest(db);
    return {
      ms,
      cpuMs: (cpu.user + cpu.system) / 1000,
      applied,
      head: store.headPositionSync(),
      identical: before === after,
      crlEntries: projections.crlEntryCount(),
    };
  } finally {
    db.close();
  }
}

// ---- the run -----------------------------------------------------------------------------------

function writeEmailConf(gw: Gateway): void {
  mkdirSync(gw.outboxDir, { recursive: true, mode: 0o700 });
  writeFileSync(
    join(gw.configDir, 'email.conf'),
    `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME="Ledger bench"\nDELIVERY=outbox\nOUTBOX_DIR=${gw.outboxDir}\n`,
    { mode: 0o600 },
  );
}

const loadAverage = (): string => loadavg().map((n) => n.toFixed(2)).join(' ');

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  for (const bin of ['ov_init', 'ov_user_list', 'ov_user_add', 'ov_user_delete']) {
    if (!existsSync(join(BIN_DIR, `${bin}.js`))) throw new Error(`${join(BIN_DIR, bin)}.js is missing: run npm run build first`);
  }
  const work = mkdtempSync(join(tmpdir(), 'ledger-bench-'));
  const loadAtStart = loadAverage();
  log(`working in ${work} (${options.profiles} profiles, ${options.events} events; load average ${loadAtStart})`);
  const rows: Row[] = [];
  const notes: string[] = [];
  let failed = false;
  // The verdict is on wall time, as the targets are stated; the CPU-time verdict beside it says
  // what the same comparison gives when other processes on the machine are taken out.
  const verdict = (ok: boolean, cpuOk?: boolean): string => {
    if (!ok) failed = true;
    const wall = ok ? 'pass' : 'FAIL';
    return cpuOk === undefined ? wall : `${wall} (cpu: ${cpuOk ? 'pass' : 'FAIL'})`;
  };

  try {
    const big = makeGateway(work, 'big');
    const empty = makeGateway(work, 'empty');
    for (const gw of [big, empty]) {
      await cliOk(gw, 'ov_init', ['--public-host', '127.0.0.1', '--route', ROUTE]);
      writeEmailConf(gw);
    }
    log('ov_init done for both stores; seeding the big one');

    // -- seed ---------------------------------------------------------------------------------
    const seeded = await seed(big, options);
    const { plan } = seeded;
    const seededCount = plan.events.length;
    const dbBytes = statSync(big.layout.database).size;
    log(`seeded ${int(seededCount)} events (head ${seeded.head}) in ${sec(seeded.appendMs)} of appends; db ${(dbBytes / 1e6).toFixed(0)} MB`);
    if (seeded.head !== BigInt(options.events)) throw new Error(`store head is ${seeded.head}, expected ${options.events}`);
    rows.push({
      measure: `seed: appendManySync, 10k events/tx, sync OFF (${int(seededCount)} events)`,
      value: `${sec(seeded.appendMs)} = ${int(seededCount / (seeded.appendMs / 1000))} ev/s`,
      target: '-',
      verdict: 'info',
    });
    notes.push(
      `seeded mix: ${Object.entries(plan.counts).sort().map(([t, n]) => `${t} ${int(n)}`).join(', ')}; ` +
        `${int(plan.serials)} unique serials, ${int(plan.activeProfiles)} active profiles, ${int(plan.revokedSerials)} revoked serials; ` +
        `database ${(dbBytes / 1e6).toFixed(0)} MB; building the events took ${sec(seeded.planMs)} more`,
    );

    // -- first catch-up: the first CLI call after seeding projects the whole log --------------
    const first = await cliOk(big, 'ov_user_list');
    rows.push({
      measure: `first catch-up: ov_user_list right after seeding (${int(options.events)} events)`,
      value:
        `${sec(first.ms)} = ${int(options.events / (first.ms / 1000))} ev/s` +
        (first.cpuMs === undefined ? '' : `, cpu ${sec(first.cpuMs)}`) +
        (first.rssKb === undefined ? '' : `, peak RSS ${(first.rssKb / 1024).toFixed(0)} MB`),
      target: '-',
      verdict: 'info',
    });
    if (first.stdoutLines !== plan.activeProfiles + 1) {
      throw new Error(`ov_user_list printed ${first.stdoutLines} lines, expected ${plan.activeProfiles + 1} (header + active profiles)`);
    }
    log(`first catch-up: ${sec(first.ms)}`);

    // -- 1. ov_user_list vs node -e 0, interleaved so drift hits all three alike --------------
    const baseline = new Series();
    const list = new Series();
    const listJson = new Series();
    const listEmpty = new Series();
    let listBytes = 0;
    let jsonBytes = 0;
    for (let r = 0; r < options.runs; r++) {
      baseline.add(await run([process.execPath, '-e', '0'], big.env));
      const l = list.add(await cliOk(big, 'ov_user_list'));
      if (l.stdoutLines !== plan.activeProfiles + 1) throw new Error(`ov_user_list printed ${l.stdoutLines} lines`);
      listBytes = l.stdoutBytes;
      const j = listJson.add(await cliOk(big, 'ov_user_list', ['--json'], r === 0));
      if (r === 0) {
        const parsed = JSON.parse(j.stdout) as unknown[];
        if (parsed.length !== plan.activeProfiles) throw new Error(`ov_user_list --json listed ${parsed.length} profiles`);
      }
      jsonBytes = j.stdoutBytes;
      listEmpty.add(await cliOk(empty, 'ov_user_list'));
    }
    rows.push({ measure: `node -e 0 (median of ${options.runs})`, value: baseline.describe(), target: '-', verdict: 'info' });
    rows.push({ measure: `ov_user_list on the just-initialised store (median of ${options.runs})`, value: listEmpty.describe(), target: '-', verdict: 'info' });
    for (const [name, series, bytes] of [
      ['ov_user_list', list, listBytes],
      ['ov_user_list --json', listJson, jsonBytes],
    ] as const) {
      const over = series.wallMedian - baseline.wallMedian;
      const cpu = series.cpuMedian;
      const cpuBase = baseline.cpuMedian;
      const cpuOver = cpu === undefined || cpuBase === undefined ? undefined : cpu - cpuBase;
      rows.push({
        measure: `${name}, ${int(plan.activeProfiles)} active (median of ${options.runs}; ${(bytes / 1e6).toFixed(1)} MB out)`,
        value: `${series.describe()}; node + ${sec(over)}${cpuOver === undefined ? '' : ` (cpu + ${sec(cpuOver)})`}`,
        target: `<= node + 0.700 s`,
        verdict: verdict(over <= 700, cpuOver === undefined ? undefined : cpuOver <= 700),
      });
    }
    const mb = (kb: number): string => (kb > 0 ? `${(kb / 1024).toFixed(0)} MB` : 'n/a');
    rows.push({
      measure: 'peak RSS: ov_user_list / --json / on the just-initialised store',
      value: `${mb(list.rssKb)} / ${mb(listJson.rssKb)} / ${mb(listEmpty.rssKb)}`,
      target: '-',
      verdict: 'info',
    });
    log(`list: node ${sec(baseline.wallMedian)}, list ${sec(list.wallMedian)}, --json ${sec(listJson.wallMedian)}`);

    // -- 2. ov_user_add: just-initialised store vs the big one, interleaved ------------------
    const expirationDate = addDays(utcDateOf(new Date()), 90);
    const add = async (gw: Gateway, n: number): Promise<Run> => {
      const r = await cliOk(gw, 'ov_user_add', [
        '--first-name', 'Bench', '--last-name', 'User', '--email', `bench-add-${n}@${gw.name}.example.com`, '--traffic', 'all',
        '--expiration-date', expirationDate, '--creation-reason', 'ledger benchmark',
      ], true);
      if (!r.stdout.startsWith('Issued all profile')) throw new Error(`unexpected ov_user_add output: ${r.stdout}`);
      return r;
    };
    const addEmpty = new Series();
    const addBig = new Series();
    for (let r = 0; r < options.addRuns; r++) {
      addEmpty.add(await add(empty, r));
      addBig.add(await add(big, r));
    }
    const addRatio = addBig.wallMedian / addEmpty.wallMedian;
    const addCpuRatio =
      addBig.cpuMedian === undefined || addEmpty.cpuMedian === undefined ? undefined : addBig.cpuMedian / addEmpty.cpuMedian;
    rows.push({ measure: `ov_user_add, just-initialised store (median of ${options.addRuns})`, value: addEmpty.describe(), target: '-', verdict: 'info' });
    rows.push({
      measure: `ov_user_add, ${int(options.profiles)}-profile store (median of ${options.addRuns})`,
      value: `${addBig.describe()}; ${addRatio.toFixed(2)}x${addCpuRatio === undefined ? '' : ` (cpu ${addCpuRatio.toFixed(2)}x)`}`,
      target: '<= 1.5x empty',
      verdict: verdict(addRatio <= 1.5, addCpuRatio === undefined ? undefined : addCpuRatio <= 1.5),
    });
    log(`add: empty ${sec(addEmpty.wallMedian)}, big ${sec(addBig.wallMedian)}`);

    // -- 4. ov_user_delete with a 100k-entry CRL (the CLI path: append, catch-up, sign, write) -
    const deleteOn = async (gw: Gateway, ref: ProfileRef): Promise<{ run: Run; entries: number }> => {
      const r = await cliOk(gw, 'ov_user_delete', ['--email', ref.email, '--traffic', ref.traffic], true);
      const m = /CRL #\d+ written with (\d+) entries/.exec(r.stdout);
      if (!m) throw new Error(`unexpected ov_user_delete output: ${r.stdout}`);
      return { run: r, entries: Number(m[1]) };
    };
    const crlBefore = (() => {
      const db = openSqliteDatabase(big.layout.database);
      try {
        return db.prepare('SELECT COUNT(*) FROM crl_entries').pluck().get() as number;
      } finally {
        db.close();
      }
    })();
    const delBig = new Series();
    const delEmpty = new Series();
    let lastEntries = 0;
    const candidates = plan.deleteCandidates.slice(0, options.deleteRuns);
    if (candidates.length < options.deleteRuns) throw new Error('not enough active profiles to delete');
    for (let r = 0; r < options.deleteRuns; r++) {
      if (r < options.addRuns) delEmpty.add((await deleteOn(empty, { email: `bench-add-${r}@empty.example.com`, traffic: 'all' })).run);
      const d = await deleteOn(big, candidates[r]!);
      delBig.add(d.run);
      lastEntries = d.entries;
    }
    rows.push({
      measure: `ov_user_delete, just-initialised store (median of ${delEmpty.wall.length})`,
      value: delEmpty.describe(),
      target: '-',
      verdict: 'info',
    });
    rows.push({
      measure: `ov_user_delete, ${int(crlBefore)} CRL entries before (median of ${delBig.wall.length})`,
      value: delBig.describe(),
      target: '- (end to end)',
      verdict: 'info',
    });
    const crlPem = readFileSync(big.layout.crl, 'utf8');
    const verify = spawnSync('openssl', ['crl', '-in', big.layout.crl, '-CAfile', big.layout.caCert, '-noout'], { encoding: 'utf8' });
    const verifyOk = verify.status === 0 && `${verify.stdout}${verify.stderr}`.includes('verify OK');
    const text = spawnSync('openssl', ['crl', '-in', big.layout.crl, '-noout', '-text'], { encoding: 'utf8', maxBuffer: 1 << 30 });
    const listed = (text.stdout.match(/Serial Number: /g) ?? []).length;
    rows.push({
      measure: `openssl crl -CAfile ca.crt -noout, final CRL (${(Buffer.byteLength(crlPem) / 1e6).toFixed(1)} MB PEM)`,
      value: `${verifyOk ? 'verify OK' : `FAILED: ${(verify.stdout + verify.stderr).trim()}`}; ${int(listed)} entries listed`,
      target: `verify OK, ${int(lastEntries)} entries`,
      verdict: verdict(verifyOk && listed === lastEntries && lastEntries >= crlBefore + options.deleteRuns),
    });
    log(`delete: empty ${sec(delEmpty.wallMedian)}, big ${sec(delBig.wallMedian)}; CRL ${verifyOk ? 'verify OK' : 'NOT verified'}`);

    // -- 3. full projection rebuild, in-process ----------------------------------------------
    log('rebuilding the projections in-process');
    const rebuilt = await rebuildInProcess(big);
    const rate = rebuilt.applied / (rebuilt.ms / 1000);
    const cpuRate = rebuilt.applied / (rebuilt.cpuMs / 1000);
    rows.push({
      measure: `projection rebuild in-process (${int(rebuilt.applied)} events)`,
      value: `${sec(rebuilt.ms)} = ${int(rate)} ev/s; cpu ${sec(rebuilt.cpuMs)} = ${int(cpuRate)} ev/s`,
      target: '>= 50,000 ev/s',
      verdict: verdict(rate >= 50_000 && BigInt(rebuilt.applied) === rebuilt.head, cpuRate >= 50_000),
    });
    rows.push({
      measure: 'rebuild reproduces the read models the CLI built incrementally',
      value: rebuilt.identical ? `identical (${int(rebuilt.crlEntries)} CRL entries)` : 'DIFFERENT',
      target: 'identical',
      verdict: verdict(rebuilt.identical),
    });

    console.log('');
    console.log(
      `ledger-bench: ${int(options.profiles)} profiles, ${int(options.events)} events; node ${process.version}, ` +
        `${availableParallelism()} CPUs, load average ${loadAtStart} at start, ${loadAverage()} at end; ${new Date().toISOString()}`,
    );
    console.log('');
    printTable(rows);
    console.log('');
    if (!HAVE_GNU_TIME) notes.push('no /usr/bin/time: CPU times and peak RSS of the CLI runs are not measured');
    for (const n of notes) console.log(n);
    if (options.keep) console.log(`kept: ${work} (state dirs: ${big.stateDir}, ${empty.stateDir})`);
    return failed ? 1 : 0;
  } finally {
    if (!options.keep) rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`ledger-bench: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 2;
  },
);
