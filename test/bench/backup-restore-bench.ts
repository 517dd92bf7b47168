// Benchmark of ov_backup and ov_restore at gateway scale (the "Speed" section of the backup issue):
// a gateway holding P profiles and E events (by default 100,000 and 1,000,000) is backed up and
// restored into a fresh state directory, each command a process of the built CLI, timed from spawn
// to exit with its peak RSS. Not a test; run after building:
//
//   npm run build && node dist/test/bench/backup-restore-bench.js [--profiles 100000] [--events 1000000]
//        [--workers N] [--keep] [--reuse DIR] [--cold]
//
// Targets: ov_backup and ov_restore (validation, replay and projection rebuild included) each
// within 60 s, peak RSS of either under 1 GiB; the restored ov_user_list --json equals the source's.
// ov_restore --dry-run is measured too (same checks, nothing written).
//
// The gateway is realistic, because ov_backup refuses anything else: the real ov_init (its clock
// set 800 days back, so the history fits after it), then every profile issued with a REAL
// certificate signed by the gateway's CA (adapters/pki/certificates.ts createClientCertificate,
// in worker threads), its own serial, its own key file (0600) and .ovpn under the state layout,
// as ov_user_add writes them. To keep seeding feasible the key PAIRS come from a pool of 64; each
// profile still has its own files. Renewals (RenewalCertificateIssued + ProfileRenewed, each with
// its own certificate, key and profile), abandoned renewals, revocations, reissues, auto-renew
// toggles, resends, delivery and renewal failures make up the rest, every stream's revisions
// contiguous and every history one domain/history-check.ts accepts. Events are appended through
// SqliteEventStore.appendManySync with synchronous=OFF (seeding only), the read models caught up
// and the CRL published in-process, as the gateway would have it.
//
// --keep keeps the working directory; --reuse DIR measures again on a kept one without seeding.
// --cold (root only) empties the page cache before each measured command, as a nightly backup
// meets a gateway's keys and profiles: written once when issued, and long since out of the cache.

import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { NewEvent } from '../../adapters/eventstore/event-store.js';
import { SqliteEventStore, type StreamAppend } from '../../adapters/eventstore/sqlite-event-store.js';
import { MODE, stateLayout, type StateLayout } from '../../adapters/fs/state-layout.js';
import { renderClientProfile } from '../../adapters/openvpn/client-profile.js';
import { createClientCertificate, generateRsaKeyPair, type KeyPairPem } from '../../adapters/pki/certificates.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { CrlPublisher } from '../../adapters/pki/crl-publisher.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { TOOL_NAME } from '../../commands/version.js';
import { planDns } from '../../domain/dns.js';
import { CURRENT_SCHEMAS, type EventType } from '../../domain/events.js';
import { addDays, endOfUtcDay, utcDateOf, type CalendarDate, type Traffic } from '../../domain/values.js';
import { DEFAULT_DNS_SETTINGS } from '../../infra/config/dns-conf.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { mulberry32, SerialSource } from './seeding.js';
import { cpuTimes, stealBetween } from './cpu-steal.js';

const DAY = 86_400_000;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BIN_DIR = join(ROOT, 'dist', 'bin');
const ROUTE = '10.0.0.0/16';
const KEY_POOL = 64;
const MIB = 1024 * 1024;
const TARGET_SECONDS = 60;
const TARGET_RSS_MIB = 1024;

// ---- the signing workers (this same file, in a worker thread) -----------------------------------

interface SignerData {
  readonly caCertificatePem: string;
  readonly caPrivateKeyPem: string;
  readonly publicKeys: readonly string[];
}

interface SignJob {
  readonly serial: string;
  readonly commonName: string;
  readonly key: number;
  readonly notBefore: number;
  readonly notAfter: number;
}

if (!isMainThread) {
  const data = workerData as SignerData;
  const ca = { certificatePem: data.caCertificatePem, privateKeyPem: data.caPrivateKeyPem };
  parentPort!.on('message', (message: { id: number; jobs: SignJob[] }) => {
    const pems = message.jobs.map((j) =>
      createClientCertificate({
        ca,
        publicKeyPem: data.publicKeys[j.key]!,
        commonName: j.commonName,
        serialHex: j.serial,
        validity: { notBefore: new Date(j.notBefore), notAfter: new Date(j.notAfter) },
      }),
    );
    parentPort!.postMessage({ id: message.id, pems });
  });
}

// ---- options -----------------------------------------------------------------------------------

interface Options {
  readonly profiles: number;
  readonly events: number;
  readonly workers: number;
  readonly keep: boolean;
  readonly reuse: string | undefined;
  readonly cold: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const values: Record<string, number> = { profiles: 100_000, events: 1_000_000, workers: availableParallelism() };
  let keep = false;
  let cold = false;
  let reuse: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--keep') {
      keep = true;
      continue;
    }
    if (arg === '--cold') {
      // Refused here, not after a seeding of some twenty minutes.
      if (process.getuid?.() !== 0) throw new Error('--cold empties the page cache, which needs root');
      cold = true;
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const key = m?.[1];
    if (key === 'reuse') {
      reuse = resolve(m?.[2] ?? argv[++i] ?? '');
      continue;
    }
    if (key === undefined || !(key in values)) throw new Error(`unknown argument ${arg}`);
    const raw = m?.[2] ?? argv[++i];
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${key} needs a positive integer, got ${String(raw)}`);
    values[key] = n;
  }
  const o = { profiles: values['profiles']!, events: values['events']!, workers: values['workers']!, keep: keep || reuse !== undefined, reuse, cold };
  // The fixed part of the mix is at most about 1.4 events per profile; the rest are fillers.
  if (o.events < Math.ceil(o.profiles * 1.5) + 1) throw new Error(`--events must be at least 1.5 x --profiles + 1 (${Math.ceil(o.profiles * 1.5) + 1})`);
  return o;
}

// ---- small helpers -----------------------------------------------------------------------------


const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const sec = (ms: number): string => (ms / 1000).toFixed(1);
const log = (line: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};


// ---- running the CLI ---------------------------------------------------------------------------

interface Gateway {
  readonly stateDir: string;
  readonly configDir: string;
  readonly layout: StateLayout;
  readonly env: NodeJS.ProcessEnv;
}

function gatewayAt(base: string, now?: string): Gateway {
  const stateDir = join(base, 'state');
  const configDir = join(base, 'etc');
  const env: NodeJS.ProcessEnv = { ...process.env, OVL_STATE_DIR: stateDir, OVL_CONFIG_DIR: configDir };
  for (const key of ['OVL_NOW', 'OVL_LOG_FILE', 'OVL_LOG_LEVEL', 'OVL_EVENT_STORE']) delete env[key];
  if (now !== undefined) env['OVL_NOW'] = now;
  return { stateDir, configDir, layout: stateLayout(stateDir), env };
}

interface Run {
  readonly ms: number;
  readonly rssKb: number | undefined;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const GNU_TIME = '/usr/bin/time';
const HAVE_GNU_TIME = existsSync(GNU_TIME);
let timeFiles = 0;

/** VmHWM of a live process, in kB (the fallback without GNU time). */
function vmHwmKb(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a process to its end: wall time from spawn to exit, peak RSS (GNU time -v, else /proc polling). */
function run(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const timeFile = HAVE_GNU_TIME ? join(tmpdir(), `backup-bench-time-${process.pid}-${timeFiles++}.txt`) : undefined;
  const full = timeFile === undefined ? argv : [GNU_TIME, '-v', '-o', timeFile, ...argv];
  return new Promise((done, fail) => {
    const start = performance.now();
    const child = spawn(full[0]!, full.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let polled = 0;
    const poll =
      timeFile === undefined && child.pid !== undefined
        ? setInterval(() => {
            polled = Math.max(polled, vmHwmKb(child.pid!) ?? 0);
          }, 50)
        : undefined;
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', fail);
    child.on('close', (code) => {
      const ms = performance.now() - start;
      if (poll) clearInterval(poll);
      let rssKb: number | undefined = polled > 0 ? polled : undefined;
      if (timeFile !== undefined && existsSync(timeFile)) {
        const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(timeFile, 'utf8'));
        rmSync(timeFile, { force: true });
        if (m) rssKb = Number(m[1]);
      }
      done({ ms, rssKb, code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

const cli = (gw: Gateway, command: string, args: readonly string[] = []): Promise<Run> =>
  run([process.execPath, join(BIN_DIR, `${command}.js`), ...args], gw.env);

async function cliOk(gw: Gateway, command: string, args: readonly string[] = []): Promise<Run> {
  const r = await cli(gw, command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(r.code)}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

// ---- planning the history ------------------------------------------------------------------------

const FIRST_NAMES = ['Ada', 'Alan', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Margaret', 'Ken', 'Frances', 'Dennis', 'Radia', 'Niklaus', 'Hedy', 'Tony', 'Karen', 'Leslie', 'Sophie', 'John', 'Jean', 'Linus'];
const LAST_NAMES = ['Lovelace', 'Turing', 'Hopper', 'Dijkstra', 'Liskov', 'Knuth', 'Hamilton', 'Thompson', 'Allen', 'Ritchie', 'Perlman', 'Wirth', 'Lamarr', 'Hoare', 'Spärck Jones', 'Lamport', 'Wilson', 'Backus', 'Sammet', 'Torvalds'];
const REASONS = ['remote access for the support rotation', 'contractor: data migration project', 'on-call access to the build farm', 'access to the staging network', 'replacement laptop'];

/** A certificate to sign: who it is for, and the validity the events record. */
interface PlannedCertificate {
  readonly serial: string;
  readonly profile: number;
  readonly key: number;
  /** The instant of issue; notBefore is five minutes earlier, whole seconds (issue-client-profile.ts). */
  readonly notBefore: number;
  readonly notAfter: number;
  pem: string;
}

/** One planned event; `cert` names the certificate whose PEM goes into data.certificate when it is appended. */
interface Planned {
  readonly t: number;
  readonly stream: number;
  revision: number;
  readonly type: EventType;
  readonly data: Record<string, unknown>;
  readonly cert: number | undefined;
}

interface PlannedProfile {
  readonly email: string;
  readonly traffic: Traffic;
  readonly profileId: string;
  readonly firstName: string;
  readonly lastName: string;
}

interface Plan {
  readonly profiles: PlannedProfile[];
  readonly certificates: PlannedCertificate[];
  readonly events: Planned[];
  readonly counts: Record<string, number>;
  readonly activeProfiles: number;
}

type Step =
  | { readonly t: number; readonly kind: 'issue'; readonly generation: number; readonly expirationDate: CalendarDate; readonly cert: number; readonly autoRenew: boolean }
  | { readonly t: number; readonly kind: 'renewal-cert'; readonly expirationDate: CalendarDate; readonly cert: number }
  | { readonly t: number; readonly kind: 'renewed'; readonly cert: number; readonly expirationDate: CalendarDate }
  | { readonly t: number; readonly kind: 'renewal-failed'; readonly abandoned: number | undefined }
  | { readonly t: number; readonly kind: 'revoke' }
  | { readonly t: number; readonly kind: 'filler' };

type ActiveShape = 'plain' | 'renewed' | 'renewed-recent' | 'abandoned' | 'stuck';

/**
 * The history of every profile, then one log in time order (streams interleave). Shares:
 *   8 %  issued, used, revoked for good;
 *   6 %  revoked and issued again (generation 2), a third of those renewed;
 *  14 %  renewed once (half of them so recently that the previous certificate still connects);
 *   1 %  a renewal abandoned (its certificate signed and recorded, then RenewalFailed);
 *   1 %  a renewal failing before a certificate was signed (stuck);
 *   the rest issued once; 4 % of the plain active ones past their expiration date.
 * Resends, auto-renew toggles and delivery failures fill the streams up to the exact total.
 */
function planHistory(options: Options, existing: number, env: { now: number; profileIdOf: (email: string, traffic: Traffic) => string }): Plan {
  const rng = mulberry32(0xb4c4);
  const between = (lo: number, hi: number): number => lo + rng() * (hi - lo);
  const serials = new SerialSource();
  const { now } = env;
  const earliest = now - 790 * DAY;
  const latest = now - 60_000;
  const profiles: PlannedProfile[] = [];
  const certificates: PlannedCertificate[] = [];
  const certificate = (profile: number, t: number, expirationDate: CalendarDate): number => {
    certificates.push({
      serial: serials.next(),
      profile,
      key: certificates.length % KEY_POOL,
      notBefore: Math.floor((t - 5 * 60_000) / 1000) * 1000,
      notAfter: endOfUtcDay(expirationDate).getTime(),
      pem: '',
    });
    return certificates.length - 1;
  };
  const dateOf = (t: number): CalendarDate => utcDateOf(new Date(t));

  // First the fixed steps of every stream, then the fillers that make the total exact.
  const steps: Step[][] = [];
  const windows: Array<Array<[number, number]>> = [];
  let activeProfiles = 0;
  for (let i = 0; i < options.profiles; i++) {
    const traffic: Traffic = i % 10 === 7 || i % 10 === 9 ? 'partial' : 'all';
    const emailIndex = i % 10 === 7 ? i - 1 : i;
    const firstName = FIRST_NAMES[emailIndex % FIRST_NAMES.length]!;
    const lastName = LAST_NAMES[Math.floor(emailIndex / FIRST_NAMES.length) % LAST_NAMES.length]!;
    const email = `${firstName}.${lastName.replace(/[^A-Za-z]/g, '')}.${emailIndex}@corp${emailIndex % 7}.example.com`.toLowerCase();
    profiles.push({ email, traffic, profileId: env.profileIdOf(email, traffic), firstName, lastName });

    const s: Step[] = [];
    const w: Array<[number, number]> = [];
    const r = rng();
    const autoRenew = rng() < 0.4;
    const issue = (t: number, generation: number, expirationDate: CalendarDate, auto = autoRenew): void => {
      s.push({ t, kind: 'issue', generation, expirationDate, cert: certificate(i, t, expirationDate), autoRenew: auto });
    };
    /** A generation issued at or after `start` (at most two days ago) that stays active. */
    const activeGeneration = (start: number, generation: number, shape: ActiveShape): void => {
      activeProfiles++;
      if (shape === 'renewed' || shape === 'renewed-recent') {
        const term = Math.round(between(30, 120));
        // recent: the first certificate expires in 1–9 days and was renewed in the last day, so
        // both still connect; otherwise the first one expired some time ago.
        const issuedAt =
          shape === 'renewed-recent'
            ? endOfUtcDay(dateOf(now + between(1, 9) * DAY)).getTime() - term * DAY
            : Math.max(start, now - between(term + 10, 2 * term) * DAY);
        const firstExpiry = addDays(dateOf(issuedAt), term);
        const renewedAt =
          shape === 'renewed-recent'
            ? now - between(0.05, 1) * DAY
            : Math.min(latest - 10_000, Math.max(issuedAt + 3_600_000, endOfUtcDay(firstExpiry).getTime() - between(1, 9) * DAY));
        const finalExpiry = addDays(firstExpiry, term);
        issue(issuedAt, generation, firstExpiry, true);
        s.push({ t: renewedAt, kind: 'renewal-cert', expirationDate: finalExpiry, cert: certificate(i, renewedAt, finalExpiry) });
        s.push({ t: renewedAt + 4000, kind: 'renewed', cert: certificates.length - 1, expirationDate: finalExpiry });
        w.push([issuedAt + 1000, latest]);
        return;
      }
      const issuedAt = Math.min(now - 2 * DAY, Math.max(start, now - between(2, 700) * DAY));
      const expired = shape === 'plain' && rng() < 0.04;
      const expiry = expired ? dateOf(between(issuedAt + DAY, now - DAY)) : dateOf(now + between(2, 500) * DAY);
      issue(issuedAt, generation, expiry);
      w.push([issuedAt + 1000, latest]);
      if (shape === 'abandoned') {
        const at = now - between(0.5, 1.5) * DAY;
        const renewalExpiry = addDays(expiry, 90);
        s.push({ t: at, kind: 'renewal-cert', expirationDate: renewalExpiry, cert: certificate(i, at, renewalExpiry) });
        s.push({ t: at + 3000, kind: 'renewal-failed', abandoned: certificates.length - 1 });
      }
      if (shape === 'stuck') s.push({ t: now - between(0.1, 1) * DAY, kind: 'renewal-failed', abandoned: undefined });
    };
    /** Generation 1 issued at `start` and revoked before `end`; returns when. */
    const revokedGeneration = (start: number, end: number): number => {
      issue(start, 1, dateOf(start + between(30, 700) * DAY));
      const revokedAt = between(start + 0.3 * (end - start), end);
      s.push({ t: revokedAt, kind: 'revoke' });
      w.push([start + 1000, revokedAt - 1000]);
      return revokedAt;
    };

    if (r < 0.08) {
      const start = now - between(60, 780) * DAY;
      revokedGeneration(start, Math.min(latest, start + between(20, 400) * DAY));
    } else if (r < 0.14) {
      const start = now - between(300, 780) * DAY;
      const revokedAt = revokedGeneration(start, start + between(20, 200) * DAY);
      activeGeneration(revokedAt + between(1, 60) * DAY, 2, rng() < 0.33 ? 'renewed' : 'plain');
    } else if (r < 0.21) activeGeneration(earliest, 1, 'renewed');
    else if (r < 0.28) activeGeneration(earliest, 1, 'renewed-recent');
    else if (r < 0.29) activeGeneration(earliest, 1, 'abandoned');
    else if (r < 0.3) activeGeneration(earliest, 1, 'stuck');
    else activeGeneration(earliest, 1, 'plain');
    steps.push(s);
    windows.push(w);
  }

  const fixed = steps.reduce((n, s) => n + s.length, 0);
  const fillerTotal = options.events - existing - fixed;
  if (fillerTotal < 0) throw new Error(`--events ${options.events} is fewer than the ${fixed + existing} events the profiles need`);
  const fillerBase = Math.floor(fillerTotal / options.profiles);
  const fillerRest = fillerTotal % options.profiles;

  const events: Planned[] = [];
  const counts: Record<string, number> = {};
  const certificateData = (c: PlannedCertificate) => ({
    serial: c.serial,
    notBefore: new Date(c.notBefore).toISOString(),
    notAfter: new Date(c.notAfter).toISOString(),
    pem: '',
  });
  for (let i = 0; i < options.profiles; i++) {
    const s = steps[i]!;
    const w = windows[i]!;
    const fillers = fillerBase + (i < fillerRest ? 1 : 0);
    for (let k = 0; k < fillers; k++) {
      const [lo, hi] = w[Math.floor(rng() * w.length)]!;
      s.push({ t: between(lo, Math.max(lo, hi)), kind: 'filler' });
    }
    s.sort((a, b) => a.t - b.t);
    const p = profiles[i]!;
    let last = -Infinity;
    let current = '';
    let autoRenew = false;
    const live: number[] = [];
    for (const step of s) {
      const t = Math.max(Math.round(step.t), last + 1);
      last = t;
      let type: EventType;
      let data: Record<string, unknown>;
      let cert: number | undefined;
      switch (step.kind) {
        case 'issue': {
          const c = certificates[step.cert]!;
          cert = step.cert;
          current = c.serial;
          live.length = 0;
          live.push(step.cert);
          autoRenew = step.autoRenew;
          type = 'ProfileIssued';
          data = {
            profileId: p.profileId,
            generation: step.generation,
            email: p.email,
            traffic: p.traffic,
            firstName: p.firstName,
            lastName: p.lastName,
            expirationDate: step.expirationDate,
            reason: REASONS[i % REASONS.length]!,
            autoRenew,
            certificate: certificateData(c),
            routes: p.traffic === 'partial' ? [ROUTE] : [],
          };
          break;
        }
        case 'renewal-cert':
          type = 'RenewalCertificateIssued';
          cert = step.cert;
          live.push(step.cert);
          data = { expirationDate: step.expirationDate, certificate: certificateData(certificates[step.cert]!) };
          break;
        case 'renewed': {
          const c = certificates[step.cert]!;
          type = 'ProfileRenewed';
          cert = step.cert;
          data = { previousSerial: current, expirationDate: step.expirationDate, certificate: certificateData(c) };
          current = c.serial;
          break;
        }
        case 'renewal-failed':
          type = 'RenewalFailed';
          data = {
            reason: 'the mail server refused the message',
            lastLogLine: '{"level":50,"msg":"SMTP 554 5.7.1 message rejected"}',
            ...(step.abandoned === undefined ? {} : { abandonedSerial: certificates[step.abandoned]!.serial }),
          };
          break;
        case 'revoke': {
          type = 'ProfileRevoked';
          // As decide() does: every certificate of the generation that has not expired yet.
          const serials = live.filter((c) => certificates[c]!.notAfter >= t).map((c) => certificates[c]!.serial);
          data = { serials: serials.length > 0 ? serials : [current], reason: 'left the company', crlReason: rng() < 0.9 ? 'cessationOfOperation' : 'keyCompromise' };
          break;
        }
        case 'filler': {
          const x = rng();
          if (x < 0.6) {
            type = 'ProfileResent';
            data = { serial: current, via: rng() < 0.8 ? 'smtp' : 'outbox' };
          } else if (x < 0.97) {
            type = autoRenew ? 'AutoRenewDisabled' : 'AutoRenewEnabled';
            autoRenew = !autoRenew;
            data = {};
          } else {
            type = 'ProfileDeliveryFailed';
            data = { serial: current, delivery: 'resent', error: 'connect ETIMEDOUT 10.0.0.25:587' };
          }
          break;
        }
      }
      counts[type] = (counts[type] ?? 0) + 1;
      events.push({ t, stream: i, revision: 0, type, data, cert });
    }
  }
  // One log in time order; within a stream, time order is revision order.
  events.sort((a, b) => a.t - b.t || a.stream - b.stream);
  const revisions = new Int32Array(options.profiles);
  for (const e of events) e.revision = revisions[e.stream]!++;
  return { profiles, certificates, events, counts, activeProfiles };
}

// ---- seeding -------------------------------------------------------------------------------------

async function signAll(certificates: PlannedCertificate[], profiles: readonly PlannedProfile[], data: SignerData, workers: number): Promise<void> {
  const pool = Array.from({ length: workers }, () => new Worker(fileURLToPath(import.meta.url), { workerData: data }));
  try {
    const chunk = 256;
    let next = 0;
    let done = 0;
    let lastLog = performance.now();
    await Promise.all(
      pool.map(
        (worker) =>
          new Promise<void>((finish, fail) => {
            let id = 0;
            let from = 0;
            const send = () => {
              if (next >= certificates.length) return finish();
              from = next;
              next = Math.min(certificates.length, next + chunk);
              const jobs: SignJob[] = certificates.slice(from, next).map((c) => ({
                serial: c.serial,
                commonName: profiles[c.profile]!.profileId,
                key: c.key,
                notBefore: c.notBefore,
                notAfter: c.notAfter,
              }));
              worker.postMessage({ id: ++id, jobs });
            };
            worker.on('message', (m: { id: number; pems: string[] }) => {
              m.pems.forEach((pem, k) => (certificates[from + k]!.pem = pem));
              done += m.pems.length;
              if (performance.now() - lastLog > 30_000) {
                lastLog = performance.now();
                log(`  signed ${int(done)} of ${int(certificates.length)} certificates`);
              }
              send();
            });
            worker.on('error', fail);
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
}

interface SeedFacts {
  readonly profiles: number;
  readonly events: number;
  readonly certificates: number;
  readonly activeProfiles: number;
  readonly counts: Record<string, number>;
  readonly crlEntries: number;
  readonly seconds: { readonly init: number; readonly keys: number; readonly sign: number; readonly files: number; readonly append: number; readonly catchUp: number };
}

async function seedGateway(work: string, options: Options): Promise<SeedFacts> {
  const now = Date.now();
  const t0 = performance.now();
  // ov_init 800 days ago, so the whole history lies after it; a server certificate that lasts.
  const gw = gatewayAt(join(work, 'source'), new Date(now - 800 * DAY).toISOString());
  mkdirSync(gw.configDir, { recursive: true });
  writeFileSync(join(gw.configDir, 'gateway.conf'), `ROUTES="${ROUTE}"\nSERVER_CERT_DAYS=1825\n`, { mode: 0o644 });
  await cliOk(gw, 'ov_init', ['--public-host', 'vpn.bench.example.com', '--route', ROUTE]);
  writeFileSync(join(gw.configDir, 'email.conf'), `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME="Backup bench"\nDELIVERY=outbox\nOUTBOX_DIR=${join(work, 'outbox')}\n`, {
    mode: 0o600,
  });
  const init = performance.now() - t0;

  const { layout } = gw;
  const profileIdKey = Buffer.from(readFileSync(layout.profileIdKey, 'utf8').trim(), 'hex');
  // The same keyed hash as infra/composition-root.ts profileIdOf.
  const profileIdOf = (email: string, traffic: Traffic): string =>
    `p${createHmac('sha256', profileIdKey).update(`${email}\n${traffic}`).digest('hex').slice(0, 24)}`;

  const db = openSqliteDatabase(layout.database, { synchronous: 'OFF' });
  try {
    const store = new SqliteEventStore(db);
    const existing = store.readAllSync({ after: 0n, limit: 1000 });
    const initialized = existing.find((e) => e.type === 'GatewayInitialized');
    if (!initialized) throw new Error('ov_init recorded no GatewayInitialized');
    const gateway = initialized.data as { publicHost: string; port: number; proto: 'udp' | 'tcp'; serverCommonName: string; caCertificatePem: string };

    const t1 = performance.now();
    const keys: KeyPairPem[] = await Promise.all(Array.from({ length: KEY_POOL }, () => generateRsaKeyPair(2048)));
    const keysMs = performance.now() - t1;

    const plan = planHistory(options, existing.length, { now, profileIdOf });
    log(`planned ${int(plan.events.length)} events, ${int(plan.certificates.length)} certificates; signing them with ${options.workers} worker(s)`);

    const t2 = performance.now();
    await signAll(plan.certificates, plan.profiles, {
      caCertificatePem: gateway.caCertificatePem,
      caPrivateKeyPem: readFileSync(layout.caKey, 'utf8'),
      publicKeys: keys.map((k) => k.publicKeyPem),
    }, options.workers);
    const signMs = performance.now() - t2;
    log(`signed in ${sec(signMs)} s; writing keys and profiles`);

    // Each certificate's key file and .ovpn, as issue-client-profile.ts writes them (the bytes
    // and modes; not fsynced one by one, this is seeding).
    const t3 = performance.now();
    const tlsCrypt = readFileSync(layout.tlsCryptKey, 'utf8');
    const dns = planDns({ configuredServers: DEFAULT_DNS_SETTINGS.servers, vpcResolver: undefined, domainRoutes: DEFAULT_DNS_SETTINGS.domainRoutes });
    const madeDirs = new Set<number>();
    for (const c of plan.certificates) {
      const p = plan.profiles[c.profile]!;
      const key = keys[c.key]!;
      writeFileSync(layout.clientKey(c.serial), key.privateKeyPem, { mode: MODE.secretFile, flag: 'wx' });
      if (!madeDirs.has(c.profile)) {
        mkdirSync(layout.profileDir(p.profileId), { mode: MODE.privateDir });
        madeDirs.add(c.profile);
      }
      const profile = renderClientProfile({
        publicHost: gateway.publicHost,
        port: gateway.port,
        proto: gateway.proto,
        serverCommonName: gateway.serverCommonName,
        traffic: p.traffic,
        routes: p.traffic === 'partial' ? [ROUTE] : [],
        caCertificatePem: gateway.caCertificatePem,
        clientCertificatePem: c.pem,
        clientPrivateKeyPem: key.privateKeyPem,
        tlsCryptKey: tlsCrypt,
        dns,
      });
      writeFileSync(layout.profile(p.profileId, c.serial), profile, { mode: MODE.secretFile, flag: 'wx' });
    }
    const filesMs = performance.now() - t3;
    log(`wrote ${int(plan.certificates.length * 2)} files in ${sec(filesMs)} s; appending the events`);

    const t4 = performance.now();
    const batchSize = 10_000;
    for (let from = 0; from < plan.events.length; from += batchSize) {
      const batch: StreamAppend[] = plan.events.slice(from, from + batchSize).map((e) => {
        const p = plan.profiles[e.stream]!;
        const event: NewEvent = {
          type: e.type,
          schemaVersion: CURRENT_SCHEMAS[e.type].version,
          data:
            e.cert === undefined
              ? e.data
              : { ...e.data, certificate: { ...(e.data['certificate'] as Record<string, unknown>), pem: plan.certificates[e.cert]!.pem } },
          metadata: { actor: 'bench-operator', at: new Date(e.t).toISOString(), tool: TOOL_NAME },
        };
        return { streamId: `profile-${p.profileId}`, expectedRevision: e.revision === 0 ? 'no_stream' : BigInt(e.revision - 1), events: [event] };
      });
      store.appendManySync(batch);
      if ((from / batchSize) % 20 === 19) log(`  appended ${int(from + batch.length)} events`);
    }
    const appendMs = performance.now() - t4;
    const head = store.headPositionSync();
    if (head !== BigInt(options.events)) throw new Error(`store head is ${head}, expected ${options.events}`);

    // The read models caught up and the CRL published, as a live gateway has them.
    const t5 = performance.now();
    const projections = new SqliteProjectionStore(db, {
      encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
    });
    await projections.catchUp((after, limit) => store.readAll({ after, limit }));
    const crl = new CrlPublisher(db, projections, { crlPath: layout.crl, caCertPath: layout.caCert, caKeyPath: layout.caKey });
    const published = crl.publish({ now: new Date(), validityDays: 3650 });
    const catchUpMs = performance.now() - t5;

    return {
      profiles: options.profiles,
      events: options.events,
      certificates: plan.certificates.length,
      activeProfiles: plan.activeProfiles,
      counts: plan.counts,
      crlEntries: published.entries,
      seconds: { init: init / 1000, keys: keysMs / 1000, sign: signMs / 1000, files: filesMs / 1000, append: appendMs / 1000, catchUp: catchUpMs / 1000 },
    };
  } finally {
    db.close();
  }
}

// ---- the run -----------------------------------------------------------------------------------

interface Row {
  readonly step: string;
  readonly seconds: string;
  readonly rss: string;
  readonly target: string;
  readonly verdict: string;
}

function printTable(rows: readonly Row[]): void {
  const header: Row = { step: 'step', seconds: 'seconds', rss: 'peak RSS MiB', target: 'target', verdict: 'pass/fail' };
  const all = [header, ...rows];
  const keys = ['step', 'seconds', 'rss', 'target'] as const;
  const widths = Object.fromEntries(keys.map((k) => [k, all.reduce((w, r) => Math.max(w, r[k].length), 0)])) as Record<(typeof keys)[number], number>;
  const line = (r: Row) => `${keys.map((k) => r[k].padEnd(widths[k])).join(' | ')} | ${r.verdict}`;
  console.log(line(header));
  console.log(`${keys.map((k) => '-'.repeat(widths[k])).join('-+-')}-+-${'-'.repeat(9)}`);
  for (const r of rows) console.log(line(r));
}

/** The block both commands print, from "Summary" to the first empty line, without the archive line. */
function summaryBlock(stdout: string): string {
  const lines = stdout.split('\n');
  const start = lines.indexOf('Summary');
  if (start < 0) return `(no summary in: ${stdout.slice(0, 500)})`;
  const end = lines.indexOf('', start);
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

const loadAverage = (): string => loadavg().map((n) => n.toFixed(2)).join(' ');

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  for (const bin of ['ov_init', 'ov_backup', 'ov_restore', 'ov_user_list']) {
    if (!existsSync(join(BIN_DIR, `${bin}.js`))) throw new Error(`${join(BIN_DIR, bin)}.js is missing: run npm run build first`);
  }
  const work = options.reuse ?? mkdtempSync(join(tmpdir(), 'backup-bench-'));
  const factsFile = join(work, 'seed.json');
  const rows: Row[] = [];
  const notes: string[] = [];
  let failed = false;
  const verdict = (ok: boolean): string => {
    if (!ok) failed = true;
    return ok ? 'pass' : 'FAIL';
  };
  const mib = (r: Run): string => (r.rssKb === undefined ? 'n/a' : (r.rssKb / 1024).toFixed(0));
  const timed = (step: string, r: Run): Row => {
    const s = r.ms / 1000;
    const rssOk = r.rssKb === undefined || r.rssKb / 1024 < TARGET_RSS_MIB;
    return { step, seconds: s.toFixed(1), rss: mib(r), target: `<= ${TARGET_SECONDS} s, < ${TARGET_RSS_MIB} MiB`, verdict: verdict(r.code === 0 && s <= TARGET_SECONDS && rssOk) };
  };

  const deferredRemovals: string[] = [];
  try {
    let facts: SeedFacts;
    if (options.reuse) {
      if (!existsSync(factsFile)) throw new Error(`${factsFile} is missing: --reuse takes a directory kept by an earlier --keep run`);
      facts = JSON.parse(readFileSync(factsFile, 'utf8')) as SeedFacts;
      log(`reusing the gateway seeded in ${work} (${int(facts.profiles)} profiles, ${int(facts.events)} events)`);
    } else {
      log(`working in ${work} (${int(options.profiles)} profiles, ${int(options.events)} events; load average ${loadAverage()})`);
      const start = performance.now();
      facts = await seedGateway(work, options);
      writeFileSync(factsFile, JSON.stringify(facts, null, 2));
      log(`seeded in ${sec(performance.now() - start)} s`);
    }
    const s = facts.seconds;
    const seedTotal = s.init + s.keys + s.sign + s.files + s.append + s.catchUp;
    rows.push({ step: `seed (ov_init, ${KEY_POOL} keys, ${int(facts.certificates)} certificates signed, files, appends, catch-up + CRL)`, seconds: seedTotal.toFixed(1), rss: '-', target: '-', verdict: 'info' });
    notes.push(
      `seeded: ${int(facts.profiles)} profiles (${int(facts.activeProfiles)} active), ${int(facts.events)} events, ${int(facts.certificates)} certificates, ` +
        `${int(facts.crlEntries)} CRL entries; ${Object.entries(facts.counts).sort().map(([t, n]) => `${t} ${int(n)}`).join(', ')}`,
      `seed steps (s): ov_init ${s.init.toFixed(1)}, key pool ${s.keys.toFixed(1)}, signing ${s.sign.toFixed(1)}, files ${s.files.toFixed(1)}, ` +
        `appends ${s.append.toFixed(1)}, catch-up and CRL ${s.catchUp.toFixed(1)}`,
    );

    const source = gatewayAt(join(work, 'source'));
    const backups = join(work, 'backups');
    const target = join(work, 'restored');
    // The previous run's restored tree (192,000 files) is moved aside and deleted only after the
    // measurements: on ext4, creating files just after deleting that many costs several times as
    // much system time (the inode allocator skips recently deleted inodes), which would be the
    // deletion's cost, not the restore's.
    const trash = join(work, `trash-${process.pid}`);
    mkdirSync(trash, { recursive: true });
    for (const old of [backups, target]) if (existsSync(old)) renameSync(old, join(trash, basename(old)));
    deferredRemovals.push(trash);
    mkdirSync(backups);
    mkdirSync(target);
    const restored = gatewayAt(target);

    // Each measured command starts with nothing of the one before waiting to be written back
    // (the backup's 400 MiB archive, the dry run's reads): otherwise a command pays for the
    // previous one's writeback, which on this VM slowed the restore by up to 10 s. What is in the
    // page cache is otherwise whatever ran before, unless --cold empties it.
    const settleDisk = () => {
      spawnSync('sync', [], { stdio: 'ignore' });
      if (options.cold) writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    };
    settleDisk();
    // The share of CPU time the hypervisor gave to other guests during each measured command.
    const stolen: string[] = [];
    const watched = async <T>(label: string, command: () => Promise<T>): Promise<T> => {
      const before = cpuTimes();
      const result = await command();
      stolen.push(`${label} ${stealBetween(before, cpuTimes())}`);
      return result;
    };
    log('ov_backup');
    const backup = await watched('ov_backup', () => cli(source, 'ov_backup', ['--output-dir', backups]));
    rows.push(timed('ov_backup --output-dir', backup));
    if (backup.code !== 0) throw new Error(`ov_backup exited ${String(backup.code)}:\n${backup.stdout}\n${backup.stderr}`);
    const archives = readdirSync(backups).filter((f) => f.endsWith('.tar.gz'));
    if (archives.length !== 1) throw new Error(`expected one archive in ${backups}, found ${archives.join(', ')}`);
    const archive = join(backups, archives[0]!);
    notes.push(`archive: ${(statSync(archive).size / MIB).toFixed(1)} MiB; ${/^Backup written to .*$/m.exec(backup.stdout)?.[0] ?? ''}`);

    settleDisk();
    log('ov_restore --dry-run');
    const dry = await watched('dry run', () => cli(restored, 'ov_restore', ['--dry-run', archive]));
    rows.push(timed('ov_restore --dry-run', dry));
    if (dry.code !== 0) throw new Error(`ov_restore --dry-run exited ${String(dry.code)}:\n${dry.stdout}\n${dry.stderr}`);
    const wroteNothing = !existsSync(restored.stateDir) && !existsSync(restored.configDir);

    settleDisk();
    log('ov_restore');
    const restore = await watched('restore', () => cli(restored, 'ov_restore', [archive]));
    rows.push(timed('ov_restore (into a fresh OVL_STATE_DIR)', restore));
    notes.push(`CPU time stolen from this VM (/proc/stat): ${stolen.join(', ')}`);
    notes.push(options.cold ? 'page cache emptied before each command (--cold)' : 'page cache as the previous steps left it (--cold empties it before each command)');
    if (restore.code !== 0) throw new Error(`ov_restore exited ${String(restore.code)}:\n${restore.stdout}\n${restore.stderr}`);

    log('comparing');
    const sameSummary = summaryBlock(backup.stdout) === summaryBlock(restore.stdout) && summaryBlock(backup.stdout) === summaryBlock(dry.stdout);
    rows.push({ step: '--dry-run wrote nothing; summaries of backup, dry run and restore identical', seconds: '-', rss: '-', target: 'yes', verdict: verdict(wroteNothing && sameSummary) });
    const [listSource, listRestored] = await Promise.all([cliOk(source, 'ov_user_list', ['--json']), cliOk(restored, 'ov_user_list', ['--json'])]);
    const listed = (JSON.parse(listSource.stdout) as unknown[]).length;
    rows.push({
      step: `restored ov_user_list --json equals the source's (${int(listed)} profiles)`,
      seconds: '-',
      rss: '-',
      target: 'equal',
      verdict: verdict(listSource.stdout === listRestored.stdout && listed === facts.activeProfiles),
    });

    console.log('');
    console.log(
      `backup-restore-bench: ${int(facts.profiles)} profiles, ${int(facts.events)} events; node ${process.version}, ` +
        `${availableParallelism()} CPUs, load average ${loadAverage()}; ${new Date().toISOString()}`,
    );
    console.log('');
    printTable(rows);
    console.log('');
    if (!HAVE_GNU_TIME) notes.push('no /usr/bin/time: peak RSS polled from /proc/<pid>/status VmHWM every 50 ms');
    for (const n of notes) console.log(n);
    if (options.keep) console.log(`kept: ${work} (reuse with --reuse ${work})`);
    return failed ? 1 : 0;
  } finally {
    for (const dir of deferredRemovals) rmSync(dir, { recursive: true, force: true });
    if (!options.keep) rmSync(work, { recursive: true, force: true });
  }
}

if (isMainThread) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`backup-restore-bench: ${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 2;
    },
  );
}

