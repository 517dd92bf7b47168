// The process environment, read and validated once, here and nowhere else.
import { userInfo } from 'node:os';
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { readAwsEnvironment, type AwsEnvironment } from './aws-environment.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const Schema = z.object({
  OVL_STATE_DIR: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/ovpn-ledger'),
  OVL_CONFIG_DIR: z.string().startsWith('/', 'must be an absolute path').default('/etc/ovpn-ledger'),
  OVL_NOW: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 instant like 2026-03-01T12:00:00Z' }).optional(),
  OVL_LOG_FILE: z.string().startsWith('/', 'must be an absolute path').optional(),
  OVL_LOG_LEVEL: z.enum(LOG_LEVELS).optional(),
  OVL_EVENT_STORE: z
    .string()
    .trim()
    .regex(/^esdb(\+discover)?:\/\/\S+$/i, 'must be an EventStoreDB connection string like esdb://host:2113?tls=false (unset: the embedded store)')
    .optional(),
  SUDO_USER: z.string().optional(),
  USER: z.string().optional(),
});

export interface Environment {
  readonly stateDir: string;
  readonly configDir: string;
  /** A fixed instant replacing the clock (tests, what-if runs). */
  readonly now: Date | undefined;
  readonly logFile: string | undefined;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** Who is acting: the operator behind sudo, else the user running the command. */
  readonly actor: string;
  /** OVL_EVENT_STORE: an EventStoreDB connection string, or undefined for the embedded SQLite store. */
  readonly eventStore: string | undefined;
  /** The AWS SDK variables network discovery honours (see aws-environment.ts). */
  readonly aws: AwsEnvironment;
}

export function readEnvironment(env: NodeJS.ProcessEnv): E.Either<string, Environment> {
  const blankToUndefined = Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, v === '' ? undefined : v]),
  );
  const parsed = Schema.safeParse(blankToUndefined);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return E.left(`environment variable ${String(issue?.path[0] ?? '?')} ${issue?.message ?? 'is invalid'}`);
  }
  const v = parsed.data;
  const aws = readAwsEnvironment(env);
  if (E.isLeft(aws)) return aws;
  return E.right({
    stateDir: v.OVL_STATE_DIR.replace(/\/+$/, '') || '/',
    configDir: v.OVL_CONFIG_DIR.replace(/\/+$/, '') || '/',
    now: v.OVL_NOW === undefined ? undefined : new Date(v.OVL_NOW),
    logFile: v.OVL_LOG_FILE,
    logLevel: v.OVL_LOG_LEVEL ?? (v.OVL_LOG_FILE ? 'info' : 'error'),
    actor: v.SUDO_USER ?? v.USER ?? safeUserName(),
    eventStore: v.OVL_EVENT_STORE,
    aws: aws.right,
  });
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}
