// A user's whole life through the built CLI, with mail going to a REAL SMTP server on loopback
// (smtp-server: STARTTLS and AUTH required, certificate trusted only through SMTP_TLS_CA_FILE),
// every message read back with mailparser the way a mail client would see it.
//
// One gateway for the file; the tests are one scenario and run in order: each step uses what the
// previous ones left (users, serials, profile files, messages).

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCliBuilt, runCli, type CliCommand, type CliResult } from '../support/cli.js';

const SMTP_USER = 'ovl-lifecycle';
const SMTP_PASSWORD = 'pw-Lifecycle+Secret/42=';

/** YYYY-MM-DD, `days` after today (UTC). */
function utcDatePlus(days: number, from = Date.now()): string {
  return new Date(from + days * 86_400_000).toISOString().slice(0, 10);
}

interface Received {
  readonly secure: boolean;
  readonly user: string | undefined;
  readonly mailFrom: string | undefined;
  readonly rcptTo: string[];
  readonly parsed: ParsedMail;
}

/** A loopback SMTP server that can be stopped and started again on the same port. */
class LoopbackSmtp {
  readonly received: Received[] = [];
  port = 0;
  private server: SMTPServer | undefined;

  constructor(private readonly tls: { key: Buffer; cert: Buffer }) {}

  async start(): Promise<void> {
    const server = new SMTPServer({
      logger: false,
      key: this.tls.key,
      cert: this.tls.cert,
      // AUTH only over TLS (allowInsecureAuth is off) and MAIL only after AUTH (authOptional is
      // off): a client that skips STARTTLS cannot deliver anything.
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth: (auth, _session, callback) => {
        if (auth.username === SMTP_USER && auth.password === SMTP_PASSWORD) callback(null, { user: auth.username });
        else callback(new Error('Authentication credentials invalid'));
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          simpleParser(Buffer.concat(chunks)).then(
            (parsed) => {
              this.received.push({ ...facts(session), parsed });
              callback();
            },
            (err: Error) => callback(err),
          );
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function facts(session: SMTPServerSession): Omit<Received, 'parsed'> {
  const from = session.envelope.mailFrom;
  return {
    secure: session.secure,
    user: typeof session.user === 'string' ? session.user : undefined,
    mailFrom: from === false ? undefined : from.address,
    rcptTo: session.envelope.rcptTo.map((r) => r.address),
  };
}

let root: string;
let stateDir: string;
let configDir: string;
let logFile: string;
let smtp: LoopbackSmtp;
/** Every command's output, checked at the end for key material. */
const outputs: CliResult[] = [];

const env = (extra: Record<string, string | undefined> = {}) => ({
  OVL_STATE_DIR: stateDir,
  OVL_CONFIG_DIR: configDir,
  OVL_LOG_FILE: logFile,
  OVL_NOW: undefined,
  OVL_LOG_LEVEL: undefined,
  ...extra,
});

async function cli(command: CliCommand, args: readonly string[], extraEnv: Record<string, string | undefined> = {}): Promise<CliResult> {
  const res = await runCli(command, args, { env: env(extraEnv) });
  outputs.push(res);
  return res;
}

async function cliOk(command: CliCommand, args: readonly string[], extraEnv: Record<string, string | undefined> = {}): Promise<string> {
  const res = await cli(command, args, extraEnv);
  expect(res.code, `${command} ${args.join(' ')}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`).toBe(0);
  return res.stdout;
}

interface ListedUser {
  email: string;
  traffic: string;
  firstName: string;
  lastName: string;
  expirationDate: string;
  createdAt: string;
  autoRenew: boolean;
  serial: string;
  renewals: number;
}

async function listJson(command: 'ov_user_list' | 'ov_user_list_expired' = 'ov_user_list', extraEnv = {}): Promise<ListedUser[]> {
  return JSON.parse(await cliOk(command, ['--json'], extraEnv)) as ListedUser[];
}

interface Issued {
  serial: string;
  profilePath: string;
}

/** The serial and profile path an ov_user_add printed. */
function issuedFrom(stdout: string): Issued {
  const serial = /serial ([0-9a-f]+)/.exec(stdout)?.[1];
  const profilePath = /Kept at (\/\S+\.ovpn)\./.exec(stdout)?.[1];
  if (!serial || !profilePath) throw new Error(`no serial or profile path in: ${stdout}`);
  return { serial, profilePath };
}

function addArgs(u: { first: string; last: string; email: string; traffic: 'all' | 'partial'; expires: string; autoRenew?: 'yes' | 'no' }) {
  return [
    '--first-name', u.first,
    '--last-name', u.last,
    '--email', u.email,
    '--traffic', u.traffic,
    '--expiration-date', u.expires,
    '--creation-reason', `lifecycle test: ${u.first}`,
    ...(u.autoRenew ? ['--auto-renew', u.autoRenew] : []),
  ];
}

/** The one message that arrived since `before`, with its single attachment. */
function onlyNewMessage(before: number): Received & { attachment: Buffer; attachmentName: string | undefined } {
  const fresh = smtp.received.slice(before);
  expect(fresh).toHaveLength(1);
  const message = fresh[0]!;
  expect(message.parsed.attachments).toHaveLength(1);
  const [attachment] = message.parsed.attachments;
  return { ...message, attachment: attachment!.content, attachmentName: attachment!.filename };
}

function certificateSerialIn(profile: Buffer): string {
  const pem = /<cert>\n([\s\S]+?)\n<\/cert>/.exec(profile.toString('utf8'))?.[1];
  if (!pem) throw new Error('no <cert> block in the profile');
  return new X509Certificate(pem).serialNumber.toLowerCase();
}

const ADA = { first: 'Ada', last: 'Lovelace', email: 'ada@example.com', traffic: 'all', expires: utcDatePlus(400) } as const;
const BOB = { first: 'Bob', last: 'Builder', email: 'bob@example.com', traffic: 'partial', expires: utcDatePlus(30), autoRenew: 'yes' } as const;
const CAROL = { first: 'Carol', last: 'Shaw', email: 'carol@example.com', traffic: 'all', expires: utcDatePlus(90) } as const;

/** What earlier steps learnt; a step that needs a missing entry fails saying so. */
const issued = new Map<string, Issued>();
function issuedTo(key: string): Issued {
  const found = issued.get(key);
  if (!found) throw new Error(`an earlier step failed: nothing was issued to ${key}`);
  return found;
}
const firstAttachment = new Map<string, Buffer>();

beforeAll(async () => {
  assertCliBuilt();
  root = mkdtempSync(join(tmpdir(), 'ovl-lifecycle-'));
  stateDir = join(root, 'state');
  configDir = join(root, 'etc');
  logFile = join(root, 'log', 'ovpn-ledger.log');

  // A self-signed certificate for 127.0.0.1: the CLI must trust it only via SMTP_TLS_CA_FILE.
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(root, 'smtp-key.pem'), '-out', join(root, 'smtp-cert.pem'), '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  smtp = new LoopbackSmtp({ key: readFileSync(join(root, 'smtp-key.pem')), cert: readFileSync(join(root, 'smtp-cert.pem')) });
  await smtp.start();

  await cliOk('ov_init', ['--public-host', 'vpn.example.com', '--route', '10.20.0.0/16']);
  writeFileSync(
    join(configDir, 'email.conf'),
    [
      'SMTP_HOST=127.0.0.1',
      `SMTP_PORT=${smtp.port}`,
      'SMTP_SECURE=starttls',
      `SMTP_TLS_CA_FILE=${join(root, 'smtp-cert.pem')}`,
      `SMTP_USERNAME=${SMTP_USER}`,
      `SMTP_PASSWORD=${SMTP_PASSWORD}`,
      'FROM_EMAIL=vpn@example.com',
      'ENVIRONMENT_NAME="Lifecycle gateway"',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}, 120_000);

afterAll(async () => {
  await smtp?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('given an initialised gateway mailing through an SMTP server that requires STARTTLS and AUTH', () => {
  it.each([ADA, BOB])(
    'when ov_user_add adds $email ($traffic), then exactly one mail reaches that address over TLS, its .ovpn equal to the profile file on disk',
    async (user) => {
      const before = smtp.received.length;
      const stdout = await cliOk('ov_user_add', addArgs(user));
      const got = issuedFrom(stdout);
      issued.set(`${user.email}/${user.traffic}`, got);

      const message = onlyNewMessage(before);
      expect(message.secure).toBe(true);
      expect(message.user).toBe(SMTP_USER);
      expect(message.mailFrom).toBe('vpn@example.com');
      expect(message.rcptTo).toEqual([user.email]);
      expect(message.parsed.to && !Array.isArray(message.parsed.to) ? message.parsed.to.value.map((a) => a.address) : []).toEqual([user.email]);
      expect(message.parsed.subject).toContain('Lifecycle gateway');
      expect(message.attachmentName).toBe(`vpn-${user.traffic}.ovpn`);

      const onDisk = readFileSync(got.profilePath);
      expect(message.attachment.equals(onDisk)).toBe(true);
      firstAttachment.set(`${user.email}/${user.traffic}`, message.attachment);
      expect(certificateSerialIn(onDisk)).toBe(got.serial);
      const text = onDisk.toString('utf8');
      if (user.traffic === 'all') {
        expect(text).toContain('redirect-gateway def1');
      } else {
        expect(text).toContain('pull-filter ignore "route "');
        expect(text).toContain('route 10.20.0.0 255.255.0.0');
        expect(text).not.toContain('redirect-gateway');
      }
    },
  );

  it('when ov_user_list --json runs, then each user has exactly the documented fields, well-formed', async () => {
    const users = await listJson();
    expect(users.map((u) => `${u.email}/${u.traffic}`)).toEqual(['ada@example.com/all', 'bob@example.com/partial']);
    for (const u of users) {
      expect(Object.keys(u).sort()).toEqual(
        ['autoRenew', 'createdAt', 'email', 'expirationDate', 'firstName', 'lastName', 'renewals', 'serial', 'traffic'],
      );
      expect(u.expirationDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(u.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
      expect(new Date(u.createdAt).toISOString().slice(0, 19)).toBe(u.createdAt.slice(0, 19));
      expect(Math.abs(Date.parse(u.createdAt) - Date.now())).toBeLessThan(10 * 60_000);
      expect(typeof u.autoRenew).toBe('boolean');
      expect(u.renewals).toBe(0);
    }
    expect(users[0]).toMatchObject({ firstName: 'Ada', lastName: 'Lovelace', expirationDate: ADA.expires, autoRenew: false });
    expect(users[0]?.serial).toBe(issuedTo('ada@example.com/all').serial);
    expect(users[1]).toMatchObject({ firstName: 'Bob', lastName: 'Builder', expirationDate: BOB.expires, autoRenew: true });
    expect(users[1]?.serial).toBe(issuedTo('bob@example.com/partial').serial);
  });

  it('when ov_user_list runs without --json, then the table shows both users', async () => {
    const lines = (await cliOk('ov_user_list', [])).trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^EMAIL\s+TRAFFIC\s+NAME\s+EXPIRES/);
    expect(lines[1]).toMatch(new RegExp(`^ada@example\\.com\\s+all\\s+Ada Lovelace\\s+${ADA.expires}\\s.*\\sno$`));
    expect(lines[2]).toMatch(new RegExp(`^bob@example\\.com\\s+partial\\s+Bob Builder\\s+${BOB.expires}\\s.*\\syes$`));
  });

  it('when an address is given in upper case, then it is the same pair as in lower case', async () => {
    const again = await cli('ov_user_add', addArgs({ ...ADA, email: 'ADA@Example.COM' }));
    expect(again.code, again.stderr).toBe(3);
    expect(again.stderr).toContain('ada@example.com already has an active all profile');

    const before = smtp.received.length;
    await cliOk('ov_user_resend', ['--email', 'Ada@EXAMPLE.com', '--traffic', 'all']);
    expect(onlyNewMessage(before).rcptTo).toEqual(['ada@example.com']);
    expect((await listJson()).filter((u) => u.email.toLowerCase() === 'ada@example.com')).toHaveLength(1);
  });

  it('when ov_user_resend runs, then the same bytes arrive again and the list does not change', async () => {
    const ada = issuedTo('ada@example.com/all');
    const listBefore = await listJson();
    const before = smtp.received.length;

    const stdout = await cliOk('ov_user_resend', ['--email', 'ada@example.com', '--traffic', 'all']);

    expect(stdout).toContain(ada.serial);
    const message = onlyNewMessage(before);
    expect(message.rcptTo).toEqual(['ada@example.com']);
    expect(message.parsed.subject).toMatch(/again/);
    expect(message.attachment.equals(firstAttachment.get('ada@example.com/all') ?? Buffer.alloc(0))).toBe(true);
    expect(message.attachment.equals(readFileSync(ada.profilePath))).toBe(true);
    expect(await listJson()).toEqual(listBefore);
  });

  it('when auto-renew is enabled, disabled, and disabled again, then --json follows and the repeat changes nothing', async () => {
    const adaAutoRenew = async () => (await listJson()).find((u) => u.email === 'ada@example.com')?.autoRenew;
    const pair = ['--email', 'ada@example.com', '--traffic', 'all'];

    expect(await cliOk('ov_user_auto_renew', [...pair, '--enable'])).toMatch(/enabled/);
    expect(await adaAutoRenew()).toBe(true);
    expect(await cliOk('ov_user_auto_renew', ['--email', 'ADA@example.com', '--traffic', 'all', '--disable'])).toMatch(/disabled/);
    expect(await adaAutoRenew()).toBe(false);
    expect(await cliOk('ov_user_auto_renew', [...pair, '--disable'])).toMatch(/already disabled.*; nothing changed/);
    expect(await adaAutoRenew()).toBe(false);
    // Bob's flag is his own.
    expect((await listJson()).find((u) => u.email === 'bob@example.com')?.autoRenew).toBe(true);
  });

  it("when ov_user_list_expired runs after bob's expiration date, then it lists exactly bob; on or before it, none", async () => {
    const dayAfter = `${utcDatePlus(1, Date.parse(`${BOB.expires}T00:00:00Z`))}T00:00:01Z`;
    const expired = await listJson('ov_user_list_expired', { OVL_NOW: dayAfter });
    expect(expired.map((u) => `${u.email}/${u.traffic}`)).toEqual(['bob@example.com/partial']);
    expect(expired[0]?.expirationDate).toBe(BOB.expires);

    expect(await listJson('ov_user_list_expired', { OVL_NOW: `${BOB.expires}T23:59:00Z` })).toEqual([]);
    expect(await listJson('ov_user_list_expired')).toEqual([]);
    expect((await cliOk('ov_user_list_expired', [])).trim()).toBe('No expired profiles.');
    const table = await cliOk('ov_user_list_expired', [], { OVL_NOW: dayAfter });
    expect(table).toContain('bob@example.com');
    expect(table).not.toContain('ada@example.com');
  });

  it('when bob is deleted, then he leaves the list, and adding the same pair again issues a new serial', async () => {
    const old = issuedTo('bob@example.com/partial');
    const deleted = await cliOk('ov_user_delete', ['--email', 'bob@example.com', '--traffic', 'partial', '--reason', 'contract ended']);
    expect(deleted).toContain(old.serial);
    expect((await listJson()).map((u) => u.email)).toEqual(['ada@example.com']);

    const before = smtp.received.length;
    const again = issuedFrom(await cliOk('ov_user_add', addArgs(BOB)));
    expect(again.serial).not.toBe(old.serial);
    issued.set('bob@example.com/partial', again);
    const message = onlyNewMessage(before);
    expect(message.rcptTo).toEqual(['bob@example.com']);
    expect(message.attachment.equals(readFileSync(again.profilePath))).toBe(true);
    const bob = (await listJson()).find((u) => u.email === 'bob@example.com');
    expect(bob).toMatchObject({ traffic: 'partial', serial: again.serial, renewals: 0 });
  });

  it('when the SMTP server is down, then ov_user_add exits 4, the user is listed with the profile on disk, and ov_user_resend delivers it once the server is back', async () => {
    await smtp.stop();
    const failed = await cli('ov_user_add', addArgs(CAROL));
    await smtp.start();

    expect(failed.code, failed.stderr).toBe(4);
    expect(failed.stdout).toBe('');
    const lines = failed.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('profile issued');
    expect(lines[0]).toContain('ov_user_resend --email carol@example.com --traffic all');
    const profilePath = /saved at (\/\S+\.ovpn)/.exec(lines[0] ?? '')?.[1];
    const serial = /serial ([0-9a-f]+)/.exec(lines[0] ?? '')?.[1];
    expect(profilePath && existsSync(profilePath)).toBe(true);
    const carol = (await listJson()).find((u) => u.email === 'carol@example.com');
    expect(carol).toMatchObject({ traffic: 'all', serial });
    issued.set('carol@example.com/all', { serial: serial!, profilePath: profilePath! });

    const before = smtp.received.length;
    await cliOk('ov_user_resend', ['--email', 'carol@example.com', '--traffic', 'all']);
    const message = onlyNewMessage(before);
    expect(message.rcptTo).toEqual(['carol@example.com']);
    expect(message.attachment.equals(readFileSync(profilePath!))).toBe(true);
  });

  it('then every secret file is 0600, the CRL 0644 and the ledger 0600', () => {
    const mode = (path: string) => statSync(path).mode & 0o777;
    const profiles = join(stateDir, 'profiles');
    const profileFiles = readdirSync(profiles, { recursive: true, encoding: 'utf8' })
      .map((p) => join(profiles, p))
      .filter((p) => statSync(p).isFile());
    // ada, bob (deleted), bob again, carol
    expect(profileFiles.filter((p) => p.endsWith('.ovpn'))).toHaveLength(4);
    for (const p of profileFiles) expect({ p, mode: mode(p).toString(8) }).toEqual({ p, mode: '600' });

    const keys = join(stateDir, 'keys');
    const keyFiles = readdirSync(keys, { recursive: true, encoding: 'utf8' })
      .map((p) => join(keys, p))
      .filter((p) => statSync(p).isFile());
    expect(keyFiles.filter((p) => p.includes('/clients/'))).toHaveLength(4);
    expect(keyFiles.map((p) => p.slice(keys.length + 1))).toEqual(
      expect.arrayContaining(['ca.key', 'server.key', 'tls-crypt.key', 'profile-id.key']),
    );
    for (const p of keyFiles) expect({ p, mode: mode(p).toString(8) }).toEqual({ p, mode: '600' });
    for (const serial of [...issued.values()].map((i) => i.serial)) {
      expect(existsSync(join(keys, 'clients', `${serial}.key`))).toBe(true);
    }

    expect(mode(join(stateDir, 'openvpn', 'crl.pem')).toString(8)).toBe('644');
    expect(mode(join(stateDir, 'ledger.sqlite')).toString(8)).toBe('600');
  });

  it('then no private key (nor the SMTP password) is in the events table, the log file or any command output', () => {
    const db = new Database(join(stateDir, 'ledger.sqlite'), { readonly: true, fileMustExist: true });
    let events: { type: string; data: string; metadata: string }[];
    try {
      events = db.prepare('SELECT type, data, metadata FROM events ORDER BY position').all() as typeof events;
    } finally {
      db.close();
    }
    expect(events.filter((e) => e.type === 'ProfileIssued')).toHaveLength(4);
    // The events do carry the (public) certificates: the check below would find a PEM if one leaked.
    expect(events.some((e) => e.data.includes('BEGIN CERTIFICATE'))).toBe(true);
    for (const e of events) {
      expect(e.data + e.metadata).not.toContain('PRIVATE KEY');
      expect(e.data + e.metadata).not.toContain(SMTP_PASSWORD);
    }

    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain('profile issued');
    expect(log).toContain('profile delivered');
    expect(log).not.toContain('PRIVATE KEY');
    expect(log).not.toContain(SMTP_PASSWORD);

    expect(outputs.length).toBeGreaterThan(10);
    for (const o of outputs) {
      expect(o.stdout + o.stderr).not.toContain('PRIVATE KEY');
      expect(o.stdout + o.stderr).not.toContain(SMTP_PASSWORD);
    }
  });
});
