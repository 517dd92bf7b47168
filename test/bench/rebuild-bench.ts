// Benchmark of a full projection rebuild from the embedded SQLite event log (issue 2's speed
// target: at least 50,000 events/s over 1,000,000 events). Not a test; run after building:
//
//   npm run build && node dist/test/bench/rebuild-bench.js [--reuse] [--events 1000000]
//        [--profiles 100000] [--runs 3] [--modes auto,single] [--file /tmp/ovl-rebuild-bench/ledger.sqlite]
//
// The log is seeded once into --file (realistic events: the same mix as ledger-bench.ts, one real
// certificate PEM reused, unique serials) and kept; --reuse skips seeding when the file holds
// exactly --events events. Each run is a fresh process that empties the read models (untimed),
// then times SqliteProjectionStore.rebuild in-process: wall, CPU (user + system, every thread),
// peak RSS. Modes: `auto` is what a command does (the read-and-decode worker when its script is
// there), `single` forces the single-thread path. Runs alternate between modes so that both see
// the same machine; the table gives every run, the best and (from 3 runs) the median of each
// mode, with the load average (1 min) before and after each run and the share of CPU time the
// hypervisor gave to other guests meanwhile: other work on this machine slows every figure.

import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import { createCaCertificate, createClientCertificate, generateRsaKeyPair } from '../../adapters/pki/certificates.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import type { Traffic } from '../../domain/values.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { cpuTimes, stealBetween } from './cpu-steal.js';
import { appendPlanned, planEvents, projectionDigest, PROJECTION_TABLES } from './seeding.js';

const DAY = 86_400_000;
const HERE = fileURLToPath(import.meta.url);

type Mode = 'auto' | 'single';

interface Options {
  readonly events: number;
  readonly profiles: number;
  readonly runs: number;
  readonly reuse: boolean;
  readonly file: string;
  readonly modes: readonly Mode[];
  readonly child: Mode | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const numbers: Record<string, number> = { events: 1_000_000, profiles: 100_000, runs: 3 };
  let reuse = false;
  let file = '/tmp/ovl-rebuild-bench/ledger.sqlite';
  let modes: Mode[] = ['auto', 'single'];
  let child: Mode | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--reuse') {
      reuse = true;
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const key = m?.[1];
    const raw = m?.[2] ?? argv[++i];
    if (key === 'file' && raw) file = resolve(raw);
    else if ((key === 'modes' || key === 'child') && raw) {
      const list = raw.split(',').map((s) => s.trim());
      if (!list.every((s): s is Mode => s === 'auto' || s === 'single')) throw new Error(`--${key}: modes are auto and single, not ${raw}`);
      if (key === 'child') child = list[0];
      else modes = list;
    } else if (key !== undefined && key in numbers) {
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${key} needs a positive integer, got ${String(raw)}`);
      numbers[key] = n;
    } else throw new Error(`unknown argument ${arg}`);
  }
  const o = { events: numbers['events']!, profiles: numbers['profiles']!, runs: numbers['runs']!, reuse, file, modes, child };
  if (o.events < Math.ceil(o.profiles * 2.8) + 1) {
    throw new Error(`--events must be at least 2.8 x --profiles + 1 (${Math.ceil(o.profiles * 2.8) + 1}) for this event mix`);
  }
  return o;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const log = (line: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};
const load1 = (): string => loadavg()[0]!.toFixed(2);



// ---- seeding: the event mix of ledger-bench.ts (test/bench/seeding.ts) ---------------------

async function seed(options: Options): Promise<void> {
  mkdirSync(dirname(options.file), { recursive: true });
  for (const suffix of ['', '-wal', '-shm']) rmSync(options.file + suffix, { force: true });
  const key = randomBytes(32);
  const profileIdOf = (email: string, traffic: Traffic): string =>
    `p${createHmac('sha256', key).update(`${email}\n${traffic}`).digest('hex').slice(0, 24)}`;
  const now = Date.now();
  const caKeys = await generateRsaKeyPair(2048);
  const validity = { notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY) };
  const caPem = createCaCertificate({ keys: caKeys, commonName: 'rebuild-bench CA', serialHex: '01', validity });
  const clientKeys = await generateRsaKeyPair(2048);
  const pem = createClientCertificate({
    ca: { certificatePem: caPem, privateKeyPem: caKeys.privateKeyPem },
    publicKeyPem: clientKeys.publicKeyPem,
    commonName: profileIdOf('seed@example.com', 'all'),
    serialHex: '02',
    validity,
  });
  const planned = planEvents({ profiles: options.profiles, events: options.events }, 0, { profileIdOf, pem, now }).events;
  log(`planned ${int(planned.length)} events; appending to ${options.file}`);
  const db = openSqliteDatabase(options.file, { synchronous: 'OFF' });
  try {
    const store = new SqliteEventStore(db);
    const start = performance.now();
    appendPlanned(store, planned, log);
    db.pragma('wal_checkpoint(TRUNCATE)');
    log(`seeded ${int(planned.length)} events in ${((performance.now() - start) / 1000).toFixed(1)} s; ${int(statSync(options.file).size / 1e6)} MB`);
  } finally {
    db.close();
  }
}

function eventCount(file: string): number {
  if (!existsSync(file)) return -1;
  const db = openSqliteDatabase(file);
  try {
    const exists = db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'events'`).get();
    return exists ? Number(db.prepare('SELECT coalesce(max(position), 0) AS n FROM events').pluck().get()) : -1;
  } finally {
    db.close();
  }
}

// ---- one timed rebuild (a child process of its own) -------------------------------------------

interface RunResult {
  readonly mode: Mode;
  readonly applied: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly peakRssKb: number;
  readonly digest: string;
  readonly pipelined: boolean;
  /** Pages the command's own thread projected, of all pages, when the read worker ran. */
  readonly pagesHere: string;
}


async function child(options: Options, mode: Mode): Promise<void> {
  const db = openSqliteDatabase(options.file);
  try {
    const store = new SqliteEventStore(db);
    const projections = new SqliteProjectionStore(db, {
      encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
      ...(mode === 'single' ? { readWorker: false } : {}),
    });
    // Untimed: every run starts from empty read models and an empty WAL.
    db.transaction(() => {
      for (const table of PROJECTION_TABLES) db.exec(`DELETE FROM ${table}`);
    }).immediate();
    db.pragma('wal_checkpoint(TRUNCATE)');
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    const applied = await projections.rebuild((after, limit) => store.readAll({ after, limit }));
    const cpu = process.cpuUsage(cpuStart);
    const wallMs = performance.now() - start;
    const pages = projections.lastPipelinedPages;
    const result: RunResult = {
      mode,
      applied,
      wallMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      peakRssKb: process.resourceUsage().maxRSS,
      digest: projectionDigest(db),
      pipelined: projections.lastWholeLogPass === 'pipelined',
      pagesHere: pages ? `${pages.thisThread}/${pages.worker + pages.thisThread}` : '-',
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    db.close();
  }
}

type RunRow = RunResult & { loadBefore: string; loadAfter: string; steal: string };

function runChild(options: Options, mode: Mode): RunRow {
  const loadBefore = load1();
  const timesBefore = cpuTimes();
  const r = spawnSync(process.execPath, [HERE, '--child', mode, '--file', options.file, '--events', String(options.events), '--profiles', String(options.profiles)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`the ${mode} run exited ${String(r.status)}`);
  return { ...(JSON.parse(r.stdout.trim().split('\n').at(-1)!) as RunResult), loadBefore, loadAfter: load1(), steal: stealBetween(timesBefore, cpuTimes()) };
}

// ---- the run -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.child) return child(options, options.child);
  const have = eventCount(options.file);
  if (options.reuse && have === options.events) log(`reusing ${options.file} (${int(have)} events)`);
  else {
    if (options.reuse) log(`${options.file} holds ${have < 0 ? 'no log' : `${int(have)} events`}, not ${int(options.events)}: seeding it again`);
    await seed(options);
  }
  const rows: RunRow[] = [];
  for (let run = 0; run < options.runs; run++) {
    for (const mode of options.modes) {
      log(`run ${run + 1}/${options.runs}, ${mode}`);
      rows.push(runChild(options, mode));
    }
  }
  const header = ['mode', 'run', 'events', 'wall s', 'CPU s', 'events/s', 'peak RSS MB', 'pages in main thread', 'load 1m before→after', 'CPU stolen'];
  const line = (r: (typeof rows)[number], label: string): string[] => [
    r.mode + (r.mode === 'auto' ? (r.pipelined ? ' (pipelined)' : ' (single thread)') : ''),
    label,
    int(r.applied),
    (r.wallMs / 1000).toFixed(2),
    (r.cpuMs / 1000).toFixed(2),
    int(r.applied / (r.wallMs / 1000)),
    int(r.peakRssKb / 1024),
    r.pagesHere,
    `${r.loadBefore}→${r.loadAfter}`,
    r.steal,
  ];
  const table: string[][] = [header];
  for (const mode of options.modes) {
    const mine = rows.filter((r) => r.mode === mode);
    mine.forEach((r, i) => table.push(line(r, String(i + 1))));
    const byWall = [...mine].sort((a, b) => a.wallMs - b.wallMs);
    table.push(line(byWall[0]!, 'best'));
    if (mine.length >= 3) table.push(line(byWall[Math.floor(byWall.length / 2)]!, 'median'));
  }
  const widths = header.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  for (const row of table) console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
  const digests = new Set(rows.map((r) => r.digest));
  console.log(digests.size === 1 ? `every run gave the identical read models (sha256 ${[...digests][0]!.slice(0, 16)}…)` : `READ MODELS DIFFER between runs: ${[...digests].join(', ')}`);
  const rates = rows.map((r) => r.applied / (r.wallMs / 1000)).sort((a, b) => b - a);
  const best = rates[0]!;
  const median = rates[Math.floor(rates.length / 2)]!;
  console.log(`target: at least 50,000 events/s; best ${int(best)} events/s: ${best >= 50_000 ? 'pass' : 'fail'}; median of ${rates.length} runs ${int(median)} events/s`);
  if (digests.size !== 1) process.exitCode = 1;
}

await main();
