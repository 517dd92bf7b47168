// ov_user_audit through the built CLI: a gateway with users in both traffic modes, renewals by the
// daily job, one renewal that fails (SMTP on a closed loopback port), a delete; the clock moved
// with OVL_NOW. Then every lens, in text and --json, is checked against what was done, --as-of
// against past moments, bad flag combinations against exit 2, and every audit run against a
// snapshot of every file: the audit changes nothing, not a byte, not an mtime.
//
// One gateway for the file (ov_init makes a 3072-bit CA key), set up once in beforeAll.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCliBuilt, cliBinPath, runCli, snapshotTree, type CliCommand, type CliResult, type FileFacts } from '../support/cli.js';

// The support module's command list predates these two commands; the binaries exist once built.
const AUDIT = 'ov_user_audit' as CliCommand;
const RENEW_DUE = 'ov_user_renew_due' as CliCommand;

const T = {
  init: '2030-03-01T08:00:00Z',
  add: '2030-03-02T10:00:00Z',
  lateAdd: '2030-03-09T10:00:00Z',
  resend: '2030-03-09T11:00:00Z',
  toggle: '2030-03-09T12:00:00Z',
  renewRun: '2030-03-10T06:00:00Z',
  failedRun: '2030-03-16T06:00:00Z',
  delete: '2030-03-18T12:00:00Z',
  /** When the audits run: today is 2030-03-20. */
  audit: '2030-03-20T12:00:00Z',
} as const;

const CRL_VALIDITY_DAYS = 3650;
const DAY_MS = 86_400_000;

let root: string;
let stateDir: string;
let configDir: string;
let outboxDir: string;
let outboxConf: string;

interface ListedUser {
  email: string;
  traffic: string;
  serial: string;
  expirationDate: string;
}
interface RenewedOutcome {
  email: string;
  traffic: string;
  previousSerial: string;
  serial: string;
  expirationDate: string;
}
/** Facts gathered while setting up, to check the lenses against. */
const done = {
  serialsBefore: new Map<string, string>(),
  renewed: [] as RenewedOutcome[],
  failedRun: undefined as CliResult | undefined,
  listAfter: [] as ListedUser[],
};
const key = (email: string, traffic: string) => `${email}/${traffic}`;

const env = (now: string, actor: string, extra: Record<string, string | undefined> = {}) => ({
  // Every OVL_* variable set or removed explicitly: nothing leaks in from the developer's shell.
  OVL_STATE_DIR: stateDir,
  OVL_CONFIG_DIR: configDir,
  OVL_NOW: now,
  OVL_LOG_FILE: undefined,
  OVL_LOG_LEVEL: undefined,
  SUDO_USER: actor,
  ...extra,
});

async function ok(command: CliCommand, args: readonly string[], now: string, actor = 'anna'): Promise<string> {
  const res = await runCli(command, args, { env: env(now, actor) });
  expect(res.code, `${command} ${args.join(' ')}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`).toBe(0);
  return res.stdout;
}

function snapshotAll(): Map<string, FileFacts> {
  const all = new Map<string, FileFacts>();
  for (const [name, dir] of [
    ['state', stateDir],
    ['config', configDir],
    ['outbox', outboxDir],
  ] as const) {
    for (const [path, facts] of snapshotTree(dir)) all.set(`${name}/${path}`, facts);
  }
  return all;
}

/** Runs ov_user_audit and checks that not one file changed. */
async function audit(args: readonly string[], now: string = T.audit): Promise<CliResult> {
  const before = snapshotAll();
  const res = await runCli(AUDIT, args, { env: env(now, 'auditor') });
  expect(snapshotAll(), `ov_user_audit ${args.join(' ')} changed a file`).toEqual(before);
  return res;
}

async function auditText(args: readonly string[], now: string = T.audit): Promise<string> {
  const res = await audit(args, now);
  expect({ code: res.code, stderr: res.stderr }, `ov_user_audit ${args.join(' ')}\n${res.stdout}`).toEqual({ code: 0, stderr: '' });
  return res.stdout;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON, checked field by field
async function auditJson(args: readonly string[], now: string = T.audit): Promise<any> {
  return JSON.parse(await auditText([...args, '--json'], now));
}

function addArgs(first: string, last: string, email: string, traffic: string, expires: string, autoRenew: 'yes' | 'no'): string[] {
  return [
    '--first-name', first,
    '--last-name', last,
    '--email', email,
    '--traffic', traffic,
    '--expiration-date', expires,
    '--creation-reason', 'staff access',
    '--auto-renew', autoRenew,
  ];
}

async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function listJson(now: string): Promise<ListedUser[]> {
  return JSON.parse(await ok('ov_user_list', ['--json'], now)) as ListedUser[];
}

beforeAll(async () => {
  assertCliBuilt();
  for (const c of [AUDIT, RENEW_DUE]) {
    if (!existsSync(cliBinPath(c))) throw new Error(`${cliBinPath(c)} does not exist: run npm run build first`);
  }
  root = mkdtempSync(join(tmpdir(), 'ovl-audit-'));
  stateDir = join(root, 'state');
  configDir = join(root, 'etc');
  outboxDir = join(root, 'outbox');

  await ok('ov_init', ['--public-host', 'vpn.example.com', '--route', '10.20.0.0/16'], T.init, 'root');
  outboxConf = ['FROM_EMAIL=vpn@example.com', 'ENVIRONMENT_NAME="Audit gateway"', 'DELIVERY=outbox', `OUTBOX_DIR=${outboxDir}`, ''].join('\n');
  writeFileSync(join(configDir, 'email.conf'), outboxConf, { mode: 0o600 });

  await ok('ov_user_add', addArgs('Alice', 'Archer', 'alice@example.com', 'all', '2030-03-20', 'yes'), T.add);
  await ok('ov_user_add', addArgs('Alice', 'Archer', 'alice@example.com', 'partial', '2030-06-30', 'no'), T.add);
  await ok('ov_user_add', addArgs('Bob', 'Baker', 'bob@example.com', 'all', '2030-03-18', 'yes'), T.add);
  await ok('ov_user_add', addArgs('Carol', 'Cook', 'carol@example.com', 'partial', '2030-03-25', 'yes'), T.add);
  await ok('ov_user_add', addArgs('Dave', 'Diver', 'dave@example.com', 'all', '2030-03-15', 'no'), T.add);
  await ok('ov_user_add', addArgs('Erin', 'Easton', 'erin@example.com', 'partial', '2030-03-30', 'no'), T.lateAdd);
  await ok('ov_user_resend', ['--email', 'alice@example.com', '--traffic', 'all'], T.resend);
  await ok('ov_user_auto_renew', ['--email', 'alice@example.com', '--traffic', 'partial', '--enable'], T.toggle);
  for (const u of await listJson(T.toggle)) done.serialsBefore.set(key(u.email, u.traffic), u.serial);

  // The daily job inside the 10-day window: alice/all (20 March) and bob/all (18 March) are due.
  const run = JSON.parse(await ok(RENEW_DUE, ['--json'], T.renewRun, 'cron')) as { renewed: RenewedOutcome[]; failed: unknown[] };
  expect(run.failed).toEqual([]);
  done.renewed = run.renewed;

  // Six days later carol/partial (25 March) is due, and the mail cannot go out.
  const port = await closedLoopbackPort();
  writeFileSync(
    join(configDir, 'email.conf'),
    ['FROM_EMAIL=vpn@example.com', 'ENVIRONMENT_NAME="Audit gateway"', 'SMTP_HOST=127.0.0.1', `SMTP_PORT=${port}`, 'SMTP_SECURE=none', ''].join('\n'),
    { mode: 0o600 },
  );
  done.failedRun = await runCli(RENEW_DUE, ['--json'], { env: env(T.failedRun, 'cron') });
  writeFileSync(join(configDir, 'email.conf'), outboxConf, { mode: 0o600 });

  await ok('ov_user_delete', ['--email', 'bob@example.com', '--traffic', 'all', '--reason', 'left the company'], T.delete, 'ben');
  // The last writer before the audits: it caught the read models up, so nothing is pending.
  done.listAfter = await listJson(T.delete);
}, 240_000);

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('given the scenario (the setup itself)', () => {
  it('renewed alice/all and bob/all, and the failed run exited 4 naming carol', () => {
    expect(done.renewed.map((r) => key(r.email, r.traffic)).sort()).toEqual(['alice@example.com/all', 'bob@example.com/all']);
    expect(done.failedRun?.code, done.failedRun?.stderr).toBe(4);
    // The job's report (here --json) goes to stdout; stderr holds the one line saying it failed.
    expect(done.failedRun?.stdout).toContain('carol@example.com');
    expect(done.failedRun?.stderr).toBe('ov_user_renew_due: 1 renewal(s) failed; see ov_user_audit --stuck\n');
  });
});

describe('--summary', () => {
  it('prints one line of counts and the CRL, nothing else, and the JSON carries the same facts', async () => {
    const text = await auditText(['--summary']);
    const nextUpdate = new Date(Date.parse(T.delete) + CRL_VALIDITY_DAYS * DAY_MS);
    const daysLeft = Math.floor((nextUpdate.getTime() - Date.parse(T.audit)) / DAY_MS);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('active 5, expiring 2 (within 10 days of 2030-03-20), revoked 1, renewed 2 profiles (2 renewals), stuck 1');
    expect(lines[1]).toMatch(new RegExp(`^CRL #\\d+: 2 entries, next update ${nextUpdate.toISOString().replace('.000Z', 'Z')} \\(in ${daysLeft} days\\)$`));
    expect(lines).toHaveLength(2);

    const json = await auditJson(['--summary']);
    expect(json).toMatchObject({
      lens: 'summary',
      asOf: null,
      today: '2030-03-20',
      windowDays: 10,
      active: 5,
      expiring: 2,
      revoked: 1,
      renewedProfiles: 2,
      renewals: 2,
      stuck: 1,
      crlEntries: 2,
      crl: { nextUpdate: nextUpdate.toISOString(), daysLeft },
      warnings: [],
    });
  });

  it('takes --days for the expiring count', async () => {
    expect((await auditJson(['--summary', '--days', '5'])).expiring).toBe(1);
  });

  it("warns when the CRL's next update is less than 14 days away, and when it has passed", async () => {
    const nextUpdate = Date.parse(T.delete) + CRL_VALIDITY_DAYS * DAY_MS;
    const soon = new Date(nextUpdate - 5 * DAY_MS).toISOString();
    const text = await auditText(['--summary'], soon);
    expect(text.trimEnd().split('\n')).toHaveLength(3);
    expect(text).toMatch(/^WARNING: the CRL's next update .* is less than 14 days away/m);
    expect((await auditJson(['--summary'], soon)).warnings).toHaveLength(1);

    const after = new Date(nextUpdate + DAY_MS).toISOString();
    expect(await auditText(['--summary'], after)).toMatch(/^WARNING: the CRL's next update .* has passed: OpenVPN refuses every client/m);
    expect((await auditJson(['--summary'], new Date(nextUpdate - 15 * DAY_MS).toISOString())).warnings).toEqual([]);
  });
});

describe('--expiring', () => {
  it('lists the active profiles expiring from today to today + 10 days inclusive, not the expired one, not the revoked one', async () => {
    const json = await auditJson(['--expiring']);
    expect(json).toMatchObject({ lens: 'expiring', today: '2030-03-20', windowDays: 10, to: '2030-03-30' });
    expect(json.profiles).toEqual([
      {
        email: 'carol@example.com',
        traffic: 'partial',
        firstName: 'Carol',
        lastName: 'Cook',
        expirationDate: '2030-03-25',
        daysLeft: 5,
        autoRenew: true,
        serial: done.serialsBefore.get('carol@example.com/partial'),
        renewals: 0,
      },
      {
        email: 'erin@example.com',
        traffic: 'partial',
        firstName: 'Erin',
        lastName: 'Easton',
        expirationDate: '2030-03-30',
        daysLeft: 10,
        autoRenew: false,
        serial: done.serialsBefore.get('erin@example.com/partial'),
        renewals: 0,
      },
    ]);
    const text = await auditText(['--expiring']);
    expect(text).toMatch(/^Active profiles expiring from 2030-03-20 to 2030-03-30 \(10 days\): 2$/m);
    expect(text).toMatch(/^carol@example\.com\s+partial\s+Carol Cook\s+2030-03-25\s+5\s+yes$/m);
    expect(text).toMatch(/^erin@example\.com\s+partial\s+Erin Easton\s+2030-03-30\s+10\s+no$/m);
    expect(text).not.toContain('dave@example.com');
  });

  it('takes --days: 4 days reach nothing, 5 reach carol', async () => {
    expect(await auditText(['--expiring', '--days', '4'])).toBe('No active profile expires from 2030-03-20 to 2030-03-24.\n');
    expect((await auditJson(['--expiring', '--days', '5'])).profiles.map((p: ListedUser) => p.email)).toEqual(['carol@example.com']);
  });
});

describe('--renewed', () => {
  it('lists each renewal with the pair, time, serials, new expiration and actor, as the job reported them', async () => {
    const json = await auditJson(['--renewed']);
    expect(json).toMatchObject({ lens: 'renewed', since: null, until: null });
    const expected = done.renewed.map((r) => ({
      email: r.email,
      traffic: r.traffic,
      at: '2030-03-10T06:00:00.000Z',
      actor: 'cron',
      previousSerial: r.previousSerial,
      serial: r.serial,
      expirationDate: r.expirationDate,
    }));
    expect(json.renewals).toEqual(expect.arrayContaining(expected));
    expect(json.renewals).toHaveLength(2);
    for (const r of done.renewed) expect(r.previousSerial).toBe(done.serialsBefore.get(key(r.email, r.traffic)));

    const text = await auditText(['--renewed']);
    expect(text).toMatch(/^Renewals: 2$/m);
    for (const r of done.renewed) {
      expect(text).toMatch(new RegExp(`^2030-03-10T06:00:00Z\\s+${r.email.replace('.', '\\.')}\\s+${r.traffic}\\s+${r.previousSerial}\\s+${r.serial}\\s+${r.expirationDate}\\s+cron$`, 'm'));
    }
  });

  it('honours --since and --until as inclusive UTC dates', async () => {
    expect((await auditJson(['--renewed', '--since', '2030-03-10', '--until', '2030-03-10'])).renewals).toHaveLength(2);
    expect((await auditJson(['--renewed', '--since', '2030-03-11'])).renewals).toEqual([]);
    expect((await auditJson(['--renewed', '--until', '2030-03-09'])).renewals).toEqual([]);
    expect(await auditText(['--renewed', '--since', '2030-03-11'])).toBe('No renewals since 2030-03-11.\n');
  });
});

describe('--revoked', () => {
  it("lists bob's delete with both of his certificates (the renewed one and the one still valid), the reasons and the actor", async () => {
    const bob = done.renewed.find((r) => r.email === 'bob@example.com');
    const json = await auditJson(['--revoked']);
    expect(json.revocations).toEqual([
      {
        email: 'bob@example.com',
        traffic: 'all',
        at: '2030-03-18T12:00:00.000Z',
        actor: 'ben',
        serials: [bob?.previousSerial, bob?.serial],
        reason: 'left the company',
        crlReason: 'cessationOfOperation',
      },
    ]);
    const text = await auditText(['--revoked']);
    expect(text).toMatch(/^Revocations: 1$/m);
    expect(text).toMatch(new RegExp(`^2030-03-18T12:00:00Z\\s+bob@example\\.com\\s+all\\s+cessationOfOperation\\s+ben\\s+${bob?.previousSerial},${bob?.serial}\\s+left the company$`, 'm'));
  });

  it('honours --since', async () => {
    expect((await auditJson(['--revoked', '--since', '2030-03-18'])).revocations).toHaveLength(1);
    expect(await auditText(['--revoked', '--since', '2030-03-19'])).toBe('No revocations since 2030-03-19.\n');
  });
});

describe('--history', () => {
  it("gives both of alice's profiles, every event in log order, with who did it (the email in any case)", async () => {
    const json = await auditJson(['--history', '--email', 'Alice@Example.COM']);
    expect(json).toMatchObject({ lens: 'history', email: 'alice@example.com', traffic: ['all', 'partial'] });
    expect(json.events.map((e: { type: string; traffic: string; at: string; actor: string }) => [e.type, e.traffic, e.at, e.actor])).toEqual([
      ['ProfileIssued', 'all', '2030-03-02T10:00:00.000Z', 'anna'],
      ['ProfileIssued', 'partial', '2030-03-02T10:00:00.000Z', 'anna'],
      ['ProfileResent', 'all', '2030-03-09T11:00:00.000Z', 'anna'],
      ['AutoRenewEnabled', 'partial', '2030-03-09T12:00:00.000Z', 'anna'],
      ['RenewalCertificateIssued', 'all', '2030-03-10T06:00:00.000Z', 'cron'],
      ['ProfileRenewed', 'all', '2030-03-10T06:00:00.000Z', 'cron'],
    ]);
    const alice = done.renewed.find((r) => r.email === 'alice@example.com');
    expect(json.events[0]).toMatchObject({
      email: 'alice@example.com',
      data: { generation: 1, expirationDate: '2030-03-20', autoRenew: true, serial: alice?.previousSerial, reason: 'staff access' },
    });
    expect(json.events[0].data).not.toHaveProperty('pem');
    expect(json.events[0].data).not.toHaveProperty('certificate');
    expect(json.events[5].data).toMatchObject({ previousSerial: alice?.previousSerial, serial: alice?.serial, expirationDate: alice?.expirationDate });

    const text = await auditText(['--history', '--email', 'alice@example.com']);
    expect(text).toMatch(/^History of alice@example\.com \(all, partial\): 6 events$/m);
    expect(text).toMatch(new RegExp(`^2030-03-10T06:00:00Z\\s+all\\s+cron\\s+renewed: serial ${alice?.previousSerial} → ${alice?.serial}, expires ${alice?.expirationDate}$`, 'm'));
    expect(text).toMatch(/^2030-03-09T12:00:00Z\s+partial\s+anna\s+auto-renew enabled$/m);
  });

  it('narrows to one traffic mode with --traffic', async () => {
    const json = await auditJson(['--history', '--email', 'alice@example.com', '--traffic', 'partial']);
    expect(json.events.map((e: { type: string }) => e.type)).toEqual(['ProfileIssued', 'AutoRenewEnabled']);
  });

  it("shows bob's renewal and revocation, and carol's failed renewal with its reason", async () => {
    const bob = await auditJson(['--history', '--email', 'bob@example.com']);
    expect(bob.events.map((e: { type: string }) => e.type)).toEqual(['ProfileIssued', 'RenewalCertificateIssued', 'ProfileRenewed', 'ProfileRevoked']);
    expect(bob.events[3]).toMatchObject({ actor: 'ben', traffic: 'all', data: { reason: 'left the company', crlReason: 'cessationOfOperation' } });

    const carol = await auditJson(['--history', '--email', 'carol@example.com', '--traffic', 'partial']);
    const types = carol.events.map((e: { type: string }) => e.type);
    expect(types[0]).toBe('ProfileIssued');
    expect(types.at(-1)).toBe('RenewalFailed');
    expect(carol.events.at(-1)).toMatchObject({ at: '2030-03-16T06:00:00.000Z', actor: 'cron' });
    expect(carol.events.at(-1).data.reason).not.toBe('');
  });

  it('says so when the address has no profile', async () => {
    expect(await auditText(['--history', '--email', 'nobody@example.com'])).toBe('No events for nobody@example.com (all, partial).\n');
  });
});

describe('--stuck', () => {
  it("lists carol with the failure's time, reason and last log line", async () => {
    const json = await auditJson(['--stuck']);
    expect(json.profiles).toHaveLength(1);
    expect(json.profiles[0]).toMatchObject({
      email: 'carol@example.com',
      traffic: 'partial',
      expirationDate: '2030-03-25',
      autoRenew: true,
      serial: done.serialsBefore.get('carol@example.com/partial'),
      failedAt: '2030-03-16T06:00:00.000Z',
    });
    // The same failure the job reported and the log recorded.
    const carol = await auditJson(['--history', '--email', 'carol@example.com', '--traffic', 'partial']);
    expect(json.profiles[0].reason).toBe(carol.events.at(-1).data.reason);
    expect(json.profiles[0].lastLogLine).toBe(carol.events.at(-1).data.lastLogLine);
    expect(done.failedRun?.stdout).toContain(JSON.stringify(json.profiles[0].reason).slice(1, -1));
    expect(json.profiles[0].lastLogLine).toMatch(/ov_user_renew_due: renewal of partial profile p[0-9a-f]{24} failed/);

    const text = await auditText(['--stuck']);
    expect(text).toMatch(/^Stuck profiles \(last renewal attempt failed, not renewed since\): 1$/m);
    expect(text).toMatch(/^carol@example\.com \(partial\), expires 2030-03-25, auto-renew on: renewal failed at 2030-03-16T06:00:00Z: /m);
    expect(text).toMatch(/^ {2}last log line: .*ov_user_renew_due: renewal of partial profile/m);
  });
});

describe('--as-of', () => {
  const beforeDelete = '2030-03-18T11:00:00Z';
  const beforeLateAdd = '2030-03-05T00:00:00Z';

  it('before the delete: bob is still active, nothing is revoked, and today is the date of the instant', async () => {
    const summary = await auditJson(['--summary', '--as-of', beforeDelete]);
    expect(summary).toMatchObject({
      asOf: '2030-03-18T11:00:00.000Z',
      today: '2030-03-18',
      active: 6,
      revoked: 0,
      renewals: 2,
      stuck: 1,
      crlEntries: 0,
      crl: null,
      // [18 March, 28 March]: carol only (bob was renewed to April, dave expired on the 15th).
      expiring: 1,
    });
    expect((await auditJson(['--revoked', '--as-of', beforeDelete])).revocations).toEqual([]);
    const everyone = await auditJson(['--expiring', '--days', '365', '--as-of', beforeDelete]);
    expect(everyone.profiles.map((p: ListedUser) => key(p.email, p.traffic))).toContain('bob@example.com/all');
    const history = await auditJson(['--history', '--email', 'bob@example.com', '--as-of', beforeDelete]);
    expect(history.events.map((e: { type: string }) => e.type)).toEqual(['ProfileIssued', 'RenewalCertificateIssued', 'ProfileRenewed']);

    const text = await auditText(['--summary', '--as-of', beforeDelete]);
    expect(text.split('\n')[0]).toBe('As of 2030-03-18T11:00:00Z (the events up to that instant):');
    expect(text.split('\n')[1]).toBe('active 6, expiring 1 (within 10 days of 2030-03-18), revoked 0, renewed 2 profiles (2 renewals), stuck 1');
  });

  it('before erin was added: she is not there, and no renewal or failure had happened yet', async () => {
    const summary = await auditJson(['--summary', '--as-of', beforeLateAdd]);
    expect(summary).toMatchObject({ active: 5, revoked: 0, renewals: 0, renewedProfiles: 0, stuck: 0 });
    const everyone = await auditJson(['--expiring', '--days', '365', '--as-of', beforeLateAdd]);
    expect(everyone.profiles.map((p: ListedUser) => p.email)).not.toContain('erin@example.com');
    expect(everyone.profiles).toHaveLength(5);
    expect(await auditText(['--history', '--email', 'erin@example.com', '--as-of', beforeLateAdd])).toBe(
      'As of 2030-03-05T00:00:00Z (the events up to that instant):\nNo events for erin@example.com (all, partial).\n',
    );
    expect((await auditJson(['--stuck', '--as-of', beforeLateAdd])).profiles).toEqual([]);
    expect((await auditJson(['--renewed', '--as-of', beforeLateAdd])).renewals).toEqual([]);
  });

  it('before the gateway existed: nothing at all; an offset instant is the same instant', async () => {
    expect(await auditJson(['--summary', '--as-of', '2030-02-01T00:00:00Z'])).toMatchObject({ active: 0, revoked: 0, renewals: 0, crlEntries: 0 });
    // 13:00+02:00 is 11:00Z, before the delete.
    expect((await auditJson(['--summary', '--as-of', '2030-03-18T13:00:00+02:00'])).revoked).toBe(0);
    expect((await auditJson(['--summary', '--as-of', '2030-03-18T14:00:00+02:00'])).revoked).toBe(1);
  });

  it('as of now, every lens gives what the read models give: the two views agree', async () => {
    const lenses = [
      ['--summary'],
      ['--expiring', '--days', '365'],
      ['--renewed'],
      ['--revoked'],
      ['--history', '--email', 'alice@example.com'],
      ['--history', '--email', 'bob@example.com'],
      ['--history', '--email', 'carol@example.com'],
      ['--stuck'],
    ];
    for (const args of lenses) {
      const { asOf: _a, crl: _c, warnings: _w, ...current } = await auditJson(args);
      const { asOf, crl: _c2, warnings: _w2, ...then } = await auditJson([...args, '--as-of', T.audit]);
      expect(asOf).toBe('2030-03-20T12:00:00.000Z');
      expect(then, args.join(' ')).toEqual(current);
    }
  });
});

describe('bad flags: exit 2, one stderr line naming the flag, nothing touched', () => {
  const cases: [string, string[], string[]][] = [
    ['no lens', [], ['--summary', '--stuck']],
    ['two lenses', ['--summary', '--revoked'], ['--summary', '--revoked']],
    ['--days without --expiring', ['--revoked', '--days', '5'], ['--days']],
    ['--since with --history', ['--history', '--email', 'alice@example.com', '--since', '2030-03-01'], ['--since']],
    ['--until with --revoked', ['--revoked', '--until', '2030-03-01'], ['--until']],
    ['--traffic without --history', ['--stuck', '--traffic', 'all'], ['--traffic']],
    ['--history without --email', ['--history'], ['--email']],
    ['a date that does not exist', ['--renewed', '--since', '2026-02-30'], ['--since']],
    ['--until before --since', ['--renewed', '--since', '2030-03-12', '--until', '2030-03-10'], ['--until']],
    ['--as-of garbage', ['--summary', '--as-of', 'garbage'], ['--as-of']],
    ['--as-of a bare date', ['--summary', '--as-of', '2030-03-01'], ['--as-of']],
    ['--days not a number', ['--expiring', '--days', 'ten'], ['--days']],
    ['--traffic neither all nor partial', ['--history', '--email', 'alice@example.com', '--traffic', 'both'], ['--traffic']],
  ];
  for (const [when, args, names] of cases) {
    it(`given ${when}`, async () => {
      const res = await audit(args);
      const lines = res.stderr.replace(/\n$/, '').split('\n');
      expect({ code: res.code, stdout: res.stdout, lines: lines.length }, res.stderr).toEqual({ code: 2, stdout: '', lines: 1 });
      expect(lines[0]).toMatch(/^ov_user_audit: /);
      for (const name of names) expect(lines[0]).toContain(name);
    });
  }
});
