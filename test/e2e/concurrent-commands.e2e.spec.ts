// Commands run at the same time, and commands killed half-way, through the built CLI: operators
// and the daily job share one gateway, and a shell, an SSH session or the OOM killer may end a
// command at any instant. Whatever happens, the ledger must stay readable and agree with the
// files on disk, and a rule (one active profile per pair, every revocation in the CRL) must hold.
//
// One gateway for the file, mail to an outbox directory (no SMTP needed here).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCliBuilt, runCli, runCliOk, spawnCli, type CliCommand, type CliResult } from '../support/cli.js';

/** YYYY-MM-DD, `days` after today (UTC). */
function utcDatePlus(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

let root: string;
let stateDir: string;
let configDir: string;
let outboxDir: string;

const env = () => ({
  OVL_STATE_DIR: stateDir,
  OVL_CONFIG_DIR: configDir,
  OVL_NOW: undefined,
  OVL_LOG_FILE: undefined,
  OVL_LOG_LEVEL: undefined,
});

const run = (command: CliCommand, args: readonly string[]) => runCli(command, args, { env: env() });
const runOk = (command: CliCommand, args: readonly string[]) => runCliOk(command, args, { env: env() });
const start = (command: CliCommand, args: readonly string[]) => spawnCli(command, args, { env: env() });

function addArgs(email: string, traffic: 'all' | 'partial' = 'all'): string[] {
  return [
    '--first-name', 'Test',
    '--last-name', email.split('@')[0] ?? 'User',
    '--email', email,
    '--traffic', traffic,
    '--expiration-date', utcDatePlus(180),
    '--creation-reason', 'concurrency test',
  ];
}

interface Listed {
  email: string;
  traffic: string;
  serial: string;
}

async function listed(): Promise<Listed[]> {
  return JSON.parse(await runOk('ov_user_list', ['--json'])) as Listed[];
}

/** Reads the event log directly (read-only), the way an auditor's tool would. */
function withLedger<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(join(stateDir, 'ledger.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function issuedSerials(email?: string): string[] {
  return withLedger((db) =>
    (
      db
        .prepare(
          `SELECT json_extract(data, '$.certificate.serial') AS serial FROM events
           WHERE type = 'ProfileIssued' AND (? IS NULL OR json_extract(data, '$.email') = ?) ORDER BY position`,
        )
        .all(email ?? null, email ?? null) as { serial: string }[]
    ).map((r) => r.serial),
  );
}

/** Client key serials and profile files (profile id/serial) on disk, temporary files included. */
function clientFilesOnDisk(): { keys: string[]; profiles: string[] } {
  const keys = readdirSync(join(stateDir, 'keys', 'clients')).sort();
  const profilesDir = join(stateDir, 'profiles');
  const profiles = readdirSync(profilesDir)
    .flatMap((id) => readdirSync(join(profilesDir, id)).map((f) => `${id}/${f}`))
    .sort();
  return { keys, profiles };
}

function profileFileOf(serial: string): string | undefined {
  return clientFilesOnDisk().profiles.find((p) => p.endsWith(`/${serial}.ovpn`));
}

function crlSerials(): string[] {
  const text = execFileSync(
    'openssl',
    ['crl', '-in', join(stateDir, 'openvpn', 'crl.pem'), '-CAfile', join(stateDir, 'openvpn', 'ca.crt'), '-noout', '-text'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase());
}

function oneLine(res: CliResult): string {
  const lines = res.stderr.trimEnd().split('\n');
  expect(lines, res.stderr).toHaveLength(1);
  return lines[0]!;
}

beforeAll(async () => {
  assertCliBuilt();
  root = mkdtempSync(join(tmpdir(), 'ovl-concurrent-'));
  stateDir = join(root, 'state');
  configDir = join(root, 'etc');
  outboxDir = join(root, 'outbox');
  await runOk('ov_init', ['--public-host', 'vpn.example.com', '--route', '10.30.0.0/16']);
  writeFileSync(
    join(configDir, 'email.conf'),
    ['FROM_EMAIL=vpn@example.com', 'ENVIRONMENT_NAME="Race gateway"', 'DELIVERY=outbox', `OUTBOX_DIR=${outboxDir}`, ''].join('\n'),
    { mode: 0o600 },
  );
}, 120_000);

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('given an initialised gateway delivering to an outbox', () => {
  it('when 4 ov_user_add for the SAME pair start at once, then exactly one issues a profile and the others are refused with exit 3', async () => {
    const email = 'race@example.com';
    const results = await Promise.all([1, 2, 3, 4].map(() => start('ov_user_add', addArgs(email)).done));

    const winners = results.filter((r) => r.code === 0);
    const losers = results.filter((r) => r.code !== 0);
    expect(
      results.map((r) => r.code).sort(),
      results.map((r) => r.stderr).join(''),
    ).toEqual([0, 3, 3, 3]);
    expect(winners).toHaveLength(1);
    for (const loser of losers) {
      expect(loser.code).toBe(3);
      expect(loser.stdout).toBe('');
      expect(oneLine(loser)).toMatch(/race@example\.com already has an active all profile/);
    }
    const serial = /serial ([0-9a-f]+)/.exec(winners[0]!.stdout)?.[1];

    expect(issuedSerials(email)).toEqual([serial]);
    expect((await listed()).filter((u) => u.email === email).map((u) => u.serial)).toEqual([serial]);
    // The losers' keys and profiles were made, then removed: only the winner's are left.
    const files = clientFilesOnDisk();
    expect(files.keys).toEqual([`${serial}.key`]);
    expect(files.profiles).toHaveLength(1);
    expect(files.profiles[0]).toMatch(new RegExp(`^p[0-9a-f]+/${serial}\\.ovpn$`));
    expect(readdirSync(outboxDir).filter((f) => f.endsWith('.eml'))).toHaveLength(1);
    expect(readdirSync(outboxDir).filter((f) => f.startsWith('.'))).toEqual([]);
  }, 120_000);

  it('when two ov_user_delete for two users and one ov_user_add run at once, then all succeed and the CRL holds BOTH revoked serials', async () => {
    const [u1, u2] = await Promise.all(['one@example.com', 'two@example.com'].map((e) => runOk('ov_user_add', addArgs(e, 'partial'))));
    const serial1 = /serial ([0-9a-f]+)/.exec(u1!)?.[1];
    const serial2 = /serial ([0-9a-f]+)/.exec(u2!)?.[1];
    expect(serial1 && serial2).toBeTruthy();
    expect(crlSerials()).toEqual([]);

    const results = await Promise.all([
      start('ov_user_delete', ['--email', 'one@example.com', '--traffic', 'partial']).done,
      start('ov_user_delete', ['--email', 'two@example.com', '--traffic', 'partial']).done,
      start('ov_user_add', addArgs('three@example.com', 'partial')).done,
    ]);

    expect(
      results.map((r) => r.code),
      results.map((r) => r.stderr).join(''),
    ).toEqual([0, 0, 0]);
    expect(crlSerials().sort()).toEqual([serial1, serial2].sort());
    const users = (await listed()).map((u) => u.email);
    expect(users).toContain('three@example.com');
    expect(users).not.toContain('one@example.com');
    expect(users).not.toContain('two@example.com');
  }, 120_000);

  it('when ov_user_add is killed with SIGKILL at random moments, then the store stays readable, listed users have their profiles, and the next add succeeds or is refused with exit 3', async () => {
    const email = 'killed@example.com';
    const entries = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).length : 0);
    const keysDir = join(stateDir, 'keys', 'clients');
    const profilesDir = join(stateDir, 'profiles');
    // Moments to kill at: random instants over the command's life, and the instants its first
    // key file, profile file or outbox file appears (the edges around the append).
    let lastAddMs = 1200;
    const triggers: { name: string; arm: () => () => boolean }[] = [
      ...[1, 2, 3].map(() => ({
        name: 'timer',
        arm: () => {
          const at = Date.now() + Math.round(Math.random() * lastAddMs);
          return () => Date.now() >= at;
        },
      })),
      ...(
        [
          ['key file', keysDir],
          ['profile file', profilesDir],
          ['outbox file', outboxDir],
        ] as const
      ).map(([name, dir]) => ({
        name,
        arm: () => {
          const before = entries(dir);
          return () => entries(dir) > before;
        },
      })),
    ];
    const outcomes: string[] = [];
    let killedMidway = 0;

    for (const [round, trigger] of triggers.entries()) {
      const fire = trigger.arm();
      const started = Date.now();
      const { child, done } = start('ov_user_add', addArgs(email));
      while (child.exitCode === null && child.signalCode === null && !fire() && Date.now() - started < 30_000) await sleep(1);
      child.kill('SIGKILL');
      const killed = await done;
      const killedAfter = Date.now() - started;
      if (killed.signal === 'SIGKILL') killedMidway++;
      else expect(killed.code, killed.stderr).toBe(0);

      const users = await listed();
      for (const u of users) {
        const profile = profileFileOf(u.serial);
        expect(profile, `${u.email} ${u.traffic} serial ${u.serial} has no profile file`).toBeDefined();
        expect(existsSync(join(stateDir, 'keys', 'clients', `${u.serial}.key`))).toBe(true);
      }
      const wasActive = users.some((u) => u.email === email);

      const nextStarted = Date.now();
      const next = await run('ov_user_add', addArgs(email));
      expect([0, 3], `round ${round}: ${next.stderr}`).toContain(next.code);
      if (next.code === 0) lastAddMs = Date.now() - nextStarted;
      if (next.code === 3) expect(oneLine(next)).toMatch(/killed@example\.com already has an active all profile/);
      expect(next.code === 3).toBe(wasActive);
      const after = (await listed()).filter((u) => u.email === email);
      expect(after).toHaveLength(1);
      expect(profileFileOf(after[0]!.serial)).toBeDefined();
      outcomes.push(`${trigger.name} ${killedAfter}ms: ${killed.signal ?? `exit ${killed.code}`}${wasActive ? ', issued' : ', not issued'}`);

      await runOk('ov_user_delete', ['--email', email, '--traffic', 'all']);
    }

    const integrity = withLedger((db) => db.pragma('integrity_check', { simple: true }));
    expect(integrity).toBe('ok');
    expect((await listed()).filter((u) => u.email === email)).toEqual([]);
    // Every serial the log issued to this pair has its key and profile on disk.
    for (const serial of issuedSerials(email)) {
      expect(profileFileOf(serial), serial).toBeDefined();
      expect(existsSync(join(stateDir, 'keys', 'clients', `${serial}.key`)), serial).toBe(true);
    }
    expect(killedMidway).toBeGreaterThan(0);
    const referenced = new Set(issuedSerials());
    const orphans = clientFilesOnDisk().keys.filter((k) => !referenced.has(k.replace(/\.key$/, '')));
    console.info(`SIGKILL rounds: ${outcomes.join('; ')}. Unreferenced client key files left: ${orphans.length}`);
  }, 240_000);
});
