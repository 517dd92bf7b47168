// A real SMTP server on 127.0.0.1 for tests that drive the built CLI: STARTTLS with a self-signed
// certificate (the CLI trusts it only through SMTP_TLS_CA_FILE), AUTH required, every message
// parsed back with mailparser. It can be stopped (nothing listens on the port any more) and
// started again on the same port.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';

export interface ReceivedMail {
  readonly secure: boolean;
  readonly user: string | undefined;
  readonly mailFrom: string | undefined;
  readonly rcptTo: string[];
  readonly parsed: ParsedMail;
}

export interface SmtpTlsFiles {
  readonly keyPath: string;
  readonly certPath: string;
}

/** Writes a self-signed P-256 key and certificate for 127.0.0.1 into `dir` with openssl. */
export function makeSelfSignedSmtpCertificate(dir: string): SmtpTlsFiles {
  const keyPath = join(dir, 'smtp-key.pem');
  const certPath = join(dir, 'smtp-cert.pem');
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyPath, '-out', certPath, '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  return { keyPath, certPath };
}

export class LoopbackSmtp {
  readonly received: ReceivedMail[] = [];
  /** 0 until the first start; then the port every later start reuses. */
  port = 0;
  private server: SMTPServer | undefined;
  private held: { arrived: () => void; released: Promise<void> } | undefined;

  constructor(
    private readonly tls: SmtpTlsFiles,
    private readonly credentials: { readonly user: string; readonly password: string },
  ) {}

  get running(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = new SMTPServer({
      logger: false,
      key: readFileSync(this.tls.keyPath),
      cert: readFileSync(this.tls.certPath),
      // AUTH only over TLS and MAIL only after AUTH: a client that skips STARTTLS delivers nothing.
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth: (auth, _session, callback) => {
        if (auth.username === this.credentials.user && auth.password === this.credentials.password) callback(null, { user: auth.username });
        else callback(new Error('Authentication credentials invalid'));
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const facts = sessionFacts(session);
          const held = this.held;
          this.held = undefined;
          held?.arrived();
          (held?.released ?? Promise.resolve())
            .then(() => simpleParser(Buffer.concat(chunks)))
            .then(
              (parsed) => {
                // Recorded before the 250 reply, so a command that exited has its mail here.
                this.received.push({ ...facts, parsed });
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

  /**
   * Holds the next message: its DATA gets no reply (so the sender waits, mid-delivery) until
   * `release` is called. `arrived` resolves once the whole message has been received.
   */
  holdNextMessage(): { readonly arrived: Promise<void>; release(): void } {
    let arrived!: () => void;
    let release!: () => void;
    const arrivedPromise = new Promise<void>((resolve) => (arrived = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.held = { arrived, released };
    return { arrived: arrivedPromise, release };
  }

  /** Closes the listening socket: afterwards a connection to the port is refused. Idempotent. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The messages addressed to `address` (envelope recipient). */
  to(address: string): ReceivedMail[] {
    return this.received.filter((m) => m.rcptTo.includes(address));
  }
}

function sessionFacts(session: SMTPServerSession): Omit<ReceivedMail, 'parsed'> {
  const from = session.envelope.mailFrom;
  return {
    secure: session.secure,
    user: typeof session.user === 'string' ? session.user : undefined,
    mailFrom: from === false ? undefined : from.address,
    rcptTo: session.envelope.rcptTo.map((r) => r.address),
  };
}
