// /opt/0x4447/configs/email.conf: the manual's five keys (AWS_REGION, SMTP_USERNAME,
// SMTP_PASSWORD, FROM_EMAIL, ENVIRONMENT_NAME) keep their meaning, so an existing file works
// unchanged and sends through Amazon SES. The optional keys let the same file point at another
// SMTP server, or at an outbox directory when the gateway has no way out to the internet.
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { Email } from '../../domain/values.js';
import { decodeEnvFile, type ConfigFileError } from './env-file.js';

export type SmtpSecurity = 'starttls' | 'tls' | 'none';

/**
 * A secret that does not leak by accident: logging, JSON-serialising or string-interpolating a
 * settings object shows `[redacted]`; only `reveal()` gives the value, at the one place it is used.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[redacted]';
  }
}

interface CommonEmailSettings {
  /** The envelope sender and From address; SES needs it to be a verified identity. */
  readonly fromEmail: string;
  /** Names the gateway in the subject and the body, so a recipient knows who sent the profile. */
  readonly environmentName: string;
}

export interface SmtpEmailSettings extends CommonEmailSettings {
  readonly delivery: 'smtp';
  readonly host: string;
  readonly port: number;
  readonly security: SmtpSecurity;
  /** Undefined when SMTP_USERNAME is empty: the client then never sends AUTH. */
  readonly auth: { readonly user: string; readonly pass: Secret } | undefined;
  /** PEM bundle trusted in addition to the system CAs; certificates are verified either way. */
  readonly tlsCaFile: string | undefined;
}

export interface OutboxEmailSettings extends CommonEmailSettings {
  readonly delivery: 'outbox';
  /** Absolute; each message becomes one .eml file in it. */
  readonly outboxDir: string;
}

export type EmailSettings = SmtpEmailSettings | OutboxEmailSettings;

export const SES_PLACEHOLDER_PREFIX = 'REPLACE_WITH_';

export function sesSmtpHost(region: string): string {
  return `email-smtp.${region}.amazonaws.com`;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const HOST_NAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

const AbsolutePath = z
  .string()
  .refine((p) => isAbsolute(p), 'must be an absolute path')
  .refine((p) => !p.includes('\0'), 'must not contain a NUL character');

const EmailConfFile = z
  .object({
    AWS_REGION: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, 'must be an AWS region such as us-east-1')
      .optional(),
    SMTP_USERNAME: z.string().optional(),
    SMTP_PASSWORD: z.string().optional(),
    FROM_EMAIL: Email,
    ENVIRONMENT_NAME: z
      .string()
      .max(100, 'is longer than 100 characters')
      .refine((s) => !CONTROL_CHARACTERS.test(s), 'must not contain control characters'),
    SMTP_HOST: z
      .string()
      .refine(
        (h) => isIP(h) !== 0 || HOST_NAME.test(h),
        'must be a host name or an IP address, without scheme or port (e.g. smtp.example.com)',
      )
      .optional(),
    SMTP_PORT: z
      .string()
      .regex(/^\d{1,5}$/, 'must be a port number between 1 and 65535')
      .transform(Number)
      .refine((n) => n >= 1 && n <= 65535, 'must be a port number between 1 and 65535')
      .optional(),
    SMTP_SECURE: z
      .enum(['starttls', 'tls', 'none'], {
        error: (issue) => `must be starttls, tls or none, not ${JSON.stringify(issue.input)}`,
      })
      .default('starttls'),
    SMTP_TLS_CA_FILE: AbsolutePath.optional(),
    DELIVERY: z
      .enum(['smtp', 'outbox'], {
        error: (issue) => `must be smtp or outbox, not ${JSON.stringify(issue.input)}`,
      })
      .default('smtp'),
    OUTBOX_DIR: AbsolutePath.optional(),
  })
  .superRefine((c, ctx) => {
    const problem = (key: keyof typeof c, message: string): void => {
      ctx.addIssue({ code: 'custom', path: [key], message });
    };
    if (c.DELIVERY === 'outbox') {
      if (c.OUTBOX_DIR === undefined) problem('OUTBOX_DIR', 'is required when DELIVERY=outbox');
      return;
    }
    // Checked first: with the manual's file copied as-is, this is the message that helps.
    if (c.SMTP_USERNAME?.toUpperCase().startsWith(SES_PLACEHOLDER_PREFIX)) {
      problem(
        'SMTP_USERNAME',
        'still holds the placeholder from the manual: set your SES SMTP username ' +
          '(SES console → SMTP settings → Create SMTP credentials), or leave it empty to send without authentication',
      );
    }
    if (c.SMTP_USERNAME !== undefined && c.SMTP_PASSWORD?.toUpperCase().startsWith(SES_PLACEHOLDER_PREFIX)) {
      problem('SMTP_PASSWORD', 'still holds the placeholder from the manual: set your SES SMTP password');
    }
    if (c.SMTP_USERNAME !== undefined && c.SMTP_PASSWORD === undefined) {
      problem('SMTP_PASSWORD', 'is required when SMTP_USERNAME is set');
    }
    if (c.SMTP_HOST === undefined && c.AWS_REGION === undefined) {
      problem('AWS_REGION', 'is required unless SMTP_HOST is set (mail goes to Amazon SES in that region)');
    }
    // The message carries the user's private key: plaintext is only acceptable when it never
    // leaves the machine.
    if (c.SMTP_SECURE === 'none' && !isLoopback(c.SMTP_HOST)) {
      problem(
        'SMTP_SECURE',
        'may be none only for a relay on this machine (SMTP_HOST=localhost or 127.0.0.1): the profile holds a private key',
      );
    }
    if (c.SMTP_SECURE === 'none' && c.SMTP_TLS_CA_FILE !== undefined) {
      problem('SMTP_TLS_CA_FILE', 'is set but SMTP_SECURE=none uses no TLS; remove one of them');
    }
  })
  .transform((c): EmailSettings => {
    const common = { fromEmail: c.FROM_EMAIL, environmentName: c.ENVIRONMENT_NAME };
    if (c.DELIVERY === 'outbox') return { delivery: 'outbox', ...common, outboxDir: c.OUTBOX_DIR ?? '' };
    return {
      delivery: 'smtp',
      ...common,
      // superRefine guarantees one of the two is set.
      host: c.SMTP_HOST ?? sesSmtpHost(c.AWS_REGION ?? ''),
      // Implicit TLS on 587 would hang up on an SMTP greeting, so tls gets its own well-known port.
      port: c.SMTP_PORT ?? (c.SMTP_SECURE === 'tls' ? 465 : 587),
      security: c.SMTP_SECURE,
      auth:
        c.SMTP_USERNAME === undefined
          ? undefined
          : { user: c.SMTP_USERNAME, pass: new Secret(c.SMTP_PASSWORD ?? '') },
      tlsCaFile: c.SMTP_TLS_CA_FILE,
    };
  });

function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  const h = host.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * Parses email.conf. Error messages name the file, the line and the key, and never repeat a
 * value of SMTP_PASSWORD.
 */
export function parseEmailConf(text: string, fileName: string): E.Either<ConfigFileError, EmailSettings> {
  return decodeEnvFile(EmailConfFile, text, fileName);
}
