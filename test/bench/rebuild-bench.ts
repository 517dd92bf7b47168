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
// the same machine; the table gives every run and the best of each mode, with the load average
// (1 min) before and after each run: other work on this machine slows every figure.

import { spawnSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type Database from 'better-sqlite3';
import type { NewEvent } from '../../adapters/eventstore/event-store.js';
import { SqliteEventStore, type StreamAppend } from '../../adapters/eventstore/sqlite-event-store.js';
import { createCaCertificate, createClientCertificate, generateRsaKeyPair } from '../../adapters/pki/certificates.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { TOOL_NAME } from '../../commands/version.js';
import { CURRENT_SCHEMAS, type EventType } from '../../domain/events.js';
import { addDays, endOfUtcDay, utcDateOf, type CalendarDate, type Traffic } from '../../domain/values.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { mulberry32, SerialSource } from './seeding.js';

const DAY = 86_400_000;
const HERE = fileURLToPath(import.meta.url);
const ROUTE = '10.0.0.0/16';
const PROJECTION_TABLES = ['users', 'certificates', 'crl_entries', 'audit_log', 'gateway', 'projection_checkpoint'];

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



// ---- seeding: the event mix of ledger-bench.ts -------------------------------------------------

const FIRST_NAMES = ['Ada', 'Alan', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Margaret', 'Ken', 'Frances', 'Dennis', 'Radia', 'Niklaus', 'Hedy', 'Tony', 'Karen', 'Leslie', 'Sophie', 'John', 'Jean', 'Linus'];
const LAST_NAMES = ['Lovelace', 'Turing', 'Hopper', 'Dijkstra', 'Liskov', 'Knuth', 'Hamilton', 'Thompson', 'Allen', 'Ritchie', 'Perlman', 'Wirth', 'Lamarr', 'Hoare', 'Spärck Jones', 'Lamport', 'Wilson', 'Backus', 'Sammet', 'Torvalds'];
const REASONS = ['remote access for the support rotation', 'contractor: data migration project', 'on-call access to the build farm', 'access to the staging network', 'replacement laptop'];

interface Planned {
  readonly t: number;
  readonly streamId: string;
  readonly revision: number;
  readonly type: EventType;
  readonly data: unknown;
}

/**
 * Every profile: generation 1 issued, some resends and auto-renew toggles, then revoked; 80 % are
 * then issued again (generation 2) and live on with renewals, resends and toggles. The log is in
 * time order, streams interleaved, as a gateway would have written it.
 */
function planEvents(events: number, P: number, profileIdOf: (email: string, traffic: Traffic) => string, pem: string, now: number): Planned[] {
  const rng = mulberry32(0x5eed);
  const between = (lo: number, hi: number): number => lo + rng() * (hi - lo);
  const serials = new SerialSource();
  const reissued = (i: number): boolean => i % 5 !== 4;
  let reissuedCount = 0;
  for (let i = 0; i < P; i++) if (reissued(i)) reissuedCount++;
  const extraTotal = events - (P + reissuedCount) - P;
  const extraBase = Math.floor(extraTotal / P);
  const extraRemainder = extraTotal % P;
  const out: Planned[] = [];
  const dateOf = (t: number): CalendarDate => utcDateOf(new Date(t));
  const notBeforeOf = (t: number): string => new Date(Math.floor((t - 5 * 60_000) / 1000) * 1000).toISOString();

  for (let i = 0; i < P; i++) {
    const traffic: Traffic = i % 10 === 7 || i % 10 === 9 ? 'partial' : 'all';
    const emailIndex = i % 10 === 7 ? i - 1 : i;
    const first = FIRST_NAMES[emailIndex % FIRST_NAMES.length]!;
    const last = LAST_NAMES[Math.floor(emailIndex / FIRST_NAMES.length) % LAST_NAMES.length]!;
    const email = `${first}.${last.replace(/[^A-Za-z]/g, '')}.${emailIndex}@corp${emailIndex % 7}.example.com`.toLowerCase();
    const profileId = profileIdOf(email, traffic);
    const streamId = `profile-${profileId}`;
    const routes = traffic === 'partial' ? [ROUTE] : [];
    const extras = extraBase + (i < extraRemainder ? 1 : 0);
    type Draft = { t: number; kind: 'issue' | 'renew' | 'resend' | 'toggle' | 'revoke'; expirationDate?: CalendarDate };
    const stream: Planned[] = [];
    let revision = 0;
    const emit = (drafts: Draft[], generation: number, autoRenewAtStart: boolean): void => {
      drafts.sort((a, b) => a.t - b.t);
      let autoRenew = autoRenewAtStart;
      let currentSerial = '';
      let lastT = stream.at(-1)?.t ?? -Infinity;
      for (const d of drafts) {
        const t = Math.max(Math.round(d.t), lastT + 1);
        lastT = t;
        let type: EventType;
        let data: unknown;
        switch (d.kind) {
          case 'issue':
            currentSerial = serials.next();
            type = 'ProfileIssued';
            data = {
              profileId, generation, email, traffic, firstName: first, lastName: last, expirationDate: d.expirationDate!,
              reason: REASONS[i % REASONS.length]!, autoRenew,
              certificate: { serial: currentSerial, notBefore: notBeforeOf(t), notAfter: endOfUtcDay(d.expirationDate!).toISOString(), pem },
              routes,
            };
            break;
          case 'renew': {
            const previousSerial = currentSerial;
            currentSerial = serials.next();
            type = 'ProfileRenewed';
            data = {
              previousSerial,
              expirationDate: d.expirationDate!,
              certificate: { serial: currentSerial, notBefore: notBeforeOf(t), notAfter: endOfUtcDay(d.expirationDate!).toISOString(), pem },
            };
            break;
          }
          case 'resend':
            type = 'ProfileResent';
            data = { serial: currentSerial, via: rng() < 0.8 ? 'smtp' : 'outbox' };
            break;
          case 'toggle':
            type = autoRenew ? 'AutoRenewDisabled' : 'AutoRenewEnabled';
            autoRenew = !autoRenew;
            data = {};
            break;
          case 'revoke':
            type = 'ProfileRevoked';
            data = { serials: [currentSerial], reason: 'left the company', crlReason: rng() < 0.9 ? 'cessationOfOperation' : 'keyCompromise' };
            break;
        }
        stream.push({ t, streamId, revision: revision++, type, data });
      }
    };
    const fillers = (n: number, lo: number, hi: number): Draft[] =>
      Array.from({ length: n }, () => ({ t: between(lo, hi), kind: rng() < 0.6 ? 'resend' : 'toggle' }) as Draft);

    if (!reissued(i)) {
      const start = now - between(60, 1000) * DAY;
      const expirationDate = dateOf(start + between(30, 365) * DAY);
      const end = Math.min(endOfUtcDay(expirationDate).getTime(), now - 60_000);
      const revokedAt = between(start + 0.6 * (end - start), end);
      emit([{ t: start, kind: 'issue', expirationDate }, ...fillers(extras, start + 1000, revokedAt - 1000), { t: revokedAt, kind: 'revoke' }], 1, rng() < 0.3);
    } else {
      const g1Extras = Math.floor(extras * 0.25);
      const g2Extras = extras - g1Extras;
      const renewals = Math.round(g2Extras * 0.35);
      const term = Math.round(between(30, 120));
      const expired = rng() < 0.05;
      const finalExpiry = utcDateOf(new Date(now + (expired ? -between(1, 60) : between(1, term)) * DAY));
      const expiries = Array.from({ length: renewals + 1 }, (_, j) => addDays(finalExpiry, -(renewals - j) * term));
      const g2Start = Math.min(endOfUtcDay(expiries[0]!).getTime() - term * DAY, now - 2 * DAY);
      const drafts2: Draft[] = [{ t: g2Start, kind: 'issue', expirationDate: expiries[0]! }];
      for (let j = 1; j <= renewals; j++) {
        drafts2.push({ t: endOfUtcDay(expiries[j - 1]!).getTime() - between(1, 9) * DAY, kind: 'renew', expirationDate: expiries[j]! });
      }
      drafts2.push(...fillers(g2Extras - renewals, g2Start + 1000, now - 60_000));
      const g1Start = g2Start - between(20, 400) * DAY;
      const g1Expiration = dateOf(g1Start + between(30, 365) * DAY);
      const g1End = Math.min(endOfUtcDay(g1Expiration).getTime(), g2Start - DAY);
      const revokedAt = between(g1Start + 0.6 * (g1End - g1Start), g1End);
      const autoRenew = rng() < 0.3;
      emit([{ t: g1Start, kind: 'issue', expirationDate: g1Expiration }, ...fillers(g1Extras, g1Start + 1000, revokedAt - 1000), { t: revokedAt, kind: 'revoke' }], 1, autoRenew);
      emit(drafts2, 2, autoRenew);
    }
    for (const e of stream) out.push(e);
  }
  out.sort((a, b) => a.t - b.t || (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : a.revision - b.revision));
  return out;
}

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
  const planned = planEvents(options.events, options.profiles, profileIdOf, pem, now);
  log(`planned ${int(planned.length)} events; appending to ${options.file}`);
  const db = openSqliteDatabase(options.file, { synchronous: 'OFF' });
  try {
    const store = new SqliteEventStore(db);
    const start = performance.now();
    for (let from = 0; from < planned.length; from += 10_000) {
      const batch: StreamAppend[] = planned.slice(from, from + 10_000).map((e) => {
        const metadata = { actor: 'bench', at: new Date(e.t).toISOString(), tool: TOOL_NAME };
        const event: NewEvent = { type: e.type, schemaVersion: CURRENT_SCHEMAS[e.type].version, data: e.data, metadata };
        return { streamId: e.streamId, expectedRevision: e.revision === 0 ? 'no_stream' : BigInt(e.revision - 1), events: [event] };
      });
      store.appendManySync(batch);
    }
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
}

function projectionDigest(db: Database.Database): string {
  const hash = createHash('sha256');
  for (const table of PROJECTION_TABLES) {
    hash.update(`\n#${table}\n`);
    for (const row of db.prepare(`SELECT * FROM ${table} ORDER BY 1`).raw(true).iterate() as IterableIterator<unknown[]>) {
      for (const cell of row) hash.update(Buffer.isBuffer(cell) ? `x${cell.toString('hex')}|` : `${typeof cell}:${String(cell)}|`);
      hash.update('\n');
    }
  }
  return hash.digest('hex');
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
    const result: RunResult = {
      mode,
      applied,
      wallMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      peakRssKb: process.resourceUsage().maxRSS,
      digest: projectionDigest(db),
      pipelined: projections.lastWholeLogPass === 'pipelined',
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    db.close();
  }
}

function runChild(options: Options, mode: Mode): RunResult & { loadBefore: string; loadAfter: string } {
  const loadBefore = load1();
  const r = spawnSync(process.execPath, [HERE, '--child', mode, '--file', options.file, '--events', String(options.events), '--profiles', String(options.profiles)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`the ${mode} run exited ${String(r.status)}`);
  return { ...(JSON.parse(r.stdout.trim().split('\n').at(-1)!) as RunResult), loadBefore, loadAfter: load1() };
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
  const rows: Array<RunResult & { loadBefore: string; loadAfter: string }> = [];
  for (let run = 0; run < options.runs; run++) {
    for (const mode of options.modes) {
      log(`run ${run + 1}/${options.runs}, ${mode}`);
      rows.push(runChild(options, mode));
    }
  }
  const header = ['mode', 'run', 'events', 'wall s', 'CPU s', 'events/s', 'peak RSS MB', 'load 1m before→after'];
  const line = (r: (typeof rows)[number], label: string): string[] => [
    r.mode + (r.mode === 'auto' ? (r.pipelined ? ' (pipelined)' : ' (single thread)') : ''),
    label,
    int(r.applied),
    (r.wallMs / 1000).toFixed(2),
    (r.cpuMs / 1000).toFixed(2),
    int(r.applied / (r.wallMs / 1000)),
    int(r.peakRssKb / 1024),
    `${r.loadBefore}→${r.loadAfter}`,
  ];
  const table: string[][] = [header];
  for (const mode of options.modes) {
    const mine = rows.filter((r) => r.mode === mode);
    mine.forEach((r, i) => table.push(line(r, String(i + 1))));
    const best = mine.reduce((a, b) => (b.wallMs < a.wallMs ? b : a));
    table.push(line(best, 'best'));
  }
  const widths = header.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  for (const row of table) console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
  const digests = new Set(rows.map((r) => r.digest));
  console.log(digests.size === 1 ? `every run gave the identical read models (sha256 ${[...digests][0]!.slice(0, 16)}…)` : `READ MODELS DIFFER between runs: ${[...digests].join(', ')}`);
  const best = Math.max(...rows.map((r) => r.applied / (r.wallMs / 1000)));
  console.log(`target: at least 50,000 events/s; best ${int(best)} events/s: ${best >= 50_000 ? 'pass' : 'fail'}`);
  if (digests.size !== 1) process.exitCode = 1;
}

await main();
