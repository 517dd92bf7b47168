// Benchmark of the daily renewal job (issue 3) on a gateway-scale store: P profiles, E events, of
// which exactly D profiles are due (active, auto-renew on, expiring within the renewal window at
// the pinned OVL_NOW). Not a test; run after building:
//
//   npm run build && npx tsc -p tsconfig.build.json &&
//   node dist/test/bench/renewal-bench.js [--profiles 100000] [--events 1000000] [--due 5000] [--add-runs 7] [--keep]
//
// Target: the renewal job's time per renewed profile is within 1.2x of issuing one profile with
// ov_user_add on the same store. ov_user_add pays process start-up on every run; the job pays it
// once for all D profiles: that is the comparison the issue asks for.
//
// Set-up as in ledger-bench.ts: the real ov_init in a temp dir, an outbox email.conf, then events
// appended through SqliteEventStore.appendManySync (synchronous=OFF for seeding only) with profile
// ids keyed like infra/composition-root.ts profileIdOf. One real client PEM is reused in every
// seeded event; serials are unique, random, positive and minimal.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import { stateLayout, type StateLayout } from '../../adapters/fs/state-layout.js';
import { createClientCertificate, generateRsaKeyPair } from '../../adapters/pki/certificates.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import type { EventType } from '../../domain/events.js';
import { addDays, endOfUtcDay, utcDateOf, type CalendarDate, type Traffic } from '../../domain/values.js';
import { appendPlanned, mulberry32, SerialSource, type PlannedEvent as Planned } from './seeding.js';
import { printTable, type Row } from './result-table.js';

const DAY = 86_400_000;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BIN_DIR = join(ROOT, 'dist', 'bin');
const ROUTE = '10.0.0.0/16';
/** RENEWAL_WINDOW_DAYS default of gateway.conf; passed explicitly to the job as well. */
const WINDOW_DAYS = 10;

// ---- options -----------------------------------------------------------------------------------

interface Options {
  readonly profiles: number;
  readonly events: number;
  readonly due: number;
  readonly addRuns: number;
  readonly keep: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const values: Record<string, number> = { profiles: 100_000, events: 1_000_000, due: 5_000, 'add-runs': 7 };
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
  const o = { profiles: values['profiles']!, events: values['events']!, due: values['due']!, addRuns: values['add-runs']!, keep };
  if (o.due > o.profiles) throw new Error('--due must not exceed --profiles');
  if (o.events < o.profiles) throw new Error('--events must be at least --profiles (one ProfileIssued each)');
  return o;
}

// ---- small helpers (as in ledger-bench.ts) -----------------------------------------------------

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const sec = (ms: number): string => `${(ms / 1000).toFixed(3)} s`;
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const log = (line: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};
const loadAverage = (): string => loadavg().map((n) => n.toFixed(2)).join(' ');

// ---- running the CLI ---------------------------------------------------------------------------

interface Gateway {
  readonly stateDir: string;
  readonly configDir: string;
  readonly outboxDir: string;
  readonly layout: StateLayout;
  readonly env: NodeJS.ProcessEnv;
}

function makeGateway(root: string, nowIso: string): Gateway {
  const base = join(root, 'gw');
  const stateDir = join(base, 'state');
  const configDir = join(base, 'etc');
  const outboxDir = join(base, 'outbox');
  mkdirSync(base, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, OVL_STATE_DIR: stateDir, OVL_CONFIG_DIR: configDir, OVL_NOW: nowIso };
  for (const key of ['OVL_LOG_FILE', 'OVL_LOG_LEVEL']) delete env[key];
  return { stateDir, configDir, outboxDir, layout: stateLayout(stateDir), env };
}

function writeEmailConf(gw: Gateway): void {
  mkdirSync(gw.outboxDir, { recursive: true, mode: 0o700 });
  writeFileSync(
    join(gw.configDir, 'email.conf'),
    `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME="Renewal bench"\nDELIVERY=outbox\nOUTBOX_DIR=${gw.outboxDir}\n`,
    { mode: 0o600 },
  );
}

interface Run {
  readonly ms: number;
  readonly cpuMs: number | undefined;
  readonly rssKb: number | undefined;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const GNU_TIME = '/usr/bin/time';
const HAVE_GNU_TIME = existsSync(GNU_TIME);
let timeFileCounter = 0;

function run(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const timeFile = HAVE_GNU_TIME ? join(tmpdir(), `renewal-bench-time-${process.pid}-${timeFileCounter++}.txt`) : undefined;
  const full = timeFile === undefined ? argv : [GNU_TIME, '-f', '%U %S %M', '-o', timeFile, ...argv];
  return new Promise((resolvePromise, reject) => {
    const start = performance.now();
    const child = spawn(full[0]!, full.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - start;
      let cpuMs: number | undefined;
      let rssKb: number | undefined;
      if (timeFile !== undefined && existsSync(timeFile)) {
        const [user, system, rss] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
        rmSync(timeFile, { force: true });
        if (Number.isFinite(user) && Number.isFinite(system)) cpuMs = (user! + system!) * 1000;
        if (Number.isFinite(rss)) rssKb = rss;
      }
      resolvePromise({ ms, cpuMs, rssKb, code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

async function cliOk(gw: Gateway, command: string, args: readonly string[] = []): Promise<Run> {
  const r = await run([process.execPath, join(BIN_DIR, `${command}.js`), ...args], gw.env);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(r.code)}:\n${r.stderr}\n${r.stdout.slice(0, 2000)}`);
  return r;
}

const cpuText = (r: { cpuMs: number | undefined }): string => (r.cpuMs === undefined ? '' : `, cpu ${sec(r.cpuMs)}`);

// ---- seeding -----------------------------------------------------------------------------------

interface Plan {
  readonly events: Planned[];
  readonly due: number;
  readonly counts: Record<string, number>;
}

/**
 * Profile i: one ProfileIssued (generation 1, 'all' traffic) then resends and auto-renew toggle
 * pairs so the total is exactly E events. Due profiles (D of them, spread evenly over the store)
 * expire 1–9 days after today with auto-renew on; the others expire 30–400 days after today with
 * auto-renew on or off. Toggles come in pairs, so the issued auto-renew flag is the final one.
 */
function planEvents(options: Options, existing: number, profileIdOf: (email: string, traffic: Traffic) => string, pem: string, now: number): Plan {
  const rng = mulberry32(0x3e5e);
  const between = (lo: number, hi: number): number => lo + rng() * (hi - lo);
  const serials = new SerialSource();
  const P = options.profiles;
  const today = utcDateOf(new Date(now));
  const extraTotal = options.events - existing - P;
  const extraBase = Math.floor(extraTotal / P);
  const extraRemainder = extraTotal % P;
  // Due profiles at indices floor(k * P / D), k = 0..D-1: distinct and spread.
  const dueSet = new Set<number>();
  for (let k = 0; k < options.due; k++) dueSet.add(Math.floor((k * P) / options.due));
  const events: Planned[] = [];
  const counts: Record<string, number> = {};
  const count = (type: string): void => {
    counts[type] = (counts[type] ?? 0) + 1;
  };

  for (let i = 0; i < P; i++) {
    const traffic: Traffic = 'all';
    const email = `renew.bench.${i}@corp${i % 7}.example.com`;
    const profileId = profileIdOf(email, traffic);
    const streamId = `profile-${profileId}`;
    const due = dueSet.has(i);
    const expirationDate: CalendarDate = addDays(today, due ? 1 + (i % 9) : Math.round(between(30, 400)));
    const autoRenew = due ? true : rng() < 0.5;
    const term = Math.round(between(60, 365));
    const issuedAt = Math.min(endOfUtcDay(expirationDate).getTime() - term * DAY, now - 2 * DAY);
    const serial = serials.next();
    let revision = 0;
    const notBefore = new Date(Math.floor((issuedAt - 5 * 60_000) / 1000) * 1000).toISOString();
    events.push({
      t: Math.round(issuedAt),
      streamId,
      revision: revision++,
      type: 'ProfileIssued',
      data: {
        profileId,
        generation: 1,
        email,
        traffic,
        firstName: 'Renew',
        lastName: `Bench${i}`,
        expirationDate,
        reason: 'renewal benchmark',
        autoRenew,
        certificate: { serial, notBefore, notAfter: endOfUtcDay(expirationDate).toISOString(), pem },
        routes: [],
      },
    });
    count('ProfileIssued');
    const extras = extraBase + (i < extraRemainder ? 1 : 0);
    const times = Array.from({ length: extras }, () => Math.round(between(issuedAt + 1000, now - 60_000))).sort((a, b) => a - b);
    let lastT = Math.round(issuedAt);
    let flag = autoRenew;
    for (let j = 0; j < extras; j++) {
      const t = Math.max(times[j]!, lastT + 1);
      lastT = t;
      // A toggle pair needs two slots; the flag must be back to `autoRenew` after the last event.
      const toggle = flag !== autoRenew || (j + 1 < extras && rng() < 0.3);
      let type: EventType;
      let data: unknown;
      if (toggle) {
        type = flag ? 'AutoRenewDisabled' : 'AutoRenewEnabled';
        flag = !flag;
        data = {};
      } else {
        type = 'ProfileResent';
        data = { serial, via: rng() < 0.8 ? 'smtp' : 'outbox' };
      }
      count(type);
      events.push({ t, streamId, revision: revision++, type, data });
    }
    if (flag !== autoRenew) throw new Error(`internal error: profile ${i} ends with auto-renew ${String(flag)}`);
  }
  events.sort((a, b) => a.t - b.t || (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : a.revision - b.revision));
  return { events, due: dueSet.size, counts };
}

async function seed(gw: Gateway, options: Options, now: number): Promise<{ plan: Plan; appendMs: number; head: bigint }> {
  const db = openSqliteDatabase(gw.layout.database, { synchronous: 'OFF' });
  try {
    const store = new SqliteEventStore(db);
    const existing = Number(store.headPositionSync());
    const key = Buffer.from(readFileSync(gw.layout.profileIdKey, 'utf8').trim(), 'hex');
    const profileIdOf = (email: string, traffic: Traffic): string =>
      `p${createHmac('sha256', key).update(`${email}\n${traffic}`).digest('hex').slice(0, 24)}`;
    const caKey = readFileSync(gw.layout.caKey, 'utf8');
    const caCert = readFileSync(gw.layout.caCert, 'utf8');
    const keys = await generateRsaKeyPair(2048);
    const pem = createClientCertificate({
      ca: { certificatePem: caCert, privateKeyPem: caKey },
      publicKeyPem: keys.publicKeyPem,
      commonName: profileIdOf('seed@example.com', 'all'),
      serialHex: new SerialSource().next(),
      validity: { notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY) },
    });
    const plan = planEvents(options, existing, profileIdOf, pem, now);
    log(`planned ${int(plan.events.length)} events (${int(plan.due)} due profiles); appending`);
    const appendMs = appendPlanned(store, plan.events, log);
    return { plan, appendMs, head: store.headPositionSync() };
  } finally {
    db.close();
  }
}

// ---- the run -----------------------------------------------------------------------------------

const renewedCount = (stdout: string): { renewed: number; failed: number; skipped: number } | undefined => {
  const m = /: (\d+) renewed, (\d+) failed, (\d+) skipped\./.exec(stdout);
  return m ? { renewed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) } : undefined;
};

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  for (const bin of ['ov_init', 'ov_user_list', 'ov_user_add', 'ov_user_renew_due']) {
    if (!existsSync(join(BIN_DIR, `${bin}.js`))) throw new Error(`${join(BIN_DIR, bin)}.js is missing: run npm run build first`);
  }
  // The business clock for every command: noon UTC today, so "today" is unambiguous.
  const now = Date.parse(`${utcDateOf(new Date())}T12:00:00Z`);
  const nowIso = new Date(now).toISOString();
  const work = mkdtempSync(join(tmpdir(), 'renewal-bench-'));
  const loadAtStart = loadAverage();
  log(`working in ${work} (${options.profiles} profiles, ${options.events} events, ${options.due} due; OVL_NOW=${nowIso}; load ${loadAtStart})`);
  const rows: Row[] = [];
  let failed = false;
  const verdict = (ok: boolean, cpuOk?: boolean): string => {
    if (!ok) failed = true;
    const wall = ok ? 'pass' : 'FAIL';
    return cpuOk === undefined ? wall : `${wall} (cpu: ${cpuOk ? 'pass' : 'FAIL'})`;
  };

  try {
    const gw = makeGateway(work, nowIso);
    await cliOk(gw, 'ov_init', ['--public-host', '127.0.0.1', '--route', ROUTE]);
    writeEmailConf(gw);
    log('ov_init done; seeding');

    const seeded = await seed(gw, options, now);
    if (seeded.head !== BigInt(options.events)) throw new Error(`store head is ${seeded.head}, expected ${options.events}`);
    const dbBytes = statSync(gw.layout.database).size;
    log(`seeded in ${sec(seeded.appendMs)}; db ${(dbBytes / 1e6).toFixed(0)} MB`);
    rows.push({
      measure: `seed: appendManySync, 10k events/tx, sync OFF (${int(seeded.plan.events.length)} events, db ${(dbBytes / 1e6).toFixed(0)} MB)`,
      value: `${sec(seeded.appendMs)} = ${int(seeded.plan.events.length / (seeded.appendMs / 1000))} ev/s`,
      target: '-',
      verdict: 'info',
    });

    // First CLI command after seeding: projects the whole log.
    const first = await cliOk(gw, 'ov_user_list');
    rows.push({
      measure: `first catch-up: ov_user_list right after seeding (${int(options.events)} events)`,
      value: `${sec(first.ms)}${cpuText(first)}`,
      target: '-',
      verdict: 'info',
    });
    log(`first catch-up ${sec(first.ms)}`);

    // (a) ov_user_add on the same store, same OVL_NOW, distinct emails.
    const addExpiration = addDays(utcDateOf(new Date(now)), 90);
    const addWall: number[] = [];
    const addCpu: number[] = [];
    for (let r = 0; r < options.addRuns; r++) {
      const a = await cliOk(gw, 'ov_user_add', [
        '--first-name', 'Bench', '--last-name', 'Add', '--email', `bench-add-${r}@example.com`, '--traffic', 'all',
        '--expiration-date', addExpiration, '--creation-reason', 'renewal benchmark',
      ]);
      if (!a.stdout.startsWith('Issued all profile')) throw new Error(`unexpected ov_user_add output: ${a.stdout}`);
      addWall.push(a.ms);
      if (a.cpuMs !== undefined) addCpu.push(a.cpuMs);
    }
    const addMs = median(addWall);
    const addCpuMs = addCpu.length === addWall.length ? median(addCpu) : undefined;
    rows.push({
      measure: `(a) ov_user_add, ${int(options.profiles)}-profile store (median of ${options.addRuns})`,
      value: `${sec(addMs)} [${sec(Math.min(...addWall))}–${sec(Math.max(...addWall))}]${addCpuMs === undefined ? '' : `, cpu ${sec(addCpuMs)}`}`,
      target: '-',
      verdict: 'info',
    });
    log(`add median ${sec(addMs)}`);

    // (b) the renewal job with D profiles due (the adds above expire in 90 days: not due).
    const outboxBefore = readdirSync(gw.outboxDir).length;
    log(`running ov_user_renew_due (${options.due} due)`);
    const job = await cliOk(gw, 'ov_user_renew_due', ['--window-days', String(WINDOW_DAYS)]);
    const jobCounts = renewedCount(job.stdout);
    if (!jobCounts) throw new Error(`unexpected ov_user_renew_due output: ${job.stdout.slice(0, 500)}`);
    const outboxFiles = readdirSync(gw.outboxDir).length - outboxBefore;
    const renewedOk = jobCounts.renewed === options.due && jobCounts.failed === 0;
    rows.push({
      measure: `(b) ov_user_renew_due, whole run (exit ${String(job.code)})`,
      value: `${sec(job.ms)}${cpuText(job)}${job.rssKb === undefined ? '' : `, peak RSS ${(job.rssKb / 1024).toFixed(0)} MB`}; ` +
        `${int(jobCounts.renewed)} renewed, ${jobCounts.failed} failed, ${jobCounts.skipped} skipped; ${int(outboxFiles)} outbox entries`,
      target: `exit 0, ${int(options.due)} renewed`,
      verdict: verdict(job.code === 0 && renewedOk),
    });
    const perMs = job.ms / Math.max(1, jobCounts.renewed);
    const perCpuMs = job.cpuMs === undefined ? undefined : job.cpuMs / Math.max(1, jobCounts.renewed);
    rows.push({
      measure: '(b) per renewed profile (job wall / renewed)',
      value: `${sec(perMs)}${perCpuMs === undefined ? '' : `, cpu ${sec(perCpuMs)}`}`,
      target: '-',
      verdict: 'info',
    });
    const ratio = perMs / addMs;
    const cpuRatio = perCpuMs === undefined || addCpuMs === undefined ? undefined : perCpuMs / addCpuMs;
    rows.push({
      measure: 'per-profile renewal / ov_user_add',
      value: `${ratio.toFixed(2)}x${cpuRatio === undefined ? '' : ` (cpu ${cpuRatio.toFixed(2)}x)`}`,
      target: '<= 1.2x',
      verdict: verdict(ratio <= 1.2 && renewedOk, cpuRatio === undefined ? undefined : cpuRatio <= 1.2),
    });
    log(`job ${sec(job.ms)} for ${jobCounts.renewed} renewed: ${sec(perMs)} each, ${ratio.toFixed(2)}x add`);

    // (c) a second run the same day: nothing left to renew.
    const again = await cliOk(gw, 'ov_user_renew_due', ['--window-days', String(WINDOW_DAYS)]);
    const againCounts = renewedCount(again.stdout);
    rows.push({
      measure: '(c) ov_user_renew_due again the same day',
      value: `${sec(again.ms)}${cpuText(again)}; ${againCounts ? `${againCounts.renewed} renewed, ${againCounts.failed} failed, ${againCounts.skipped} skipped` : 'unparsed output'}`,
      target: '0 renewed',
      verdict: verdict(againCounts !== undefined && againCounts.renewed === 0 && againCounts.failed === 0),
    });

    console.log('');
    console.log(
      `renewal-bench: ${int(options.profiles)} profiles, ${int(options.events)} events, ${int(options.due)} due; OVL_NOW=${nowIso}; ` +
        `node ${process.version}, ${availableParallelism()} CPUs, load average ${loadAtStart} at start, ${loadAverage()} at end; ${new Date().toISOString()}`,
    );
    console.log('');
    printTable(rows);
    console.log('');
    console.log(`seeded mix: ${Object.entries(seeded.plan.counts).sort().map(([t, n]) => `${t} ${int(n)}`).join(', ')}`);
    console.log('ov_user_add pays process start-up on each run; the job pays it once for all renewals (the comparison issue 3 asks for).');
    if (!HAVE_GNU_TIME) console.log('no /usr/bin/time: CPU times are not measured');
    if (options.keep) console.log(`kept: ${work}`);
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
    process.stderr.write(`renewal-bench: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 2;
  },
);
