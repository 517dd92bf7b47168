// Delivers a user's .ovpn profile: through SMTP (Amazon SES by default), or into an outbox
// directory of .eml files for gateways without a way out.
//
// The profile holds the user's private key and the settings hold the SMTP password: neither is
// ever logged (nodemailer's logger stays off), and a failure becomes a MailDeliveryError whose
// message is built here from error codes and the server's reply, never from the message itself.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createTransport, type Transporter } from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { Email } from '../../domain/values.js';
import type {
  EmailSettings,
  OutboxEmailSettings,
  SmtpEmailSettings,
} from '../../infra/config/email-conf.js';

export interface ProfileMail {
  to: string;
  firstName: string;
  lastName: string;
  traffic: 'all' | 'partial';
  kind: 'issued' | 'resent' | 'renewed';
  /** YYYY-MM-DD; the profile works through the whole day (UTC). */
  expirationDate: string;
  /** e.g. vpn-all.ovpn */
  attachmentName: string;
  /** The exact .ovpn bytes; they arrive unchanged. */
  profile: Buffer;
}

export type DeliveryReceipt =
  | { via: 'smtp'; messageId: string; response: string }
  | { via: 'outbox'; messageId: string; path: string };

export class MailDeliveryError extends Error {
  override readonly name = 'MailDeliveryError';
  constructor(
    /** One line, free of secrets, saying what an operator can check. */
    message: string,
    /** nodemailer's or the OS's error code (EAUTH, ETLS, ECONNREFUSED, EACCES, …) when known. */
    readonly code: string | undefined = undefined,
    /** The SMTP reply code when the server answered (535, 554, …). */
    readonly responseCode: number | undefined = undefined,
    /**
     * True when trying again later may succeed (no connection, timeouts, 4xx replies); false
     * when the configuration or the address must change first.
     */
    readonly transient = false,
  ) {
    super(message);
  }
}

export interface ProfileMailer {
  send(mail: ProfileMail): Promise<DeliveryReceipt>;
  close(): void;
}

export interface ProfileMailerOptions {
  /** Reads SMTP_TLS_CA_FILE; injectable for tests. */
  readFile?: (path: string) => Buffer;
  /** Names outbox files; injectable for tests. */
  now?: () => Date;
}

const TIMEOUT_MS = 15_000;
export const PROFILE_CONTENT_TYPE = 'application/x-openvpn-profile';

export function createProfileMailer(settings: EmailSettings, options: ProfileMailerOptions = {}): ProfileMailer {
  return settings.delivery === 'smtp'
    ? smtpMailer(settings, options.readFile ?? ((path) => readFileSync(path)))
    : outboxMailer(settings, options.now ?? (() => new Date()));
}

function smtpMailer(settings: SmtpEmailSettings, readFile: (path: string) => Buffer): ProfileMailer {
  const endpoint = `${settings.host}:${settings.port}`;
  let transporter: Transporter<SMTPTransport.SentMessageInfo, SMTPTransport.Options> | undefined;

  // Built on first use so that an unreadable CA file is reported by send(), the one place
  // callers already handle delivery failures.
  const transport = (): Transporter<SMTPTransport.SentMessageInfo, SMTPTransport.Options> => {
    transporter ??= createTransport({
      host: settings.host,
      port: settings.port,
      secure: settings.security === 'tls',
      requireTLS: settings.security === 'starttls',
      ignoreTLS: settings.security === 'none',
      ...(settings.auth && { auth: { user: settings.auth.user, pass: settings.auth.pass.reveal() } }),
      connectionTimeout: TIMEOUT_MS,
      greetingTimeout: TIMEOUT_MS,
      socketTimeout: TIMEOUT_MS,
      dnsTimeout: TIMEOUT_MS,
      tls: {
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        ...(settings.tlsCaFile !== undefined && { ca: loadCaBundle(settings.tlsCaFile, readFile) }),
      },
      logger: false,
      debug: false,
    });
    return transporter;
  };

  return {
    async send(mail) {
      const message = composeMessage(settings, mail);
      const smtp = transport();
      try {
        const info = await smtp.sendMail(message);
        return { via: 'smtp', messageId: info.messageId, response: oneLine(info.response) };
      } catch (err) {
        throw describeSmtpFailure(err, endpoint, settings.auth?.pass.reveal());
      }
    },
    close() {
      transporter?.close();
    },
  };
}

function loadCaBundle(path: string, readFile: (path: string) => Buffer): Buffer {
  let pem: Buffer;
  try {
    pem = readFile(path);
  } catch (err) {
    const code = errorCode(err);
    throw new MailDeliveryError(`cannot read SMTP_TLS_CA_FILE ${path} (${code ?? 'unknown error'})`, code);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new MailDeliveryError(`SMTP_TLS_CA_FILE ${path} holds no PEM certificate`, 'ECA');
  }
  return pem;
}

function outboxMailer(settings: OutboxEmailSettings, now: () => Date): ProfileMailer {
  const composer = createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
  const dir = settings.outboxDir;
  return {
    async send(mail) {
      const message = composeMessage(settings, mail);
      const info = await composer.sendMail(message);
      const bytes = info.message;
      if (!Buffer.isBuffer(bytes)) throw new MailDeliveryError('composing the message did not produce bytes');
      const name = `${compactUtc(now())}-${randomBytes(6).toString('hex')}.eml`;
      const path = join(dir, name);
      // A dot-file while incomplete: whatever picks up *.eml never sees half a message.
      const temp = join(dir, `.${name}.tmp`);
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const file = await open(temp, 'wx', 0o600);
        try {
          await file.writeFile(bytes);
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(temp, path);
      } catch (err) {
        await unlink(temp).catch(() => undefined);
        const code = errorCode(err);
        throw new MailDeliveryError(
          `cannot write the message to OUTBOX_DIR ${dir} (${code ?? 'unknown error'})`,
          code,
        );
      }
      return { via: 'outbox', messageId: info.messageId, path };
    },
    close() {
      composer.close();
    },
  };
}

function composeMessage(settings: EmailSettings, mail: ProfileMail): Mail.Options {
  // A string such as "a@x, b@y" would be split by nodemailer into two recipients: one profile,
  // one private key, exactly one mailbox.
  const to = Email.safeParse(mail.to);
  if (!to.success) throw new MailDeliveryError('the recipient is not a single valid email address', 'EENVELOPE');
  const fullName = `${mail.firstName} ${mail.lastName}`.trim();
  return {
    from: { name: settings.environmentName, address: settings.fromEmail },
    to: { name: fullName, address: to.data },
    envelope: { from: settings.fromEmail, to: [to.data] },
    subject: subjectOf(settings.environmentName, mail),
    text: bodyOf(settings.environmentName, mail),
    headers: { 'Auto-Submitted': 'auto-generated' },
    attachments: [
      {
        filename: mail.attachmentName,
        content: mail.profile,
        contentType: PROFILE_CONTENT_TYPE,
        // base64 carries any byte sequence unchanged (line endings, a leading dot, trailing spaces).
        contentTransferEncoding: 'base64',
      },
    ],
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

const TRAFFIC_LABEL = { all: 'full tunnel', partial: 'split tunnel' } as const;

function subjectOf(environmentName: string, mail: ProfileMail): string {
  const mode = `${mail.traffic} traffic, ${TRAFFIC_LABEL[mail.traffic]}`;
  switch (mail.kind) {
    case 'issued':
      return `[${environmentName}] Your new VPN profile (${mode})`;
    case 'resent':
      return `[${environmentName}] Your VPN profile, sent again (${mode})`;
    case 'renewed':
      return `[${environmentName}] Your renewed VPN profile (${mode})`;
  }
}

function bodyOf(environmentName: string, mail: ProfileMail): string {
  const opening = {
    issued: `Your VPN profile for ${environmentName} is attached.`,
    resent:
      `Here is your VPN profile for ${environmentName} again. It is the same profile as before: ` +
      `if it is already imported, there is nothing to do.`,
    renewed:
      `Your VPN profile for ${environmentName} has been renewed and the new profile is attached. ` +
      `Import it to replace your current one before that one expires.`,
  }[mail.kind];
  const traffic = {
    all: 'all: everything your device sends goes through the VPN.',
    partial:
      'partial: only traffic for the remote network goes through the VPN; the rest uses your own connection.',
  }[mail.traffic];
  const lines = [
    `Hello ${mail.firstName},`,
    '',
    opening,
    '',
    `Gateway:  ${environmentName}`,
    `Traffic:  ${traffic}`,
    `Expires:  ${mail.expirationDate} (end of the day, UTC)`,
    `Profile:  ${mail.attachmentName}`,
    '',
    'To use it:',
    '  - Windows, macOS, iOS, Android: open the attached file in OpenVPN Connect and import it.',
    `  - Linux command line: sudo openvpn --config ${mail.attachmentName}`,
  ];
  if (mail.traffic === 'partial') {
    lines.push(
      '  - Linux desktop (NetworkManager): after importing, enable "Use this connection only for',
      '    resources on its network" (IPv4 settings → Routes), or all traffic will use the VPN.',
    );
  }
  lines.push(
    '',
    'The file contains your private key: keep it to yourself and do not forward this email.',
    '',
    '-- ',
    environmentName,
    '',
  );
  return lines.join('\n');
}

interface NodemailerError {
  code?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
  message?: unknown;
}

function describeSmtpFailure(err: unknown, endpoint: string, password: string | undefined): MailDeliveryError {
  if (err instanceof MailDeliveryError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as NodemailerError;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const responseCode = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const command = typeof e.command === 'string' ? e.command : undefined;
  const rawMessage = typeof e.message === 'string' ? e.message : String(err);
  const reply = scrub(typeof e.response === 'string' ? e.response : '', password);
  const detail = scrub(rawMessage, password);
  // nodemailer replaces a socket error's code with its own (ESOCKET); the OS's code survives in the text.
  const osCode = /\b(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE|ETIMEDOUT)\b/.exec(
    rawMessage,
  )?.[1];
  const transientReply = responseCode !== undefined && responseCode >= 400 && responseCode < 500;
  const fail = (message: string, transient: boolean, withCode = code): MailDeliveryError =>
    new MailDeliveryError(oneLine(message), withCode, responseCode, transient || transientReply);

  switch (osCode) {
    case 'ECONNREFUSED':
      return fail(`SMTP server ${endpoint} refused the connection (ECONNREFUSED)`, true, osCode);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return fail(`cannot resolve the SMTP host of ${endpoint} (${osCode})`, osCode === 'EAI_AGAIN', osCode);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return fail(`SMTP server ${endpoint} is unreachable (${osCode})`, true, osCode);
    case 'ECONNRESET':
    case 'EPIPE':
      return fail(`SMTP server ${endpoint} dropped the connection (${osCode})`, true, osCode);
  }
  switch (code) {
    case 'ETIMEDOUT':
      return fail(`SMTP server ${endpoint} did not answer within ${TIMEOUT_MS / 1000} s`, true);
    case 'EDNS':
      return fail(`cannot resolve the SMTP host of ${endpoint} (${detail})`, true);
    case 'ETLS':
      if (command === 'STARTTLS' && reply !== '') {
        return fail(
          `SMTP server ${endpoint} does not support STARTTLS (${reply}); nothing was sent, as SMTP_SECURE=starttls forbids plaintext`,
          false,
        );
      }
      return fail(`TLS with SMTP server ${endpoint} failed: ${tlsHint(detail)}`, false);
    case 'EAUTH':
      return fail(`SMTP server ${endpoint}: authentication failed (${reply || detail})`, false);
    case 'ENOAUTH':
      return fail(`SMTP server ${endpoint} requires authentication but SMTP_USERNAME is empty`, false);
    case 'EENVELOPE':
      return fail(
        `SMTP server ${endpoint} refused the ${command === 'MAIL FROM' ? 'sender (FROM_EMAIL)' : 'recipient'} (${reply || detail})`,
        false,
      );
    case 'EMESSAGE':
      return fail(`SMTP server ${endpoint} rejected the message (${reply || detail})`, false);
    case 'ESOCKET':
    case 'ECONNECTION':
      // A certificate rejected during an implicit-TLS handshake arrives as a socket error.
      if (/certificate|self[- ]signed|altnames|SSL|TLS/i.test(detail)) {
        return fail(`TLS with SMTP server ${endpoint} failed: ${tlsHint(detail)}`, false);
      }
      return fail(`connection to SMTP server ${endpoint} failed (${detail})`, true);
  }
  return fail(`sending through SMTP server ${endpoint} failed (${reply || detail})`, false);
}

function tlsHint(detail: string): string {
  return /certificate|self[- ]signed|altnames/i.test(detail)
    ? `${detail} (for a private CA, set SMTP_TLS_CA_FILE)`
    : detail;
}

/** Removes the password from server-supplied text before it can reach a log line. */
function scrub(text: string, password: string | undefined): string {
  return password === undefined || password === '' ? text : text.split(password).join('[redacted]');
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 300 ? `${flat.slice(0, 297)}...` : flat;
}

/** 20260131T235959123Z: sorts by time, and is a valid file name everywhere. */
function compactUtc(instant: Date): string {
  return instant.toISOString().replace(/[-:.]/g, '');
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}
