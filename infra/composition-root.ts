// The one place that wires real adapters to the use cases: the SQLite file, the PKI, the mailer,
// the clock, the logger. Nothing else reads the environment or opens files by itself.
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { fixedClock, systemClock } from '../adapters/clock/clock.js';
import { SqliteEventStore } from '../adapters/eventstore/sqlite-event-store.js';
import { ensureStateDirectories, stateLayout } from '../adapters/fs/state-layout.js';
import { createProfileMailer } from '../adapters/mail/profile-mailer.js';
import { encodeRevokedEntry } from '../adapters/pki/crl-encoder.js';
import { CrlPublisher } from '../adapters/pki/crl-publisher.js';
import { acquireLease } from '../adapters/sqlite/job-lease.js';
import { openSqliteDatabase } from '../adapters/sqlite/open-database.js';
import type { Ledger } from '../commands/ledger.js';
import { misconfigured, refused, type Failure } from '../commands/failure.js';
import { verifyUpcasterChain } from '../domain/upcasters.js';
import { SqliteProjectionStore } from '../projections/sqlite-projection-store.js';
import { parseEmailConf, type EmailSettings } from './config/email-conf.js';
import { parseGatewayConf, type GatewaySettings } from './config/gateway-conf.js';
import { emailConfPath, gatewayConfPath } from './config/paths.js';
import type { Environment } from './environment.js';
import { createLogger } from './logger.js';

export type OpenMode = 'initialise' | 'existing';

export function loadGatewaySettings(env: Environment): E.Either<Failure, GatewaySettings> {
  const path = gatewayConfPath(env.configDir);
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  return E.mapLeft((e: { message: string }) => misconfigured(e.message))(parseGatewayConf(text, path));
}

export function loadEmailSettings(env: Environment): E.Either<Failure, EmailSettings> {
  const path = emailConfPath(env.configDir);
  if (!existsSync(path)) {
    return E.left(misconfigured(`${path} does not exist: create it (see the README, "Email delivery") before sending profiles`));
  }
  return E.mapLeft((e: { message: string }) => misconfigured(e.message))(parseEmailConf(readFileSync(path, 'utf8'), path));
}

/**
 * Refuses when ov_init has not run. Commands check this before their configuration, so a fresh
 * machine is told to run ov_init (which writes the email.conf template) rather than to write
 * email.conf by hand first.
 */
export function requireInitialised(env: Environment): E.Either<Failure, true> {
  return existsSync(stateLayout(env.stateDir).database)
    ? E.right(true)
    : E.left(refused(`no gateway state in ${env.stateDir}: run ov_init --public-host HOST first (or set OVL_STATE_DIR)`));
}

export async function openLedger(env: Environment, command: string, mode: OpenMode): Promise<E.Either<Failure, Ledger>> {
  const chain = verifyUpcasterChain();
  if (E.isLeft(chain)) throw new Error(`event upcaster chain is broken: ${chain.left}`);

  const layout = stateLayout(env.stateDir);
  if (mode === 'existing') {
    const initialised = requireInitialised(env);
    if (E.isLeft(initialised)) return initialised;
  }
  const settings = loadGatewaySettings(env);
  if (E.isLeft(settings)) return settings;
  if (mode === 'initialise') ensureStateDirectories(layout);

  const log = createLogger(env, command);
  const db = openSqliteDatabase(layout.database);
  const store = new SqliteEventStore(db);
  const projections = new SqliteProjectionStore(db, {
    encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
  });
  const crl = new CrlPublisher(db, projections, { crlPath: layout.crl, caCertPath: layout.caCert, caKeyPath: layout.caKey });
  let profileIdKey: Buffer | undefined;

  const ledger: Ledger = {
    layout,
    store,
    projections,
    crl,
    clock: env.now ? fixedClock(env.now) : systemClock,
    actor: env.actor,
    log,
    random: (n) => randomBytes(n),
    settings: settings.right,
    profileIdOf(email, traffic) {
      profileIdKey ??= Buffer.from(readFileSync(layout.profileIdKey, 'utf8').trim(), 'hex');
      return `p${createHmac('sha256', profileIdKey).update(`${email}\n${traffic}`).digest('hex').slice(0, 24)}`;
    },
    async catchUp() {
      await projections.catchUp((after, limit) => store.readAll({ after, limit }));
    },
    createMailer: (emailSettings) => createProfileMailer(emailSettings),
    acquireLease: (name, termMs) => acquireLease(db, name, { now: ledger.clock.now(), termMs }),
    async close() {
      await store.close();
      db.close();
      log.flush();
    },
  };
  await ledger.catchUp();
  return E.right(ledger);
}
