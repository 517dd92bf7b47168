// The one place that wires real adapters to the use cases: the SQLite file, the PKI, the mailer,
// the clock, the logger. Nothing else reads the environment or opens files by itself.
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { fixedClock, systemClock } from '../adapters/clock/clock.js';
import { SqliteEventStore } from '../adapters/eventstore/sqlite-event-store.js';
import type { EventStore } from '../adapters/eventstore/event-store.js';
import { ensureReadModelSource, eventStoreIdentity, openRemoteEventStore } from './event-store-selection.js';
import { ensureStateDirectories, stateLayout, type StateLayout } from '../adapters/fs/state-layout.js';
import { encodeRevokedEntry } from '../adapters/pki/crl-encoder.js';
import { CrlPublisher } from '../adapters/pki/crl-publisher.js';
import { acquireLease } from '../adapters/sqlite/job-lease.js';
import { openSqliteDatabase } from '../adapters/sqlite/open-database.js';
import type { Ledger } from '../commands/ledger.js';
import { misconfigured, refused, type Failure } from '../commands/failure.js';
import { verifyUpcasterChain } from '../domain/upcasters.js';
import pino from 'pino';
import { SqliteProjectionStore, type ReadAllPage } from '../projections/sqlite-projection-store.js';
import { parseEmailConf, type EmailSettings } from './config/email-conf.js';
import { parseGatewayConf, type GatewaySettings } from './config/gateway-conf.js';
import { dnsConfPath, emailConfPath, gatewayConfPath } from './config/paths.js';
import { DEFAULT_DNS_SETTINGS, parseDnsConf, type DnsSettings } from './config/dns-conf.js';
import { discoverVpcNetworks, type NetworkDiscovery } from '../adapters/aws/vpc-networks.js';
import { restartCommand, type RestartOpenvpn } from '../adapters/openvpn/restart-command.js';
import type { Environment } from './environment.js';
import { createLogger } from './logger.js';

export type OpenMode = 'initialise' | 'existing';

export function loadGatewaySettings(env: Environment): E.Either<Failure, GatewaySettings> {
  const path = gatewayConfPath(env.configDir);
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const gateway = E.mapLeft((e: { message: string }) => misconfigured(e.message))(parseGatewayConf(text, path));
  if (E.isLeft(gateway)) return gateway;
  const dns = loadDnsSettings(env);
  return E.isLeft(dns) ? dns : E.right({ ...gateway.right, dns: dns.right });
}

/** dns.conf beside gateway.conf; a missing file means the defaults (the VPC's resolver, no split DNS). */
export function loadDnsSettings(env: Environment): E.Either<Failure, DnsSettings> {
  const path = dnsConfPath(env.configDir);
  if (!existsSync(path)) return E.right(DEFAULT_DNS_SETTINGS);
  return E.mapLeft((e: { message: string }) => misconfigured(e.message))(parseDnsConf(readFileSync(path, 'utf8'), path));
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
  // OVL_EVENT_STORE set: the log is in EventStoreDB; the read models stay in the local file.
  const remote = await openRemoteEventStore(env);
  if (E.isLeft(remote)) return remote;
  if (mode === 'initialise') ensureStateDirectories(layout);

  const log = createLogger(env, command);
  const db = openSqliteDatabase(layout.database);
  const store = new SqliteEventStore(db);
  const events: EventStore = remote.right ?? store;
  const projections = new SqliteProjectionStore(db, {
    encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
  });
  const crl = new CrlPublisher(db, projections, { crlPath: layout.crl, caCertPath: layout.caCert, caKeyPath: layout.caKey });
  let profileIdKey: Buffer | undefined;

  const ledger: Ledger = {
    layout,
    store: events,
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
      await projections.catchUp((after, limit) => events.readAll({ after, limit }));
    },
    // Loaded on first use: nodemailer costs ~0.1 s of start-up that listing commands never need.
    createMailer: async (emailSettings) => (await import('../adapters/mail/profile-mailer.js')).createProfileMailer(emailSettings),
    acquireLease: (name, termMs) => acquireLease(db, name, { now: ledger.clock.now(), termMs }),
    async readEventSnapshot(visit) {
      if (remote.right) {
        // EventStoreDB: $all is append-only, so every event up to the head seen now is the log as
        // of this instant, however much others append while the pages are read.
        const esdb = remote.right;
        const head = await esdb.headPosition();
        let count = 0;
        let lastPosition = 0n;
        while (lastPosition < head) {
          const page = await esdb.readAll({ after: lastPosition, limit: 5_000 });
          if (page.length === 0) break;
          for (const event of page) {
            if (event.position > head) return { count, lastPosition, source: `EventStoreDB at ${esdb.target}` };
            const waiting = visit(event);
            if (waiting) await waiting;
            count++;
            lastPosition = event.position;
          }
        }
        if (lastPosition !== head) throw new Error(`EventStoreDB at ${esdb.target} returned no event at its head position ${head}; run ov_backup again`);
        return { count, lastPosition, source: `EventStoreDB at ${esdb.target}` };
      }
      // One read transaction around every page, held across the visitor's waits: BEGIN is
      // deferred, so its snapshot is taken at the first read and holds until COMMIT, while other
      // commands go on appending (WAL). Nothing else uses this connection meanwhile.
      db.exec('BEGIN');
      try {
        let count = 0;
        let lastPosition = 0n;
        for (;;) {
          const page = store.readAllWithJsonSync({ after: lastPosition, limit: 5_000 });
          if (page.length === 0) return { count, lastPosition, source: 'the embedded store' };
          for (const event of page) {
            const waiting = visit(event);
            if (waiting) await waiting;
            count++;
            lastPosition = event.position;
          }
        }
      } finally {
        if (db.inTransaction) db.exec('COMMIT');
      }
    },
    async close() {
      await events.close();
      db.close();
      log.flush();
    },
  };
  await ensureReadModelSource(db, projections, eventStoreIdentity(env), (after, limit) => events.readAll({ after, limit }), log);
  await ledger.catchUp();
  return E.right(ledger);
}

/** The adapters of a state directory being built from scratch (by ov_restore, in its staging directory). */
export interface FreshState {
  readonly store: SqliteEventStore;
  readonly projections: SqliteProjectionStore;
  readonly crl: CrlPublisher;
  /**
   * Builds the read models from a log kept elsewhere (EventStoreDB: ov_restore with
   * OVL_EVENT_STORE), with its own positions as the checkpoint, and records which log they follow
   * (`identity`, as eventStoreIdentity says it) so the first command does not rebuild them.
   * Returns how many events were projected.
   */
  followLog(identity: string, readAll: ReadAllPage): Promise<number>;
  close(): void;
}

/** Opens (creating) the SQLite file of `layout` with the event store, read models and CRL publisher over it. */
export function openFreshState(layout: StateLayout): FreshState {
  // A staging store: no transaction in it is acknowledged to anyone, it is thrown away unless the
  // whole restore succeeds, and its directory is flushed to disk (syncfs) before it is swapped in.
  // So no commit waits for an fsync; every later command opens the file with synchronous=FULL.
  const db = openSqliteDatabase(layout.database, { synchronous: 'OFF' });
  // 32 MiB of page cache (the default is 2 MiB) for the bulk load, whose (stream, revision) index
  // is built once at the end. Measured at 1M events: as fast as 64 MiB, with 50 MB less peak RSS
  // (which for a whole restore is close to its 1 GiB budget); 16 MiB saved another 70 MB but cost
  // 1.6 s.
  db.pragma('cache_size = -32768');
  // Nor does it need WAL's second copy of every page: the rollback journal in memory still undoes
  // a failed transaction, and a crash leaves only a staging directory that is never swapped in.
  // The next command to open the swapped-in file switches it back to WAL. (1M events: ~1 s less.)
  db.pragma('journal_mode = MEMORY');
  const store = new SqliteEventStore(db);
  const projections = new SqliteProjectionStore(db, {
    encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }),
  });
  const crl = new CrlPublisher(db, projections, { crlPath: layout.crl, caCertPath: layout.caCert, caKeyPath: layout.caKey });
  return {
    store,
    projections,
    crl,
    async followLog(identity, readAll) {
      // Fresh read models (checkpoint 0, no source recorded): this only records the source.
      await ensureReadModelSource(db, projections, identity, readAll, pino({ level: 'silent' }));
      return projections.catchUp(readAll);
    },
    close: () => {
      if (db.open) db.close();
    },
  };
}

// ---- the gateway on AWS: network discovery and the OpenVPN restart fallback ----

/** gateway.conf opts in to discovery at ov_init: VPC_ID or AWS_REGION set, ROUTES not. */
export function discoveryConfigured(settings: GatewaySettings): boolean {
  return settings.routes.length === 0 && (settings.aws.vpcId !== undefined || settings.aws.region !== undefined);
}

/**
 * Network discovery with the EC2 client: VPC_ID and AWS_REGION from gateway.conf, the endpoint
 * and instance metadata from the SDK's standard variables, credentials from the SDK's chain.
 */
export function networkDiscoveryFor(env: Environment, settings: GatewaySettings): NetworkDiscovery {
  // The SDK warns on Node 20 that releases after January 2027 need Node 22; operators cannot act
  // on that, and it would land in their output. This is the SDK's documented switch.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return () =>
    discoverVpcNetworks({
      vpcId: settings.aws.vpcId,
      region: settings.aws.region ?? env.aws.region,
      endpoint: env.aws.ec2Endpoint,
      instanceMetadataEndpoint: env.aws.instanceMetadataEndpoint,
    });
}

/** RESTART_COMMAND from gateway.conf, ready to run. */
export function openvpnRestartFor(settings: GatewaySettings): RestartOpenvpn {
  return restartCommand(settings.restartCommand);
}
