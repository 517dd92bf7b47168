// The mailer against a real SMTP server on loopback (smtp-server), each message read back with
// mailparser: what a user's mail client would see, down to the attachment's bytes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createProfileMailer,
  MailDeliveryError,
  type ProfileMail,
} from '../../adapters/mail/profile-mailer.js';
import { parseEmailConf, type EmailSettings } from '../../infra/config/email-conf.js';

const USERNAME = 'AKIATESTUSER';
const PASSWORD = 'pw-Correct+Horse/Battery=';

// Bytes a careless transfer would change: CRLF and LF mixed, a line starting with "." (SMTP
// dot-stuffing), trailing spaces, a "From " line, no final newline, and bytes that are not UTF-8.
const PROFILE = Buffer.concat([
  Buffer.from('client\r\ndev tun\nremote vpn.example.com 1194 udp\n.\n..leading dots\nFrom me  \n'),
  Buffer.from('<key>\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n</key>'),
  Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a]),
]);

const MAIL: ProfileMail = {
  to: 'john.doe@example.com',
  firstName: 'John',
  lastName: 'Doe',
  traffic: 'all',
  kind: 'issued',
  expirationDate: '2026-12-31',
  attachmentName: 'vpn-all.ovpn',
  profile: PROFILE,
};

type SessionFacts = Pick<SMTPServerSession, 'secure' | 'user' | 'envelope'>;

interface Received {
  session: SessionFacts;
  parsed: ParsedMail;
}

/** A loopback SMTP server that records what it was told; port 0 lets the OS pick a free port. */
class TestSmtpServer {
  readonly received: Received[] = [];
  readonly logins: { method: string; username: string; passwordMatched: boolean }[] = [];
  mailFromCalls = 0;
  private readonly server: SMTPServer;

  constructor(options: SMTPServerOptions) {
    this.server = new SMTPServer({
      logger: false,
      ...options,
      onAuth: (auth, _session, callback) => {
        const passwordMatched = auth.password === PASSWORD;
        this.logins.push({ method: auth.method, username: auth.username ?? '', passwordMatched });
        if (auth.username === USERNAME && passwordMatched) callback(null, { user: auth.username });
        else callback(new Error('Authentication credentials invalid'));
      },
      onMailFrom: (_address, _session, callback) => {
        this.mailFromCalls++;
        callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          simpleParser(Buffer.concat(chunks)).then(
            (parsed) => {
              // Cloned: the server reuses the session object for the next transaction.
              this.received.push({ session: structuredClone(sessionFacts(session)), parsed });
              callback();
            },
            (err: Error) => callback(err),
          );
        });
      },
    });
  }

  port = 0;

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.server.address() as AddressInfo).port;
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function sessionFacts(session: SMTPServerSession): SessionFacts {
  return { secure: session.secure, user: session.user, envelope: session.envelope };
}

function settingsFrom(lines: string[]): EmailSettings {
  const parsed = parseEmailConf(lines.join('\n') + '\n', 'email.conf');
  if (E.isLeft(parsed)) throw new Error(parsed.left.message);
  return parsed.right;
}

function startTlsConf(port: number, caFile: string, password = PASSWORD): string[] {
  return [
    'SMTP_HOST=127.0.0.1',
    `SMTP_PORT=${port}`,
    `SMTP_TLS_CA_FILE=${caFile}`,
    `SMTP_USERNAME=${USERNAME}`,
    `SMTP_PASSWORD=${password}`,
    'FROM_EMAIL=no_reply@example.com',
    'ENVIRONMENT_NAME=VPN Server',
  ];
}

async function sendExpectingFailure(settings: EmailSettings): Promise<MailDeliveryError> {
  const mailer = createProfileMailer(settings);
  try {
    await mailer.send(MAIL);
  } catch (err) {
    expect(err).toBeInstanceOf(MailDeliveryError);
    return err as MailDeliveryError;
  } finally {
    mailer.close();
  }
  throw new Error('expected the delivery to fail');
}

async function freePortWithNothingListening(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

let dir: string;
let caFile: string;
let key: Buffer;
let cert: Buffer;
const servers: TestSmtpServer[] = [];

async function startServer(options: SMTPServerOptions): Promise<TestSmtpServer> {
  const server = await new TestSmtpServer(options).listen();
  servers.push(server);
  return server;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ovpn-ledger-mail-'));
  // A self-signed certificate for 127.0.0.1: the client must trust it only through
  // SMTP_TLS_CA_FILE, never by turning verification off.
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  key = readFileSync(join(dir, 'key.pem'));
  cert = readFileSync(join(dir, 'cert.pem'));
  caFile = join(dir, 'cert.pem');
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('profile mailer over SMTP', () => {
  it.each(['PLAIN', 'LOGIN'])(
    'given STARTTLS required and AUTH %s, then the profile arrives intact, encrypted and authenticated',
    async (method) => {
      const server = await startServer({ key, cert, authMethods: [method] });
      const mailer = createProfileMailer(settingsFrom(startTlsConf(server.port, caFile)));

      const receipt = await mailer.send(MAIL);
      mailer.close();

      expect(receipt).toMatchObject({ via: 'smtp' });
      expect(receipt.messageId).toMatch(/^<.+@example\.com>$/);
      expect(server.logins).toEqual([{ method, username: USERNAME, passwordMatched: true }]);
      expect(server.received).toHaveLength(1);
      const [{ session, parsed }] = server.received as [Received];
      expect(session.secure).toBe(true);
      expect(session.user).toBe(USERNAME);
      expect(session.envelope.rcptTo.map((r) => r.address)).toEqual(['john.doe@example.com']);
      expect(session.envelope.mailFrom && session.envelope.mailFrom.address).toBe('no_reply@example.com');
      expect(parsed.from?.value[0]?.address).toBe('no_reply@example.com');
      expect(parsed.subject).toContain('VPN Server');
      expect(parsed.subject).toContain('all traffic');
      expect(parsed.subject).toContain('new');
      expect(parsed.messageId).toBe(receipt.messageId);
      expect(parsed.text).toContain('Hello John,');
      expect(parsed.text).toContain('2026-12-31');
      expect(parsed.text).toContain('openvpn --config vpn-all.ovpn');
      expect(parsed.text).toContain('OpenVPN Connect');
      expect(parsed.attachments).toHaveLength(1);
      const [attachment] = parsed.attachments;
      expect(attachment?.filename).toBe('vpn-all.ovpn');
      expect(attachment?.contentType).toBe('application/x-openvpn-profile');
      expect(Buffer.compare(attachment?.content ?? Buffer.alloc(0), PROFILE)).toBe(0);
    },
  );

  it('given SMTP_SECURE=tls, then implicit TLS from the first byte', async () => {
    const server = await startServer({ secure: true, key, cert, authMethods: ['PLAIN'] });
    const mailer = createProfileMailer(settingsFrom([...startTlsConf(server.port, caFile), 'SMTP_SECURE=tls']));

    await mailer.send(MAIL);
    mailer.close();

    const [{ session, parsed }] = server.received as [Received];
    expect(session.secure).toBe(true);
    expect(server.logins).toEqual([{ method: 'PLAIN', username: USERNAME, passwordMatched: true }]);
    expect(Buffer.compare(parsed.attachments[0]?.content ?? Buffer.alloc(0), PROFILE)).toBe(0);
  });

  it('given SMTP_SECURE=none and no username, then plain SMTP and no AUTH, even when offered', async () => {
    const server = await startServer({ allowInsecureAuth: true, authOptional: true, disabledCommands: ['STARTTLS'] });
    const mailer = createProfileMailer(
      settingsFrom([
        'SMTP_HOST=127.0.0.1',
        `SMTP_PORT=${server.port}`,
        'SMTP_SECURE=none',
        'SMTP_USERNAME=',
        'SMTP_PASSWORD=ignored',
        'FROM_EMAIL=no_reply@example.com',
        'ENVIRONMENT_NAME=Lab Gateway',
      ]),
    );

    const receipt = await mailer.send({ ...MAIL, kind: 'renewed', traffic: 'partial', attachmentName: 'vpn-partial.ovpn' });
    mailer.close();

    expect(receipt.via).toBe('smtp');
    expect(server.logins).toEqual([]);
    const [{ session, parsed }] = server.received as [Received];
    expect(session.secure).toBe(false);
    expect(parsed.subject).toContain('Lab Gateway');
    expect(parsed.subject).toMatch(/renewed/i);
    expect(parsed.subject).toContain('partial');
    expect(Buffer.compare(parsed.attachments[0]?.content ?? Buffer.alloc(0), PROFILE)).toBe(0);
  });

  it('given STARTTLS required and a server that does not offer it, then MailDeliveryError and nothing sent', async () => {
    const server = await startServer({ allowInsecureAuth: true, disabledCommands: ['STARTTLS'] });

    const error = await sendExpectingFailure(settingsFrom(startTlsConf(server.port, caFile)));

    expect(error.message).toContain(`127.0.0.1:${server.port}`);
    expect(error.message).toContain('STARTTLS');
    expect(error.code).toBe('ETLS');
    expect(server.logins).toEqual([]);
    expect(server.mailFromCalls).toBe(0);
    expect(server.received).toEqual([]);
  });

  it('given a wrong password, then MailDeliveryError that names the failure and not the password', async () => {
    const server = await startServer({ key, cert, authMethods: ['PLAIN'] });
    const wrong = 'Wrong-Secret-123';

    const error = await sendExpectingFailure(settingsFrom(startTlsConf(server.port, caFile, wrong)));

    expect(error.message).toMatch(/authentication failed \(535/);
    expect(error.code).toBe('EAUTH');
    expect(error.transient).toBe(false);
    for (const text of [error.message, String(error.stack), JSON.stringify(error), String(error)]) {
      expect(text).not.toContain(wrong);
      expect(text).not.toContain(Buffer.from(`\0${USERNAME}\0${wrong}`).toString('base64'));
    }
    expect(server.logins).toEqual([{ method: 'PLAIN', username: USERNAME, passwordMatched: false }]);
    expect(server.received).toEqual([]);
  });

  it('given a server certificate the client does not trust, then MailDeliveryError and nothing sent', async () => {
    const server = await startServer({ key, cert, authMethods: ['PLAIN'] });
    const conf = startTlsConf(server.port, caFile).filter((l) => !l.startsWith('SMTP_TLS_CA_FILE='));

    const error = await sendExpectingFailure(settingsFrom(conf));

    expect(error.message).toContain('TLS');
    expect(error.message).toContain('SMTP_TLS_CA_FILE');
    expect(server.logins).toEqual([]);
    expect(server.received).toEqual([]);
  });

  it('given nothing listening on the port, then MailDeliveryError naming host:port', async () => {
    const port = await freePortWithNothingListening();

    const error = await sendExpectingFailure(settingsFrom(startTlsConf(port, caFile)));

    expect(error.message).toBe(`SMTP server 127.0.0.1:${port} refused the connection (ECONNREFUSED)`);
    expect(error.transient).toBe(true);
  });

  it('given an unreadable SMTP_TLS_CA_FILE, then MailDeliveryError naming the file', async () => {
    const missing = join(dir, 'no-such-ca.pem');
    const error = await sendExpectingFailure(settingsFrom(startTlsConf(1, missing)));
    expect(error.message).toBe(`cannot read SMTP_TLS_CA_FILE ${missing} (ENOENT)`);
  });

  it('given a recipient that is a list of addresses, then nothing is sent', async () => {
    const server = await startServer({ key, cert, authMethods: ['PLAIN'] });
    const mailer = createProfileMailer(settingsFrom(startTlsConf(server.port, caFile)));
    await expect(mailer.send({ ...MAIL, to: 'a@example.com, b@example.com' })).rejects.toBeInstanceOf(MailDeliveryError);
    mailer.close();
    expect(server.mailFromCalls).toBe(0);
  });
});

describe('profile mailer into an outbox', () => {
  it('given DELIVERY=outbox, then one 0600 .eml in a new 0700 directory that parses back to the same bytes', async () => {
    const outbox = join(dir, 'spool', 'outbox');
    const mailer = createProfileMailer(
      settingsFrom([
        'DELIVERY=outbox',
        `OUTBOX_DIR=${outbox}`,
        'FROM_EMAIL=no_reply@example.com',
        'ENVIRONMENT_NAME=VPN Server',
      ]),
      { now: () => new Date('2026-01-31T23:59:58.123Z') },
    );

    const receipt = await mailer.send({ ...MAIL, kind: 'resent' });
    mailer.close();

    const files = readdirSync(outbox);
    expect(files).toHaveLength(1);
    const [name] = files as [string];
    expect(name).toMatch(/^20260131T235958123Z-[0-9a-f]{12}\.eml$/);
    expect(receipt).toEqual({ via: 'outbox', messageId: expect.any(String), path: join(outbox, name) });
    expect(statSync(join(outbox, name)).mode & 0o777).toBe(0o600);
    expect(statSync(outbox).mode & 0o777).toBe(0o700);

    const parsed = await simpleParser(readFileSync(join(outbox, name)));
    expect(parsed.messageId).toBe(receipt.messageId);
    expect(parsed.to && !Array.isArray(parsed.to) && parsed.to.value[0]?.address).toBe('john.doe@example.com');
    expect(parsed.subject).toContain('VPN Server');
    expect(parsed.subject).toMatch(/again/);
    expect(parsed.attachments[0]?.contentType).toBe('application/x-openvpn-profile');
    expect(Buffer.compare(parsed.attachments[0]?.content ?? Buffer.alloc(0), PROFILE)).toBe(0);
  });

  it('given an OUTBOX_DIR that cannot be created, then MailDeliveryError naming it', async () => {
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, '');
    const outbox = join(blocker, 'outbox');
    const mailer = createProfileMailer(
      settingsFrom(['DELIVERY=outbox', `OUTBOX_DIR=${outbox}`, 'FROM_EMAIL=no_reply@example.com', 'ENVIRONMENT_NAME=VPN Server']),
    );
    await expect(mailer.send(MAIL)).rejects.toThrow(`cannot write the message to OUTBOX_DIR ${outbox} (ENOTDIR)`);
  });
});
