// The daily renewal job, ov_user_renew_due, as shipped: the built commands run as processes, OVL_NOW
// moves the clock, mail goes to a REAL SMTP server on 127.0.0.1 (STARTTLS + AUTH, certificate
// trusted only through SMTP_TLS_CA_FILE) and is read back with mailparser, and a real OpenVPN server
// in a network namespace proves that the renewed and the previous certificate both work, with no
// gap, until ov_user_delete revokes both on the running server.
//
// Each describe is one gateway and one scenario; its tests run in order and use what the earlier
// ones left (users, serials, profile files, messages). A step whose prerequisite is missing fails
// saying "an earlier step failed".

import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCliBuilt, runCli, snapshotTree, spawnCli, type CliCommand, type CliResult } from '../support/cli.js';
import { LoopbackSmtp, makeSelfSignedSmtpCertificate, type ReceivedMail } from '../support/loopback-smtp.js';
import {
  assertOpenvpnLabAvailable,
  createNetns,
  findExecutable,
  startOpenvpnServer,
  tryConnect,
  type ConnectResult,
  type Netns,
  type OpenvpnServer,
} from '../support/openvpn-lab.js';

// test/support/cli.ts types the commands it knew when it was written; runCli/spawnCli only join
// the name into dist/bin/<name>.js, so the job runs through them unchanged.
const RENEW_DUE = 'ov_user_renew_due' as string as CliCommand;

const SMTP_USER = 'ovl-renewal';
const SMTP_PASSWORD = 'pw-Renewal+Job/7=';
const ENVIRONMENT_NAME = 'Renewal gateway';

// ---------------------------------------------------------------------------------------------
// Dates

const DAY_MS = 86_400_000;

/** YYYY-MM-DD `days` after a YYYY-MM-DD (UTC). */
function plusDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

/** Calendar days from one YYYY-MM-DD to another. */
function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS);
}

// The fixed "today" of the SMTP scenarios, and the day their profiles were first issued.
const TODAY = '2030-03-10';
const NOW = `${TODAY}T09:30:00Z`;
const ISSUE_DAY = plusDays(TODAY, -30);
const ISSUE_NOW = `${ISSUE_DAY}T09:30:00Z`;

// ---------------------------------------------------------------------------------------------
// One gateway in a temp dir, driven through the built CLI

interface Issued {
  readonly serial: string;
  readonly profilePath: string;
  readonly profileId: string;
  readonly bytes: Buffer;
}

interface ListedUser {
  email: string;
  traffic: string;
  expirationDate: string;
  autoRenew: boolean;
  serial: string;
  renewals: number;
}

interface RenewalReport {
  today: string;
  windowDays: number;
  renewed: { email: string; traffic: string; previousSerial: string; serial: string; expirationDate: string; delivery: string }[];
  failed: { email: string; traffic: string; previousSerial: string; reason: string }[];
  skipped: number;
}

interface StoredEvent {
  position: number;
  type: string;
  data: Record<string, unknown>;
}

interface UserAddSpec {
  readonly first: string;
  readonly email: string;
  readonly traffic: 'all' | 'partial';
  readonly expires: string;
  readonly autoRenew: 'yes' | 'no';
}

class Gateway {
  readonly stateDir: string;
  readonly configDir: string;
  readonly logFile: string;

  constructor(readonly root: string) {
    this.stateDir = join(root, 'state');
    this.configDir = join(root, 'etc');
    this.logFile = join(root, 'log', 'ovpn-ledger.log');
  }

  /** Runs a built command; `now` becomes OVL_NOW (undefined: the real clock). */
  run(command: CliCommand, args: readonly string[], now: string | undefined): Promise<CliResult> {
    return runCli(command, args, { env: this.env(now) });
  }

  async ok(command: CliCommand, args: readonly string[], now: string | undefined): Promise<string> {
    const res = await this.run(command, args, now);
    expect(res.code, `${command} ${args.join(' ')}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`).toBe(0);
    return res.stdout;
  }

  env(now: string | undefined): Record<string, string | undefined> {
    return {
      OVL_STATE_DIR: this.stateDir,
      OVL_CONFIG_DIR: this.configDir,
      OVL_LOG_FILE: this.logFile,
      OVL_LOG_LEVEL: undefined,
      OVL_NOW: now,
    };
  }

  writeEmailConf(lines: readonly string[]): void {
    writeFileSync(join(this.configDir, 'email.conf'), [...lines, `ENVIRONMENT_NAME="${ENVIRONMENT_NAME}"`, 'FROM_EMAIL=vpn@example.com', ''].join('\n'), {
      mode: 0o600,
    });
  }

  async add(u: UserAddSpec, now: string | undefined): Promise<Issued> {
    const out = await this.ok(
      'ov_user_add',
      [
        '--first-name', u.first,
        '--last-name', 'Renewer',
        '--email', u.email,
        '--traffic', u.traffic,
        '--expiration-date', u.expires,
        '--creation-reason', `renewal e2e: ${u.first}`,
        '--auto-renew', u.autoRenew,
      ],
      now,
    );
    const profilePath = /^Kept at (\/\S+\.ovpn)\.$/m.exec(out)?.[1];
    if (!profilePath) throw new Error(`no profile path in: ${out}`);
    const serial = basename(profilePath, '.ovpn');
    expect(out).toContain(`serial ${serial}`);
    return { serial, profilePath, profileId: basename(dirname(profilePath)), bytes: readFileSync(profilePath) };
  }

  async renewDueJson(now: string | undefined, extraArgs: readonly string[] = []): Promise<RenewalReport> {
    return JSON.parse(await this.ok(RENEW_DUE, ['--json', ...extraArgs], now)) as RenewalReport;
  }

  async list(now: string | undefined): Promise<ListedUser[]> {
    return JSON.parse(await this.ok('ov_user_list', ['--json'], now)) as ListedUser[];
  }

  profilePath(profileId: string, serial: string): string {
    return join(this.stateDir, 'profiles', profileId, `${serial}.ovpn`);
  }

  clientKeyPath(serial: string): string {
    return join(this.stateDir, 'keys', 'clients', `${serial}.key`);
  }

  /** Reads the ledger file directly, read-only, the way an auditor's sqlite3 would. */
  query<T>(sql: string, ...params: unknown[]): T[] {
    const db = new Database(join(this.stateDir, 'ledger.sqlite'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }

  events(profileId: string): StoredEvent[] {
    return this.query<{ position: number; type: string; data: string }>(
      'SELECT position, type, data FROM events WHERE stream_id = ? ORDER BY position',
      `profile-${profileId}`,
    ).map((e) => ({ position: Number(e.position), type: e.type, data: JSON.parse(e.data) as Record<string, unknown> }));
  }

  countEvents(type: string, profileId: string): number {
    return this.query<{ n: number }>('SELECT count(*) AS n FROM events WHERE type = ? AND stream_id = ?', type, `profile-${profileId}`)[0]!.n;
  }

  totalEvents(): number {
    return this.query<{ n: number }>('SELECT count(*) AS n FROM events')[0]!.n;
  }

  /** The user-list read model's last renewal failure ("stuck" until a renewal succeeds). */
  lastRenewalFailure(profileId: string): { at: string; reason: string; lastLogLine: string } | null {
    const [row] = this.query<{ row: string }>('SELECT row FROM users WHERE stream_id = ?', `profile-${profileId}`);
    if (!row) throw new Error(`no user row for profile-${profileId}`);
    return (JSON.parse(row.row) as { lastRenewalFailure: { at: string; reason: string; lastLogLine: string } | null }).lastRenewalFailure;
  }
}

async function makeGateway(prefix: string, publicHost: string, initNow: string | undefined): Promise<Gateway> {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const gw = new Gateway(root);
  await gw.ok('ov_init', ['--public-host', publicHost, '--route', '10.30.0.0/16'], initNow);
  return gw;
}

function smtpEmailConf(smtp: LoopbackSmtp, caFile: string): string[] {
  return [
    'SMTP_HOST=127.0.0.1',
    `SMTP_PORT=${smtp.port}`,
    'SMTP_SECURE=starttls',
    `SMTP_TLS_CA_FILE=${caFile}`,
    `SMTP_USERNAME=${SMTP_USER}`,
    `SMTP_PASSWORD=${SMTP_PASSWORD}`,
  ];
}

// ---------------------------------------------------------------------------------------------
// Certificates and mail

function certificateIn(profile: Buffer | string): X509Certificate {
  const pem = /<cert>\n([\s\S]+?)\n<\/cert>/.exec(profile.toString())?.[1];
  if (!pem) throw new Error('no <cert> block in the profile');
  return new X509Certificate(pem);
}

/**
 * A profile without its <cert> and <key> blocks: what a renewal must keep as it was (remote, routes,
 * CA, tls-crypt). Also keeps private keys out of assertion messages.
 */
function withoutCertAndKey(profile: Buffer): string {
  return profile
    .toString()
    .replace(/<cert>\n[\s\S]*?\n<\/cert>/, '<cert>…</cert>')
    .replace(/<key>\n[\s\S]*?\n<\/key>/, '<key>…</key>');
}

function serialOf(cert: X509Certificate): string {
  return cert.serialNumber.toLowerCase();
}

/** The last second of a calendar day, as an instant. */
function endOfDay(date: string): number {
  return Date.parse(`${date}T23:59:59Z`);
}

/** The messages that arrived since `before`. */
function mailSince(smtp: LoopbackSmtp, before: number): ReceivedMail[] {
  return smtp.received.slice(before);
}

function onlyAttachment(mail: ReceivedMail): { filename: string | undefined; contentType: string; content: Buffer } {
  expect(mail.parsed.attachments).toHaveLength(1);
  const [a] = mail.parsed.attachments;
  return { filename: a!.filename, contentType: a!.contentType, content: a!.content };
}

function ovpnFilesIn(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.ovpn')).sort() : [];
}

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

// ---------------------------------------------------------------------------------------------
// 1. Who gets renewed, with what, how often

describe(`given a gateway mailing through a real SMTP server and "today" fixed at ${TODAY} with OVL_NOW`, () => {
  let work: string | undefined;
  let gw: Gateway;
  let smtp: LoopbackSmtp;
  const issued = new Map<string, Issued>();
  const renewedTo = new Map<string, { serial: string; profilePath: string }>();

  const A: UserAddSpec = { first: 'Ana', email: 'ana@example.com', traffic: 'all', expires: plusDays(TODAY, 8), autoRenew: 'yes' };
  const B: UserAddSpec = { first: 'Ben', email: 'ben@example.com', traffic: 'partial', expires: plusDays(TODAY, 30), autoRenew: 'yes' };
  const C: UserAddSpec = { first: 'Cy', email: 'cy@example.com', traffic: 'all', expires: plusDays(TODAY, 5), autoRenew: 'no' };
  const D: UserAddSpec = { first: 'Dee', email: 'dee@example.com', traffic: 'all', expires: plusDays(TODAY, 5), autoRenew: 'yes' };
  const E: UserAddSpec = { first: 'Eve', email: 'eve@example.com', traffic: 'partial', expires: plusDays(TODAY, 3), autoRenew: 'yes' };

  const got = (u: UserAddSpec): Issued => {
    const found = issued.get(u.email);
    if (!found) throw new Error(`an earlier step failed: nothing was issued to ${u.email}`);
    return found;
  };
  /** The original term: calendar days from the first issue to the first expiration. */
  const termOf = (u: UserAddSpec) => daysBetween(ISSUE_DAY, u.expires);

  beforeAll(async () => {
    assertCliBuilt();
    work = mkdtempSync(join(tmpdir(), 'ovl-renewal-smtp-'));
    smtp = new LoopbackSmtp(makeSelfSignedSmtpCertificate(work), { user: SMTP_USER, password: SMTP_PASSWORD });
    await smtp.start();
    gw = await makeGateway('ovl-renewal-gw-', 'vpn.example.com', ISSUE_NOW);
    gw.writeEmailConf(smtpEmailConf(smtp, join(work, 'smtp-cert.pem')));
  }, 120_000);

  afterAll(async () => {
    await smtp?.stop();
    if (gw) rmSync(gw.root, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(`given A (all, auto-renew, expires ${A.expires}), B (partial, auto-renew, ${B.expires}), C (auto-renew off, ${C.expires}) and D (auto-renew, ${D.expires}, deleted), all issued ${ISSUE_DAY}, when the job runs today, then exactly A is renewed`, async () => {
    for (const u of [A, B, C, D]) issued.set(u.email, await gw.add(u, ISSUE_NOW));
    expect(await gw.ok('ov_user_delete', ['--email', D.email, '--traffic', D.traffic, '--reason', 'left'], NOW)).toContain(got(D).serial);
    const mailBefore = smtp.received.length;

    const report = await gw.renewDueJson(NOW);

    expect(report).toMatchObject({ today: TODAY, windowDays: 10, failed: [], skipped: 0 });
    expect(report.renewed).toHaveLength(1);
    const [r] = report.renewed;
    const newExpiry = plusDays(A.expires, termOf(A));
    expect(r).toMatchObject({ email: A.email, traffic: 'all', previousSerial: got(A).serial, expirationDate: newExpiry });
    expect(r!.serial).toMatch(/^[0-7][0-9a-f]{31}$/);
    expect(r!.serial).not.toBe(got(A).serial);
    expect(r!.delivery).toContain(`mailed to ${A.email}`);
    renewedTo.set(A.email, { serial: r!.serial, profilePath: gw.profilePath(got(A).profileId, r!.serial) });

    // Nobody else was mailed, and nothing was signed for anyone else.
    expect(mailSince(smtp, mailBefore).map((m) => m.rcptTo)).toEqual([[A.email]]);
    for (const u of [B, C, D]) {
      expect(gw.countEvents('RenewalCertificateIssued', got(u).profileId), u.email).toBe(0);
      expect(gw.countEvents('ProfileRenewed', got(u).profileId), u.email).toBe(0);
      expect(ovpnFilesIn(dirname(got(u).profilePath)), u.email).toEqual([`${got(u).serial}.ovpn`]);
    }
    expect(gw.countEvents('ProfileRenewed', got(A).profileId)).toBe(1);
  });

  it('then A received one "renewed" mail over TLS whose .ovpn holds a new certificate, valid through 23:59:59 UTC of the old expiry + the original term, and equal to the new profile file', () => {
    const a = got(A);
    const renewed = renewedTo.get(A.email);
    if (!renewed) throw new Error('an earlier step failed: A was not renewed');
    const mails = smtp.to(A.email);
    // The issue mail, then the renewal.
    expect(mails).toHaveLength(2);
    const mail = mails[1]!;
    expect(mail.secure).toBe(true);
    expect(mail.user).toBe(SMTP_USER);
    expect(mail.parsed.subject).toBe(`[${ENVIRONMENT_NAME}] Your renewed VPN profile (all traffic, full tunnel)`);
    const newExpiry = plusDays(A.expires, termOf(A));
    expect(mail.parsed.text).toContain('has been renewed');
    expect(mail.parsed.text).toContain(`Expires:  ${newExpiry} (end of the day, UTC)`);

    const attachment = onlyAttachment(mail);
    expect(attachment.filename).toBe('vpn-all.ovpn');
    expect(attachment.contentType).toBe('application/x-openvpn-profile');
    expect(attachment.content.equals(readFileSync(renewed.profilePath))).toBe(true);
    expect(statSync(renewed.profilePath).mode & 0o777).toBe(0o600);
    expect(statSync(gw.clientKeyPath(renewed.serial)).mode & 0o777).toBe(0o600);

    const cert = certificateIn(attachment.content);
    const old = certificateIn(a.bytes);
    expect(serialOf(old)).toBe(a.serial);
    expect(serialOf(cert)).toBe(renewed.serial);
    expect(serialOf(cert)).not.toBe(serialOf(old));
    expect(Date.parse(old.validTo)).toBe(endOfDay(A.expires));
    expect(Date.parse(cert.validTo)).toBe(endOfDay(newExpiry));
    // Signed today by the gateway's CA, for the same profile (CN = profile id) and client auth.
    expect(Date.parse(cert.validFrom)).toBeLessThanOrEqual(Date.parse(NOW));
    expect(Date.parse(cert.validFrom)).toBeGreaterThan(Date.parse(NOW) - 10 * 60_000);
    expect(cert.subject.trim()).toBe(`CN=${a.profileId}`);
    const ca = new X509Certificate(readFileSync(join(gw.stateDir, 'openvpn', 'ca.crt')));
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.keyUsage ?? []).toContain('1.3.6.1.5.5.7.3.2');
    // The same profile otherwise: full tunnel, same remote, CA and tls-crypt key.
    expect(withoutCertAndKey(attachment.content)).toBe(withoutCertAndKey(a.bytes));
    expect(withoutCertAndKey(attachment.content)).toMatch(/^redirect-gateway def1$/m);
    expect(withoutCertAndKey(attachment.content)).toMatch(/^remote vpn\.example\.com 1194$/m);
  });

  it("then ov_user_list --json shows A's new expiry and serial, the others unchanged, and A's old profile file is still on disk, byte for byte", async () => {
    const renewed = renewedTo.get(A.email);
    if (!renewed) throw new Error('an earlier step failed: A was not renewed');
    const listed = await gw.list(NOW);
    expect(listed.map((u) => u.email).sort()).toEqual([A.email, B.email, C.email]);
    const byEmail = new Map(listed.map((u) => [u.email, u]));
    expect(byEmail.get(A.email)).toMatchObject({ expirationDate: plusDays(A.expires, termOf(A)), serial: renewed.serial, renewals: 1, autoRenew: true });
    expect(byEmail.get(B.email)).toMatchObject({ expirationDate: B.expires, serial: got(B).serial, renewals: 0 });
    expect(byEmail.get(C.email)).toMatchObject({ expirationDate: C.expires, serial: got(C).serial, renewals: 0, autoRenew: false });

    const a = got(A);
    expect(readFileSync(a.profilePath).equals(a.bytes)).toBe(true);
    expect(existsSync(gw.clientKeyPath(a.serial))).toBe(true);
    expect(ovpnFilesIn(dirname(a.profilePath))).toEqual([`${a.serial}.ovpn`, `${renewed.serial}.ovpn`].sort());
  });

  it('when the job runs a second time the same day, then it renews nothing, sends no mail and records nothing', async () => {
    const mailBefore = smtp.received.length;
    const eventsBefore = gw.totalEvents();
    const profilesBefore = snapshotTree(join(gw.stateDir, 'profiles'));
    const keysBefore = snapshotTree(join(gw.stateDir, 'keys'));

    const report = await gw.renewDueJson(NOW);

    expect(report).toMatchObject({ today: TODAY, renewed: [], failed: [], skipped: 0 });
    expect(smtp.received.length).toBe(mailBefore);
    expect(gw.totalEvents()).toBe(eventsBefore);
    expect(gw.countEvents('ProfileRenewed', got(A).profileId)).toBe(1);
    expect(snapshotTree(join(gw.stateDir, 'profiles'))).toEqual(profilesBefore);
    expect(snapshotTree(join(gw.stateDir, 'keys'))).toEqual(keysBefore);

    const text = await gw.ok(RENEW_DUE, [], NOW);
    expect(text).toMatch(new RegExp(`^Renewal run for ${TODAY} \\(window 10 days\\): 0 renewed, 0 failed, 0 skipped\\.$`, 'm'));
    expect(smtp.received.length).toBe(mailBefore);
  });

  it('when the job runs with --window-days 40, then it renews B (partial) and only B, by its own original term', async () => {
    const mailBefore = smtp.received.length;

    const report = await gw.renewDueJson(NOW, ['--window-days', '40']);

    const newExpiry = plusDays(B.expires, termOf(B));
    expect(report).toMatchObject({ today: TODAY, windowDays: 40, failed: [], skipped: 0 });
    expect(report.renewed.map((r) => [r.email, r.traffic, r.previousSerial, r.expirationDate])).toEqual([
      [B.email, 'partial', got(B).serial, newExpiry],
    ]);
    const serial = report.renewed[0]!.serial;

    const fresh = mailSince(smtp, mailBefore);
    expect(fresh.map((m) => m.rcptTo)).toEqual([[B.email]]);
    expect(fresh[0]!.parsed.subject).toBe(`[${ENVIRONMENT_NAME}] Your renewed VPN profile (partial traffic, split tunnel)`);
    const attachment = onlyAttachment(fresh[0]!);
    expect(attachment.filename).toBe('vpn-partial.ovpn');
    const cert = certificateIn(attachment.content);
    expect(serialOf(cert)).toBe(serial);
    expect(Date.parse(cert.validTo)).toBe(endOfDay(newExpiry));
    // Still the same split-tunnel profile, with the routes recorded when B was first issued.
    expect(withoutCertAndKey(attachment.content)).toBe(withoutCertAndKey(got(B).bytes));
    expect(withoutCertAndKey(attachment.content)).toMatch(/^route 10\.30\.0\.0 255\.255\.0\.0$/m);
    expect(withoutCertAndKey(attachment.content)).not.toMatch(/^redirect-gateway/m);
    expect(attachment.content.equals(readFileSync(gw.profilePath(got(B).profileId, serial)))).toBe(true);
    expect(readFileSync(got(B).profilePath).equals(got(B).bytes)).toBe(true);

    const listed = await gw.list(NOW);
    expect(listed.find((u) => u.email === B.email)).toMatchObject({ expirationDate: newExpiry, serial, renewals: 1 });
    expect(listed.find((u) => u.email === A.email)?.renewals).toBe(1);
  });

  it('given E is due, when two copies of the job start at the same moment, then E is renewed exactly once and mailed at most once', async () => {
    issued.set(E.email, await gw.add(E, ISSUE_NOW));
    const e = got(E);
    const mailBefore = smtp.received.length;

    const runs = [spawnCli(RENEW_DUE, ['--json'], { env: gw.env(NOW) }), spawnCli(RENEW_DUE, ['--json'], { env: gw.env(NOW) })];
    const results = await Promise.all(runs.map((r) => r.done));

    const explainRuns = results.map((r, i) => `run ${i}: exit ${r.code} signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).join('\n');
    // Each copy either did the work, found nothing left to do (0), or was refused by the lease (3).
    for (const r of results) expect([0, 3], explainRuns).toContain(r.code);
    expect(results.filter((r) => r.code === 0).length, explainRuns).toBeGreaterThanOrEqual(1);
    for (const r of results.filter((x) => x.code === 3)) {
      expect(r.stderr, explainRuns).toMatch(/another renewal job \(pid \d+, since .+\) is running; nothing was done/);
    }
    const reports = results.filter((r) => r.code === 0).map((r) => JSON.parse(r.stdout) as RenewalReport);
    const renewals = reports.flatMap((r) => r.renewed);
    expect(renewals.map((r) => r.email), explainRuns).toEqual([E.email]);
    expect(reports.flatMap((r) => r.failed)).toEqual([]);

    expect(gw.countEvents('ProfileRenewed', e.profileId)).toBe(1);
    expect(gw.countEvents('RenewalCertificateIssued', e.profileId)).toBe(1);
    expect(gw.countEvents('RenewalFailed', e.profileId)).toBe(0);
    const fresh = mailSince(smtp, mailBefore);
    expect(fresh.map((m) => m.rcptTo)).toEqual([[E.email]]);
    expect(serialOf(certificateIn(onlyAttachment(fresh[0]!).content))).toBe(renewals[0]!.serial);
    // One new profile, one new key: the losing copy left nothing behind.
    expect(ovpnFilesIn(dirname(e.profilePath))).toEqual([`${e.serial}.ovpn`, `${renewals[0]!.serial}.ovpn`].sort());
    const listed = await gw.list(NOW);
    expect(listed.find((u) => u.email === E.email)).toMatchObject({
      serial: renewals[0]!.serial,
      expirationDate: plusDays(E.expires, termOf(E)),
      renewals: 1,
    });
  });

  it('given a profile issued two minutes after midnight UTC, when it is renewed, then its term is still the calendar days from the issue day to the expiration day', async () => {
    const M: UserAddSpec = { first: 'Mia', email: 'mia@example.com', traffic: 'all', expires: plusDays(TODAY, 6), autoRenew: 'yes' };
    // notBefore is set 5 minutes early for clients whose clock lags, i.e. on the previous day.
    const m = await gw.add(M, `${ISSUE_DAY}T00:02:00Z`);
    expect(Date.parse(certificateIn(m.bytes).validFrom)).toBe(Date.parse(`${plusDays(ISSUE_DAY, -1)}T23:57:00Z`));
    const report = await gw.renewDueJson(NOW);
    const expected = plusDays(M.expires, daysBetween(ISSUE_DAY, M.expires));
    expect(report.renewed.map((r) => [r.email, r.expirationDate])).toEqual([[M.email, expected]]);
  });

  /** Starts the job and resolves once its next mail is at the SMTP server, unanswered; `finish` releases it. */
  const jobHeldAtItsMail = async () => {
    const hold = smtp.holdNextMessage();
    const job = spawnCli(RENEW_DUE, ['--json'], { env: gw.env(NOW) });
    const endedEarly = job.done.then((r) => {
      throw new Error(`the job ended before its mail arrived (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    });
    try {
      await Promise.race([hold.arrived, endedEarly]);
    } catch (error) {
      hold.release();
      throw error;
    }
    endedEarly.catch(() => undefined);
    return {
      release: hold.release,
      finish: async () => {
        hold.release();
        return job.done;
      },
    };
  };

  it("given G's renewal is being mailed, when auto-renew is switched off meanwhile, then the delivered renewal still completes: the mailed certificate becomes G's current one", async () => {
    const G: UserAddSpec = { first: 'Gus', email: 'gus@example.com', traffic: 'all', expires: plusDays(TODAY, 2), autoRenew: 'yes' };
    const g = await gw.add(G, ISSUE_NOW);
    const mailBefore = smtp.received.length;
    const job = await jobHeldAtItsMail();
    let res: Awaited<ReturnType<typeof job.finish>>;
    try {
      expect(await gw.ok('ov_user_auto_renew', ['--email', G.email, '--traffic', 'all', '--disable'], NOW)).toMatch(/disabled/);
    } finally {
      res = await job.finish();
    }

    expect(res.code, `stdout: ${res.stdout}\nstderr: ${res.stderr}`).toBe(0);
    const report = JSON.parse(res.stdout) as RenewalReport;
    const newExpiry = plusDays(G.expires, daysBetween(ISSUE_DAY, G.expires));
    expect(report.renewed.map((r) => [r.email, r.expirationDate])).toEqual([[G.email, newExpiry]]);
    const serial = report.renewed[0]!.serial;
    const fresh = mailSince(smtp, mailBefore);
    expect(fresh.map((m) => m.rcptTo)).toEqual([[G.email]]);
    const attachment = onlyAttachment(fresh[0]!);
    expect(serialOf(certificateIn(attachment.content))).toBe(serial);
    // What was mailed is kept, and is what the list names.
    expect(attachment.content.equals(readFileSync(gw.profilePath(g.profileId, serial)))).toBe(true);
    expect(existsSync(gw.clientKeyPath(serial))).toBe(true);
    expect(gw.countEvents('ProfileRenewed', g.profileId)).toBe(1);
    expect(gw.countEvents('RenewalFailed', g.profileId)).toBe(0);
    expect((await gw.list(NOW)).find((u) => u.email === G.email)).toMatchObject({ serial, expirationDate: newExpiry, renewals: 1, autoRenew: false });
  });

  it("given H's renewal is being mailed, when H is deleted meanwhile, then the mailed certificate is revoked with the old one, H is not renewed, and the job does not fail", async () => {
    const H: UserAddSpec = { first: 'Hal', email: 'hal@example.com', traffic: 'all', expires: plusDays(TODAY, 1), autoRenew: 'yes' };
    const h = await gw.add(H, ISSUE_NOW);
    const mailBefore = smtp.received.length;
    const job = await jobHeldAtItsMail();
    let deleted: string;
    let res: Awaited<ReturnType<typeof job.finish>>;
    try {
      deleted = await gw.ok('ov_user_delete', ['--email', H.email, '--traffic', 'all', '--reason', 'left mid-renewal'], NOW);
    } finally {
      res = await job.finish();
    }

    const mailed = mailSince(smtp, mailBefore);
    expect(mailed.map((m) => m.rcptTo)).toEqual([[H.email]]);
    const mailedSerial = serialOf(certificateIn(onlyAttachment(mailed[0]!).content));
    expect(mailedSerial).not.toBe(h.serial);
    // The certificate was in the log before it left the gateway: the delete revoked it too.
    expect(/serial\(s\) ([0-9a-f, ]+)\./.exec(deleted)?.[1]?.split(', ').sort()).toEqual([h.serial, mailedSerial].sort());
    const crlText = spawnSync('openssl', ['crl', '-in', join(gw.stateDir, 'openvpn', 'crl.pem'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
    expect(crlText).toContain(`Serial Number: ${h.serial.toUpperCase()}`);
    expect(crlText).toContain(`Serial Number: ${mailedSerial.toUpperCase()}`);

    // Not a failure: the operator deleted H; the job counts it as changed meanwhile (skipped).
    expect(res.code, `stdout: ${res.stdout}\nstderr: ${res.stderr}`).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ renewed: [], failed: [], skipped: 1 });
    expect(gw.countEvents('ProfileRenewed', h.profileId)).toBe(0);
    expect(gw.countEvents('RenewalFailed', h.profileId)).toBe(0);
    expect((await gw.list(NOW)).map((u) => u.email)).not.toContain(H.email);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. A renewal whose mail cannot go out

describe('given a due auto-renewing profile and an SMTP server that is stopped', () => {
  let work: string | undefined;
  let gw: Gateway;
  let smtp: LoopbackSmtp;
  let fay: Issued | undefined;
  let abandonedSerial: string | undefined;
  const F: UserAddSpec = { first: 'Fay', email: 'fay@example.com', traffic: 'all', expires: plusDays(TODAY, 4), autoRenew: 'yes' };
  const newExpiry = plusDays(F.expires, daysBetween(ISSUE_DAY, F.expires));
  const issuedFay = (): Issued => {
    if (!fay) throw new Error('an earlier step failed: fay was not issued');
    return fay;
  };

  beforeAll(async () => {
    assertCliBuilt();
    work = mkdtempSync(join(tmpdir(), 'ovl-renewal-down-'));
    smtp = new LoopbackSmtp(makeSelfSignedSmtpCertificate(work), { user: SMTP_USER, password: SMTP_PASSWORD });
    await smtp.start();
    gw = await makeGateway('ovl-renewal-gw-', 'vpn.example.com', ISSUE_NOW);
    gw.writeEmailConf(smtpEmailConf(smtp, join(work, 'smtp-cert.pem')));
    fay = await gw.add(F, ISSUE_NOW);
  }, 120_000);

  afterAll(async () => {
    await smtp?.stop();
    if (gw) rmSync(gw.root, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('when the job runs, then it exits 4 naming the failed renewal, and the profile, its files and the list are exactly as before', async () => {
    const f = issuedFay();
    await smtp.stop();
    expect(await connectionRefused(smtp.port)).toBe(true);
    const listBefore = await gw.list(NOW);
    const profilesBefore = snapshotTree(join(gw.stateDir, 'profiles'));
    const keysBefore = snapshotTree(join(gw.stateDir, 'keys'));
    const mailBefore = smtp.received.length;

    const res = await gw.run(RENEW_DUE, [], NOW);

    const failure = `SMTP server 127.0.0.1:${smtp.port} refused the connection (ECONNREFUSED)`;
    expect(res.code, `stdout: ${res.stdout}\nstderr: ${res.stderr}`).toBe(4);
    // The report goes to stdout as on success; stderr has the one line saying the run failed.
    expect(res.stdout).toContain(`Renewal run for ${TODAY} (window 10 days): 0 renewed, 1 failed, 0 skipped.`);
    expect(res.stdout).toContain(`FAILED  ${F.email} (all): ${failure}`);
    expect(res.stderr).toBe('ov_user_renew_due: 1 renewal(s) failed; see ov_user_audit --stuck\n');
    expect(smtp.received.length).toBe(mailBefore);

    expect(await gw.list(NOW)).toEqual(listBefore);
    expect(listBefore.find((u) => u.email === F.email)).toMatchObject({ serial: f.serial, expirationDate: F.expires, renewals: 0 });
    expect(readFileSync(f.profilePath).equals(f.bytes)).toBe(true);
    // Nothing written, removed or touched under profiles/ and keys/: no file of the abandoned
    // serial is left behind, and the old profile is byte for byte what was mailed.
    expect(snapshotTree(join(gw.stateDir, 'profiles'))).toEqual(profilesBefore);
    expect(snapshotTree(join(gw.stateDir, 'keys'))).toEqual(keysBefore);
  });

  it('then RenewalFailed is recorded with a lastLogLine naming the SMTP failure, the signed certificate is marked abandoned, and the profile is stuck', () => {
    const f = issuedFay();
    const events = gw.events(f.profileId);
    expect(events.map((e) => e.type)).toEqual(['ProfileIssued', 'RenewalCertificateIssued', 'RenewalFailed']);
    const signed = events[1]!.data as { expirationDate: string; certificate: { serial: string; notAfter: string } };
    const failed = events[2]!.data as { reason: string; lastLogLine: string; abandonedSerial?: string };
    expect(signed.expirationDate).toBe(newExpiry);
    expect(signed.certificate.serial).not.toBe(f.serial);
    abandonedSerial = signed.certificate.serial;

    const failure = `SMTP server 127.0.0.1:${smtp.port} refused the connection (ECONNREFUSED)`;
    expect(failed.reason).toBe(failure);
    expect(failed.abandonedSerial).toBe(abandonedSerial);
    expect(failed.lastLogLine).toMatch(
      new RegExp(`^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z ERROR ov_user_renew_due: renewal of all profile ${f.profileId} failed: `),
    );
    expect(failed.lastLogLine).toContain(failure);
    // No email in a log line.
    expect(failed.lastLogLine).not.toContain(F.email);

    expect(existsSync(gw.profilePath(f.profileId, abandonedSerial))).toBe(false);
    expect(existsSync(gw.clientKeyPath(abandonedSerial))).toBe(false);
    expect(gw.lastRenewalFailure(f.profileId)).toMatchObject({ reason: failure, lastLogLine: failed.lastLogLine });
    expect(readFileSync(gw.logFile, 'utf8')).toContain(`renewal failed: ${failure}`);
  });

  it('when the SMTP server is started again on the same port and the job runs, then it renews the profile (exit 0) and it is no longer stuck', async () => {
    const f = issuedFay();
    const port = smtp.port;
    await smtp.start();
    expect(smtp.port).toBe(port);
    const mailBefore = smtp.received.length;

    const report = await gw.renewDueJson(NOW);

    expect(report.failed).toEqual([]);
    expect(report.renewed.map((r) => [r.email, r.previousSerial, r.expirationDate])).toEqual([[F.email, f.serial, newExpiry]]);
    const serial = report.renewed[0]!.serial;
    expect(serial).not.toBe(f.serial);
    expect(serial).not.toBe(abandonedSerial);

    const fresh = mailSince(smtp, mailBefore);
    expect(fresh.map((m) => m.rcptTo)).toEqual([[F.email]]);
    const attachment = onlyAttachment(fresh[0]!);
    expect(serialOf(certificateIn(attachment.content))).toBe(serial);
    expect(Date.parse(certificateIn(attachment.content).validTo)).toBe(endOfDay(newExpiry));
    expect(attachment.content.equals(readFileSync(gw.profilePath(f.profileId, serial)))).toBe(true);

    expect((await gw.list(NOW)).find((u) => u.email === F.email)).toMatchObject({ serial, expirationDate: newExpiry, renewals: 1 });
    expect(gw.events(f.profileId).map((e) => e.type)).toEqual([
      'ProfileIssued',
      'RenewalCertificateIssued',
      'RenewalFailed',
      'RenewalCertificateIssued',
      'ProfileRenewed',
    ]);
    expect(gw.lastRenewalFailure(f.profileId)).toBeNull();
    expect(readFileSync(f.profilePath).equals(f.bytes)).toBe(true);
    if (abandonedSerial) {
      expect(existsSync(gw.profilePath(f.profileId, abandonedSerial))).toBe(false);
      expect(existsSync(gw.clientKeyPath(abandonedSerial))).toBe(false);
    }
    expect(ovpnFilesIn(dirname(f.profilePath))).toEqual([`${f.serial}.ovpn`, `${serial}.ovpn`].sort());
  });
});

// ---------------------------------------------------------------------------------------------
// 3. OpenVPN: no gap, and a delete revokes both certificates

function openssl(args: string[]): string {
  const res = spawnSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.error) throw res.error;
  if (res.status !== 0) throw new Error(`openssl ${args.join(' ')} exited ${res.status}: ${res.stdout}${res.stderr}`);
  return `${res.stdout}${res.stderr}`;
}

function explain(res: ConnectResult): string {
  return `${res.reason}\n--- client log ---\n${res.log}\n--- server log since the client started ---\n${res.serverLogExcerpt}`;
}

describe('given a real OpenVPN server in a namespace running the generated server.conf (real clock)', () => {
  let work: string | undefined;
  let gw: Gateway;
  let ns: Netns | undefined;
  let server: OpenvpnServer | undefined;
  let old: Issued | undefined;
  let renewedPath: string | undefined;
  let renewedSerial: string | undefined;

  const today = new Date().toISOString().slice(0, 10);
  const A: UserAddSpec = { first: 'Ana', email: 'ana@example.com', traffic: 'all', expires: plusDays(today, 5), autoRenew: 'yes' };
  const live = () => {
    if (!ns || !server) throw new Error('an earlier step failed: the OpenVPN server is not running');
    return { ns, server };
  };
  const oldProfile = (): Issued => {
    if (!old) throw new Error("an earlier step failed: A's profile was not issued");
    return old;
  };
  const renewed = (): { path: string; serial: string } => {
    if (!renewedPath || !renewedSerial) throw new Error('an earlier step failed: A was not renewed');
    return { path: renewedPath, serial: renewedSerial };
  };

  beforeAll(async () => {
    assertOpenvpnLabAvailable();
    assertCliBuilt();
    // OpenVPN re-reads the CRL as `nobody` after dropping privileges: every directory on the way
    // to $OVL_STATE_DIR/openvpn/crl.pem must be traversable (mkdtemp makes 0700).
    work = mkdtempSync(join(tmpdir(), 'ovl-renewal-vpn-'));
    chmodSync(work, 0o755);
    gw = new Gateway(work);
    await gw.ok('ov_init', ['--public-host', '127.0.0.1'], undefined);
    mkdirSync(join(work, 'outbox'), { mode: 0o700 });
    gw.writeEmailConf(['DELIVERY=outbox', `OUTBOX_DIR=${join(work, 'outbox')}`]);
    // Issued 30 days ago, so its certificate has been valid for a month and ends in 5 days.
    old = await gw.add(A, new Date(Date.now() - 30 * DAY_MS).toISOString());
    ns = await createNetns('ovl-renew');
    server = await startOpenvpnServer(ns, join(gw.stateDir, 'openvpn', 'server.conf'));
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await ns?.destroy();
    if (work && process.env.OVLAB_KEEP_LOGS !== '1') rmSync(work, { recursive: true, force: true });
  });

  it('given A connects with the profile issued a month ago, when the renewal job runs, then A has a second profile with a new certificate', async () => {
    const { ns, server } = live();
    const before = await tryConnect(ns, oldProfile().profilePath, server);
    expect(before.connected, explain(before)).toBe(true);

    const report = await gw.renewDueJson(undefined);

    expect(report.failed).toEqual([]);
    expect(report.renewed.map((r) => [r.email, r.previousSerial])).toEqual([[A.email, oldProfile().serial]]);
    renewedSerial = report.renewed[0]!.serial;
    renewedPath = gw.profilePath(oldProfile().profileId, renewedSerial);
    expect(report.renewed[0]!.delivery).toContain('written to outbox');
    expect(serialOf(certificateIn(readFileSync(renewedPath)))).toBe(renewedSerial);
  });

  it('then both the old profile and the renewed one complete a handshake on the running server: no gap until the old one expires', async () => {
    const { ns, server } = live();
    for (const [name, path] of [['old', oldProfile().profilePath], ['renewed', renewed().path]] as const) {
      const res = await tryConnect(ns, path, server);
      expect(res.connected, `${name}: ${explain(res)}`).toBe(true);
      expect(res.serverLogExcerpt).toMatch(new RegExp(`\\[${oldProfile().profileId}\\] Peer Connection Initiated`));
    }
  });

  it('when A is deleted, then the same running server refuses both the old and the renewed profile as revoked, and the CRL lists both serials', async () => {
    const { ns, server } = live();
    const out = await gw.ok('ov_user_delete', ['--email', A.email, '--traffic', 'all'], undefined);
    const revoked = /serial\(s\) ([0-9a-f, ]+)\./.exec(out)?.[1]?.split(', ').sort();
    expect(revoked, out).toEqual([oldProfile().serial, renewed().serial].sort());

    for (const [name, path] of [['old', oldProfile().profilePath], ['renewed', renewed().path]] as const) {
      const res = await tryConnect(ns, path, server);
      expect(res.connected, `${name}: ${explain(res)}`).toBe(false);
      expect(res.serverLogExcerpt, `${name}: ${explain(res)}`).toMatch(
        new RegExp(`VERIFY ERROR: depth=0, error=certificate revoked.*CN=${oldProfile().profileId}`),
      );
    }

    const crl = join(gw.stateDir, 'openvpn', 'crl.pem');
    const text = openssl(['crl', '-in', crl, '-noout', '-text']);
    expect(text).toContain(`Serial Number: ${oldProfile().serial.toUpperCase()}`);
    expect(text).toContain(`Serial Number: ${renewed().serial.toUpperCase()}`);
    expect(openssl(['crl', '-in', crl, '-CAfile', join(gw.stateDir, 'openvpn', 'ca.crt'), '-noout'])).toMatch(/verify OK/);
    // Never restarted.
    expect(server.log().match(/Initialization Sequence Completed/g)).toHaveLength(1);
    expect(() => process.kill(server.pid, 0)).not.toThrow();
  });

  it('when the lab is torn down, then its namespace is gone', async () => {
    const { ns: netns, server: s } = live();
    await s.stop();
    await netns.destroy();
    const list = spawnSync(findExecutable('ip') ?? 'ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    expect(list).not.toContain(netns.name);
  });
});
