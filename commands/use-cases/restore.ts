// ov_restore: all or nothing. The archive is read once, start to end, and every check runs as it
// streams by: the structure and every member's SHA-256 (adapters/archive), every event upcast and
// replayed against the rules (event-checks.ts, log-replay.ts), every certificate against the CA,
// every key against its certificate, every profile against its certificate, key, CA and tls-crypt
// key. The events are read (and stored) by staging-log.ts, in a worker thread for a real restore;
// the keys and profiles, which come after them in the archive, are checked against what the events
// said once they have all been read.
//
// Meanwhile a fresh state directory is built in a staging directory beside the target (same file
// system): events appended in their order, keys and profiles written with their modes. Only when
// everything passed are the read models rebuilt, the CRL signed (numbered above the backed-up
// one) and server.conf rendered, and then the staging directory is renamed into place. Until that
// rename the target is not touched; on any refusal the staging directory is removed. --dry-run does
// the same reading and checking with no staging directory at all: it writes nothing.
//
// With OVL_EVENT_STORE (an EventStoreDB), the log goes to that server instead of a local store.
// An append there cannot be rolled back, so nothing is sent before every check has passed:
// events.ndjson's bytes are kept in the staging directory while the archive is read and checked;
// once all of it passed, each event is appended as stored (same stream, type, schema version,
// data and metadata) in the archive's global order, with the expected revision of its stream,
// and the local read models are built by catching up from the server (checkpoints are then the
// server's positions). A server that already holds events is refused before the archive is read.
import { spawnSync } from 'node:child_process';
import { createHash, createHmac, createPrivateKey, createPublicKey, hash, X509Certificate, type KeyObject } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, fchmodSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import { rsaPrivateKeyPublic } from '../../adapters/archive/certificate-facts.js';
import {
  BackupArchiveError,
  EventLineParser,
  type ArchivedEvent,
  MEMBER,
  readBackupArchive,
  verifyFormatTable,
  type ContentSummary,
  type Manifest,
  type MemberKind,
} from '../../adapters/archive/backup-archive.js';
import { EventStoreUnavailableError, WrongExpectedRevisionError, type EventStore, type NewEvent } from '../../adapters/eventstore/event-store.js';
import { syncDirectory, writeFileAtomic } from '../../adapters/fs/atomic-file.js';
import { BackgroundFiles } from '../../adapters/fs/background-files.js';
import { ensureDirectory, ensureStateDirectories, MODE, stateLayout, type StateLayout } from '../../adapters/fs/state-layout.js';
import { clientConfigDefault, clientConfigDir, renderClientConfigDefault, renderServerConfig } from '../../adapters/openvpn/server-config.js';
import { readCrlNumber } from '../../adapters/pki/crl-encoder.js';
import type { CrlPublication } from '../../adapters/pki/crl-publisher.js';
import { planDns } from '../../domain/dns.js';
import { vpcResolverOf } from '../../domain/networks.js';
import { DEFAULT_DNS_SETTINGS, parseDnsConf, type DnsSettings } from '../../infra/config/dns-conf.js';
import { parseGatewayConf, type GatewaySettings } from '../../infra/config/gateway-conf.js';
import { dnsConfPath, emailConfPath, gatewayConfPath } from '../../infra/config/paths.js';
import type { FreshState } from '../../infra/composition-root.js';
import { EXIT, refused, type Failure } from '../failure.js';
import { compactUtc } from './backup.js';
import { HistoryError, type GatewayData, type NeededCertificate, type SummaryHeader } from './log-replay.js';
import { openStagingLog, type StagingLog } from './staging-log.js';
import { publicKeyId, rsaKeyId, type EventFacts } from './event-checks.js';

export interface RestoreInput {
  readonly archivePath: string;
  readonly stateDir: string;
  readonly configDir: string;
  readonly dryRun: boolean;
  readonly force: boolean;
  readonly now: Date;
  readonly onProgress?: (text: string) => void;
}

export interface ConfigAction {
  readonly path: string;
  readonly action: 'create' | 'unchanged' | 'replace';
  /** Where the file it replaced was kept. */
  readonly keptAs?: string;
}

export interface RestoreResult {
  readonly dryRun: boolean;
  readonly header: SummaryHeader;
  readonly summary: ContentSummary;
  readonly archive: { readonly size: number; readonly sha256: string };
  readonly stateDir: string;
  /** The target already held state (a real restore then needed --force). */
  readonly targetHadState: boolean;
  readonly keptAside: string | undefined;
  readonly crl: CrlPublication | undefined;
  readonly serverConf: string;
  readonly config: readonly ConfigAction[];
  readonly clientKeys: number;
  readonly profiles: number;
  /** Events stored at an older schema version, read through the upcasters. */
  readonly upcast: number;
  /** With OVL_EVENT_STORE: the server, whether it held events already (a dry run), how many were appended. */
  readonly remote: { readonly target: string; readonly heldEvents: boolean; readonly appended: number } | undefined;
}

/** A refusal found while checking the archive's content. */
export class ArchiveRejected extends Error {
  override readonly name = 'ArchiveRejected';
}

type TargetState = 'absent' | 'empty' | 'occupied';

function inspectTarget(dir: string): TargetState {
  let st;
  try {
    st = lstatSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw error;
  }
  if (!st.isDirectory()) throw new ArchiveRejected(`${dir} (OVL_STATE_DIR) exists but is not a directory`);
  return readdirSync(dir).length === 0 ? 'empty' : 'occupied';
}

function uniqueName(base: string): string {
  if (!existsSync(base)) return base;
  for (let i = 2; ; i++) if (!existsSync(`${base}-${i}`)) return `${base}-${i}`;
}

// One-shot: a restore hashes some 600,000 small texts, and a Hash object per text costs more than its bytes.
const sha256 = (data: Buffer | string): string => hash('sha256', data);

const STATIC_KEY = /^(#[^\n]*\n)*-----BEGIN OpenVPN Static key V1-----\n([0-9a-f]{32}\n){16}-----END OpenVPN Static key V1-----\n?$/;

const PROFILE_BLOCK_TAGS = ['ca', 'cert', 'key', 'tls-crypt'] as const;
type ProfileBlockTag = (typeof PROFILE_BLOCK_TAGS)[number];
const PROFILE_BLOCK = /^<(ca|cert|key|tls-crypt)>\n([\s\S]*?)\n<\/\1>$/gm;

/**
 * The inline blocks of a profile, in one pass: a tag's content when the profile holds exactly one
 * block of it, undefined otherwise. A block inside another block is not one of its own; its outer
 * block then differs from what it must be, so such a profile is refused all the same.
 */
function profileBlocks(profile: string): Record<ProfileBlockTag, string | undefined> {
  const found: Record<ProfileBlockTag, string | undefined> = { ca: undefined, cert: undefined, key: undefined, 'tls-crypt': undefined };
  const seen = new Set<ProfileBlockTag>();
  for (const m of profile.matchAll(PROFILE_BLOCK)) {
    const tag = m[1] as ProfileBlockTag;
    found[tag] = seen.has(tag) ? undefined : m[2];
    seen.add(tag);
  }
  return found;
}

/** Where the new state is built: a directory beside the target, and the store opened in it. */
interface Staging {
  readonly dir: string;
  readonly layout: StateLayout;
  /** Resolves with the number of events once the log is appended and projected and its store closed. */
  logDone: Promise<number> | undefined;
  /** The client keys and profiles, written while the archive is still being read. */
  readonly files: BackgroundFiles;
  /** The store opened again at the end, for the CRL and the last checks. */
  fresh: FreshState | undefined;
  readonly open: () => FreshState;
  readonly worker: URL | undefined;
  /** With an EventStoreDB as the log: events.ndjson's bytes, kept until every check has passed. */
  readonly spool: EventSpool | undefined;
}

/** events.ndjson as read from the archive, in a 0600 file of the staging directory, hashed as it is written. */
class EventSpool {
  private readonly fd: number;
  private readonly hash = createHash('sha256');
  private open = true;
  size = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'wx', MODE.secretFile);
  }

  write(chunk: Buffer): void {
    for (let at = 0; at < chunk.length; ) at += writeSync(this.fd, chunk, at, chunk.length - at);
    this.hash.update(chunk);
    this.size += chunk.length;
  }

  /** Closes the file; returns its SHA-256. */
  end(): string {
    this.close();
    return this.hash.digest('hex');
  }

  close(): void {
    if (this.open) closeSync(this.fd);
    this.open = false;
  }
}

/** The events of a spooled events.ndjson (checked already), in order, read in 1 MiB blocks. */
function* spooledEvents(path: string, formatVersion: string): Generator<ArchivedEvent> {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(1 << 20);
    const parser = new EventLineParser(formatVersion);
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      const events: ArchivedEvent[] = [];
      parser.push(buffer.subarray(0, n), (e) => events.push(e));
      yield* events;
    }
    parser.end();
  } finally {
    closeSync(fd);
  }
}

function writeNew(path: string, data: Buffer, mode: number): void {
  const fd = openSync(path, 'wx', mode);
  try {
    fchmodSync(fd, mode);
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
  } finally {
    closeSync(fd);
  }
}

/** The visitor that checks everything and, unless this is a dry run, fills the staging directory. */
class ArchiveChecker {
  manifest: Manifest | undefined;
  /** The log's facts, once events.ndjson was read through and passed. */
  private events: EventFacts | undefined;
  /** The events' reading and checking (and storing, unless a dry run), opened with the manifest. */
  private log: StagingLog | undefined;
  settings: GatewaySettings | undefined;
  dns: DnsSettings | undefined;
  readonly config = new Map<string, Buffer>();
  clientKeys = 0;
  profiles = 0;

  private needed = new Map<string, NeededCertificate>();
  /** SHA-256 of each client key's PEM (trimmed), to find the same key inside its profile. */
  private readonly keyTexts = new Map<string, string>();
  private readonly profilesSeen = new Set<string>();
  private tlsCryptText: string | undefined;
  private membersChecked = 0;
  private readonly ensuredDirectories = new Set<string>();

  constructor(
    private readonly staging: Staging | undefined,
    private readonly onProgress: ((text: string) => void) | undefined,
  ) {}

  /** Gives up on the events: their threads stopped, the staging store closed (nothing left to do once they were read through). */
  async close(): Promise<void> {
    await this.log?.abort();
  }

  get facts(): EventFacts {
    if (!this.events) throw new Error('internal error: the events were not read yet');
    return this.events;
  }

  private get gateway(): GatewayData {
    const g = this.facts.gateway;
    if (!g) throw new ArchiveRejected('the event log has no GatewayInitialized event');
    return g;
  }

  // As a BackupVisitor ---------------------------------------------------------------------------

  onManifest(m: Manifest): void {
    this.manifest = m;
    const s = this.staging;
    // A real restore into the embedded store fills the staging store as the events pass.
    const store = s !== undefined && s.spool === undefined;
    this.log = openStagingLog({
      worker: s?.worker,
      open: store ? s.open : undefined,
      data: { stagingDir: s?.dir ?? '', formatVersion: m.formatVersion, asOf: m.createdAt, spoolPath: join(s?.dir ?? '', 'events.ndjson.staging') },
      onCount: (count) => this.onProgress?.(`events checked: ${count}`),
    });
  }

  /** events.ndjson's bytes as read (its lines are read and checked by the staging log, perhaps in its worker). */
  eventBytes(chunk: Buffer): void | Promise<void> {
    this.staging?.spool?.write(chunk);
    return this.log!.bytes(chunk);
  }

  /** Once events.ndjson matched its SHA-256: the verdict on its events. */
  async eventsDone(): Promise<void> {
    const facts = await this.log!.facts();
    this.events = facts;
    const s = this.staging;
    if (s && !s.spool) {
      // The staging store finishes (its last events, user rows, audit indexes) while the keys
      // and profiles are checked; awaited once they are.
      s.logDone = this.log!.stored();
      s.logDone.catch(() => undefined);
    }
    const m = this.manifest!;
    if (facts.count !== m.eventCount) throw new ArchiveRejected(`events.ndjson holds ${facts.count} events, but the manifest says ${m.eventCount}`);
    if (facts.lastPosition !== m.lastPosition) {
      throw new ArchiveRejected(`the last event is at position ${facts.lastPosition}, but the manifest says ${m.lastPosition}`);
    }
    void this.gateway;
    // What could still connect when the backup was taken: its keys and profiles must be here.
    this.needed = new Map(facts.needed.map((n) => [n.serial, n]));
  }

  private write(path: string, data: Buffer, mode: number): void {
    if (!this.staging) return;
    const dir = dirname(path);
    if (!this.ensuredDirectories.has(dir)) {
      ensureDirectory(dir, path.startsWith(this.staging.layout.openvpnDir) ? MODE.publicDir : MODE.privateDir);
      this.ensuredDirectories.add(dir);
    }
    writeNew(path, data, mode);
  }

  member(path: string, kind: MemberKind, data: Buffer): void | Promise<void> {
    if (++this.membersChecked % 20_000 === 0) this.onProgress?.(`keys and profiles checked: ${this.membersChecked}`);
    const layout = this.staging?.layout;
    const g = this.gateway;
    const text = data.toString('utf8');
    switch (kind.kind) {
      case 'key':
        return this.checkKey(kind.path, data, text, g);
      case 'client-key': {
        const need = this.needed.get(kind.serial);
        const cert = this.facts.certificates.get(kind.serial);
        if (!need || !cert) throw new ArchiveRejected(`${path} is not the key of a certificate that could still connect when the backup was taken`);
        if (privateKeyId(text, path) !== cert.keyId) throw new ArchiveRejected(`${path} is not the private key of certificate ${kind.serial}`);
        this.keyTexts.set(kind.serial, sha256(text.trim()));
        this.clientKeys++;
        return this.staging?.files.write(layout!.clientKey(kind.serial), data, MODE.secretFile);
      }
      case 'profile': {
        const need = this.needed.get(kind.serial);
        const cert = this.facts.certificates.get(kind.serial);
        if (!need || !cert || cert.profileId !== kind.profileId) {
          throw new ArchiveRejected(`${path} is not the profile of a certificate of ${kind.profileId} that could still connect when the backup was taken`);
        }
        const key = this.keyTexts.get(kind.serial);
        if (key === undefined) throw new ArchiveRejected(`${path} comes without its private key (keys/clients/${kind.serial}.key)`);
        // The CA certificate and the tls-crypt key are compared as text; the certificate and the
        // key by their digests (their texts are not kept: 100,000 of each).
        const blocks = profileBlocks(text);
        const matches: Record<ProfileBlockTag, (found: string) => boolean> = {
          ca: (found) => found === g.caCertificatePem.trim(),
          cert: (found) => sha256(found) === cert.pemSha256,
          key: (found) => sha256(found) === key,
          'tls-crypt': (found) => found === this.tlsCryptText,
        };
        for (const tag of PROFILE_BLOCK_TAGS) {
          const found = blocks[tag];
          if (found === undefined || !matches[tag](found)) {
            throw new ArchiveRejected(`${path}: its <${tag}> is not the ${tag === 'cert' ? 'certificate' : tag === 'ca' ? 'CA certificate' : tag} of serial ${kind.serial}`);
          }
        }
        this.profilesSeen.add(kind.serial);
        this.profiles++;
        if (!this.staging) return;
        const files = this.staging.files;
        files.directory(layout!.profileDir(kind.profileId), MODE.privateDir);
        return files.write(layout!.profile(kind.profileId, kind.serial), data, MODE.secretFile);
      }
      case 'config': {
        if (kind.path === MEMBER.gatewayConf) {
          const parsed = parseGatewayConf(text, 'config/gateway.conf (in the archive)');
          if (E.isLeft(parsed)) throw new ArchiveRejected(parsed.left.message);
          this.settings = parsed.right;
        }
        if (kind.path === MEMBER.dnsConf) {
          const parsed = parseDnsConf(text, 'config/dns.conf (in the archive)');
          if (E.isLeft(parsed)) throw new ArchiveRejected(parsed.left.message);
          this.dns = parsed.right;
        }
        this.config.set(kind.path, data);
        return;
      }
      case 'manifest':
      case 'events':
        throw new ArchiveRejected(`unexpected ${path}`);
    }
  }

  private checkKey(path: string, data: Buffer, text: string, g: GatewayData): void {
    const layout = this.staging?.layout;
    switch (path) {
      case MEMBER.caKey:
      case MEMBER.serverKey: {
        const pem = path === MEMBER.caKey ? g.caCertificatePem : g.serverCertificatePem;
        let key: KeyObject;
        try {
          key = createPrivateKey(text);
        } catch {
          throw new ArchiveRejected(`${path} is not a private key`);
        }
        if (!new X509Certificate(pem).checkPrivateKey(key)) {
          throw new ArchiveRejected(`${path} is not the private key of the ${path === MEMBER.caKey ? 'CA' : 'server'} certificate in the event log`);
        }
        if (layout) this.write(path === MEMBER.caKey ? layout.caKey : layout.serverKey, data, MODE.secretFile);
        return;
      }
      case MEMBER.caCert:
      case MEMBER.serverCert: {
        const isCa = path === MEMBER.caCert;
        let x: X509Certificate;
        try {
          x = new X509Certificate(data);
        } catch {
          throw new ArchiveRejected(`${path} is not a certificate`);
        }
        if (!x.raw.equals(new X509Certificate(isCa ? g.caCertificatePem : g.serverCertificatePem).raw)) {
          throw new ArchiveRejected(`${path} is not the ${isCa ? 'CA' : 'server'} certificate the event log records`);
        }
        if (!x.verify(new X509Certificate(g.caCertificatePem).publicKey)) throw new ArchiveRejected(`${path} is not signed by the gateway's CA`);
        if (layout) this.write(isCa ? layout.caCert : layout.serverCert, data, MODE.publicFile);
        return;
      }
      case MEMBER.tlsCryptKey:
        if (!STATIC_KEY.test(text)) throw new ArchiveRejected(`${path} is not an OpenVPN static key`);
        this.tlsCryptText = text.trim();
        if (layout) this.write(layout.tlsCryptKey, data, MODE.secretFile);
        return;
      case MEMBER.profileIdKey: {
        if (!/^[0-9a-f]{64}\n?$/.test(text)) throw new ArchiveRejected(`${path} is not a 256-bit hex key`);
        const key = Buffer.from(text.trim(), 'hex');
        for (const p of this.facts.pairs) {
          const id = `p${createHmac('sha256', key).update(`${p.email}\n${p.traffic}`).digest('hex').slice(0, 24)}`;
          if (id !== p.profileId) throw new ArchiveRejected(`${path} does not map ${p.email} (${p.traffic}) to its stream: it is not this gateway's key`);
        }
        if (layout) this.write(layout.profileIdKey, data, MODE.secretFile);
        return;
      }
    }
  }

  /** After the whole archive was read: nothing the restored gateway needs may be missing. */
  finish(): ContentSummary {
    for (const n of this.needed.values()) {
      if (!n.required) continue;
      if (!this.keyTexts.has(n.serial)) throw new ArchiveRejected(`the private key of ${n.email} (${n.traffic}), serial ${n.serial}, is missing: the archive is incomplete`);
      if (!this.profilesSeen.has(n.serial)) throw new ArchiveRejected(`the profile of ${n.email} (${n.traffic}), serial ${n.serial}, is missing: the archive is incomplete`);
    }
    const summary = this.facts.summary;
    if (!summary) throw new ArchiveRejected('the log has no GatewayInitialized event: there is no gateway to restore');
    const recorded = this.manifest?.summary;
    if (recorded && !isDeepStrictEqual(recorded, summary)) {
      throw new ArchiveRejected('the summary in the manifest differs from what the events say: the archive was altered or damaged');
    }
    return summary;
  }
}

/**
 * The same identity for a private key. An RSA key is matched by the modulus and exponent it
 * carries (a damaged key is already caught by the archive's hashes); others go through OpenSSL.
 */
function privateKeyId(pem: string, path: string): string {
  const rsa = rsaPrivateKeyPublic(pem);
  if (rsa) return rsaKeyId(rsa);
  try {
    return publicKeyId(createPublicKey(createPrivateKey(pem)));
  } catch {
    throw new ArchiveRejected(`${path} is not a private key`);
  }
}

/** Flushes the whole file system holding `dir` (syncfs) once, instead of one fsync per file. */
function syncFileSystem(dir: string): void {
  const res = spawnSync('sync', ['--file-system', dir], { stdio: 'ignore' });
  if (res.status !== 0) spawnSync('sync', [], { stdio: 'ignore' });
}

/** Where each configuration file of the archive goes, and with which mode. */
function configTargets(configDir: string): readonly { member: string; path: string; mode: number }[] {
  return [
    { member: MEMBER.gatewayConf, path: gatewayConfPath(configDir), mode: 0o644 },
    { member: MEMBER.emailConf, path: emailConfPath(configDir), mode: MODE.secretFile },
    { member: MEMBER.dnsConf, path: dnsConfPath(configDir), mode: 0o644 },
  ];
}

function configPlan(checker: ArchiveChecker, configDir: string): ConfigAction[] {
  const plan: ConfigAction[] = [];
  for (const { member, path } of configTargets(configDir)) {
    const data = checker.config.get(member);
    if (!data) continue;
    const current = existsSync(path) ? readFileSync(path) : undefined;
    plan.push({ path, action: !current ? 'create' : current.equals(data) ? 'unchanged' : 'replace' });
  }
  return plan;
}

export interface RestoreOptions {
  /**
   * The worker script that fills the staging store in a thread of its own (the built
   * commands/bin/restore-staging-worker.js); without it, or when it is not there, this thread does.
   */
  readonly stagingWorker?: URL;
  /** OVL_EVENT_STORE: the EventStoreDB that receives the log instead of a local store. */
  readonly remote?: RemoteLog;
}

/** The EventStoreDB a restore writes the log to. */
export interface RemoteLog {
  readonly store: EventStore;
  /** The server as the connection string names it, without credentials: for messages. */
  readonly target: string;
  /** Which log the local read models follow, as infra/event-store-selection.ts eventStoreIdentity says it. */
  readonly identity: string;
}

/** Whether the server holds any ovpn-ledger event (its own $-events do not count). */
async function holdsEvents(remote: RemoteLog): Promise<boolean> {
  return (await remote.store.readAll({ after: 0n, limit: 1 })).length > 0;
}

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ');

/** Events of one stream at most in one append: consecutive events of a stream go together. */
const APPEND_BATCH = 500;

/**
 * Appends the spooled events.ndjson to the server, in its order, each stream at the revisions the
 * archive gives it. Resolves with how many were appended, or with a failure that says what the
 * server now holds and how to recover.
 */
async function appendToRemote(
  remote: RemoteLog,
  spool: string,
  formatVersion: string,
  total: number,
  stateDir: string,
  onProgress: ((text: string) => void) | undefined,
): Promise<E.Either<Failure, number>> {
  let written = 0;
  let last: { streamId: string; revision: bigint } | undefined;
  let batch: { streamId: string; first: bigint; events: NewEvent[] } | undefined;
  /** The events of the append in flight: when its answer is lost, they may or may not have landed. */
  let inFlight = 0;
  const flush = async (): Promise<void> => {
    if (!batch) return;
    const { streamId, first, events } = batch;
    batch = undefined;
    inFlight = events.length;
    await remote.store.appendToStream(streamId, first === 0n ? 'no_stream' : first - 1n, events);
    if (Math.floor(written / 1_000) !== Math.floor((written + events.length) / 1_000)) {
      onProgress?.(`appending to EventStoreDB: ${written + events.length} of ${total} events`);
    }
    written += events.length;
    inFlight = 0;
    last = { streamId, revision: first + BigInt(events.length - 1) };
  };
  try {
    for (const e of spooledEvents(spool, formatVersion)) {
      const event: NewEvent = { type: e.type, schemaVersion: e.schemaVersion, data: e.data, metadata: e.metadata };
      if (batch && batch.streamId === e.streamId && batch.events.length < APPEND_BATCH && e.revision === batch.first + BigInt(batch.events.length)) {
        batch.events.push(event);
        continue;
      }
      await flush();
      batch = { streamId: e.streamId, first: e.revision, events: [event] };
    }
    await flush();
  } catch (error) {
    // The adapter's advice ("run the command again") is for a command's one append, not for this.
    const why = oneLine(error instanceof EventStoreUnavailableError ? error.message.split('; ')[0]! : error instanceof Error ? error.message : String(error));
    const server = `EventStoreDB at ${remote.target}`;
    const refusedByServer = error instanceof WrongExpectedRevisionError;
    const perhaps = refusedByServer || inFlight === 0 ? '' : `, perhaps ${inFlight === 1 ? 'one more' : `${inFlight} more`} from the append that failed,`;
    if (written === 0 && perhaps === '') {
      return E.left({
        exitCode: refusedByServer ? EXIT.refused : EXIT.unexpected,
        message: `the restore could not append to ${server}: ${why}; nothing was written to it and ${stateDir} was not changed: fix the cause and run ov_restore again`,
      });
    }
    return E.left({
      exitCode: EXIT.unexpected,
      message:
        `the restore stopped while appending to ${server}: ${why}; the server now holds the first ${written} of the archive's ${total} events` +
        `${last ? ` (the last one confirmed: ${last.streamId} revision ${last.revision})` : ''}${perhaps} and appends cannot be undone; ${stateDir} was not changed; ` +
        `to recover, empty that database (a new data directory or server) or point OVL_EVENT_STORE at an empty one, then run ov_restore again`,
    });
  }
  if (written !== total) throw new Error(`internal error: ${written} events appended, but the archive holds ${total}`);
  return E.right(written);
}

export async function restoreBackup(
  input: RestoreInput,
  openFreshState: (layout: StateLayout) => FreshState,
  options: RestoreOptions = {},
): Promise<E.Either<Failure, RestoreResult>> {
  verifyFormatTable();
  const { archivePath, stateDir, configDir, now } = input;
  const stamp = compactUtc(now);
  const refuse = (why: string) => E.left(refused(`${archivePath} refused: ${why}; nothing was changed`));

  let target: TargetState;
  try {
    if (!existsSync(archivePath)) return E.left(refused(`${archivePath} does not exist`));
    if (!statSync(archivePath).isFile()) return E.left(refused(`${archivePath} is not a file`));
    target = inspectTarget(stateDir);
  } catch (error) {
    if (error instanceof ArchiveRejected) return E.left(refused(error.message));
    throw error;
  }
  const asideName = `${stateDir}.before-restore-${stamp}`;
  if (target === 'occupied' && !input.force && !input.dryRun) {
    return E.left(
      refused(`${stateDir} already holds a gateway's state; to replace it, run ov_restore --force ${archivePath} (the current state is then kept as ${asideName}); nothing was changed`),
    );
  }
  const remote = options.remote;
  const nonEmpty = () =>
    E.left(
      refused(
        `EventStoreDB at ${remote!.target} (OVL_EVENT_STORE) already holds ovpn-ledger events; a restore writes a whole history and would mix it with the one there: ` +
          `restore into an empty database (a new data directory or server), or without OVL_EVENT_STORE into the embedded store; nothing was changed`,
      ),
    );
  // Checked before the archive is read, and again just before the first append.
  const remoteHeld = remote ? await holdsEvents(remote) : false;
  if (remoteHeld && !input.dryRun) return nonEmpty();

  let staging: Staging | undefined;
  let opened: ArchiveChecker | undefined;
  /** Events already in the server: from then on a failure must say so. */
  let appendedToRemote = 0;
  try {
    if (!input.dryRun) {
      const parent = dirname(stateDir);
      mkdirSync(parent, { recursive: true, mode: MODE.publicDir });
      const dir = mkdtempSync(join(parent, `.${basename(stateDir)}.restore-`));
      const layout = stateLayout(dir);
      ensureStateDirectories(layout);
      staging = {
        dir,
        layout,
        logDone: undefined,
        files: new BackgroundFiles(dir),
        fresh: undefined,
        open: () => openFreshState(layout),
        worker: options.stagingWorker,
        spool: remote ? new EventSpool(join(dir, 'events.ndjson.checked')) : undefined,
      };
    }

    // 1. Read and check everything, filling the staging directory as it goes.
    const checker = new ArchiveChecker(staging, input.onProgress);
    opened = checker;
    const facts = await readBackupArchive(
      archivePath,
      {
        manifest: (m) => checker.onManifest(m),
        eventBytes: (chunk) => checker.eventBytes(chunk),
        eventsDone: () => checker.eventsDone(),
        member: (path, kind, data) => checker.member(path, kind, data),
      },
      { onEvents: (n) => input.onProgress?.(`events checked: ${n}`) },
    );
    const summary = checker.finish();
    const manifest = facts.manifest;
    const config = configPlan(checker, configDir);
    const header: SummaryHeader = {
      hostname: manifest.hostname,
      createdAt: manifest.createdAt,
      formatVersion: manifest.formatVersion,
      ledgerVersion: manifest.ledgerVersion,
      lastPosition: manifest.lastPosition,
    };
    const gateway = checker.facts.gateway!;
    const result = {
      dryRun: input.dryRun,
      header,
      summary,
      archive: { size: facts.size, sha256: facts.sha256 },
      stateDir,
      targetHadState: target === 'occupied',
      serverConf: stateLayout(stateDir).serverConf,
      clientKeys: checker.clientKeys,
      profiles: checker.profiles,
      upcast: checker.facts.upcast,
      remote: remote ? { target: remote.target, heldEvents: remoteHeld, appended: 0 } : undefined,
    };
    const replacing = config.filter((c) => c.action === 'replace');
    if (input.dryRun) return E.right({ ...result, keptAside: undefined, crl: undefined, config });
    if (replacing.length > 0 && !input.force) {
      return refuse(
        `${replacing.map((c) => c.path).join(' and ')} ${replacing.length === 1 ? 'differs' : 'differ'} from the archive's; run ov_restore --force to replace ${replacing.length === 1 ? 'it' : 'them'} (the current ${replacing.length === 1 ? 'one is' : 'ones are'} kept as <file>.before-restore-${stamp})`,
      );
    }

    const s = staging!;
    let appended = 0;
    if (remote) {
      // 2a. Every check passed: only now is anything sent to the server, the bytes that were checked.
      const digest = s.spool!.end();
      const listed = manifest.members.find((m) => m.path === MEMBER.events);
      if (listed === undefined || digest !== listed.sha256) throw new Error('internal error: the events kept for EventStoreDB are not the ones that were checked');
      if (await holdsEvents(remote)) return nonEmpty();
      input.onProgress?.(`appending to EventStoreDB: 0 of ${summary.events} events`);
      const written = await appendToRemote(remote, s.spool!.path, manifest.formatVersion, summary.events, stateDir, input.onProgress);
      if (E.isLeft(written)) return written;
      appended = written.right;
      appendedToRemote = appended;
      rmSync(s.spool!.path);
    }

    // 2. Finish the new state: read models, CRL, server config.
    let projected: number;
    let fresh: FreshState;
    if (remote) {
      // The read models caught up from the server: its positions are the checkpoints.
      input.onProgress?.('building the read models from EventStoreDB');
      fresh = s.open();
      s.fresh = fresh;
      projected = await fresh.followLog(remote.identity, (after, limit) => remote.store.readAll({ after, limit }));
    } else {
      // Every event was appended and projected as it was read (staging-log.ts); the user rows and
      // audit indexes were written meanwhile.
      input.onProgress?.('writing the read models');
      projected = await s.logDone!;
      fresh = s.open();
      s.fresh = fresh;
    }
    const active = summary.users.all.active + summary.users.partial.active;
    // A gateway of the fleet may append to the server as soon as the events are there: more is fine.
    const exact = projected === summary.events;
    if (
      (remote ? projected < summary.events : !exact) ||
      (exact && (fresh.projections.activeUserCount() !== active || fresh.projections.crlEntryCount() !== summary.crl.serials))
    ) {
      throw new Error('internal error: the rebuilt read models disagree with the replayed log');
    }
    const settings = checker.settings ?? currentSettings(configDir);
    const previousCrl = target === 'occupied' && existsSync(stateLayout(stateDir).crl) ? (readCrlNumber(readFileSync(stateLayout(stateDir).crl)) ?? 0n) : 0n;
    // 1.0 manifests carried no CRL number: every revocation and ov_init each published one, so
    // 1 + revocations is a number the old gateway had reached at least.
    const backedUp = manifest.crlNumber ?? BigInt(1 + checker.facts.revocations);
    const crl = fresh.crl.publish({ now, validityDays: settings.crlValidityDays, after: backedUp > previousCrl ? backedUp : previousCrl });
    // server.conf names the target's paths; DNS as dns.conf and the recorded VPC say (gateway-networks.ts).
    const dnsSettings = checker.dns ?? currentDnsSettings(configDir);
    const primaryCidr = gateway.networks?.primaryCidr;
    const dns = planDns({
      configuredServers: dnsSettings.servers,
      vpcResolver: primaryCidr === undefined ? undefined : vpcResolverOf(primaryCidr),
      domainRoutes: dnsSettings.domainRoutes,
    });
    writeFileAtomic(
      s.layout.serverConf,
      renderServerConfig({ layout: stateLayout(stateDir), port: gateway.port, proto: gateway.proto, vpnNetwork: gateway.vpnNetwork, dns }),
      MODE.publicFile,
    );
    ensureDirectory(clientConfigDir(s.layout), MODE.publicDir);
    writeFileAtomic(clientConfigDefault(s.layout), renderClientConfigDefault(dns), MODE.publicFile);
    fresh.close();
    input.onProgress?.('writing keys and profiles');
    await s.files.finish();
    input.onProgress?.('flushing to disk');
    syncFileSystem(s.dir);

    // 3. Swap it in.
    let keptAside: string | undefined;
    if (target === 'occupied') {
      keptAside = uniqueName(asideName);
      renameSync(stateDir, keptAside);
      try {
        renameSync(s.dir, stateDir);
      } catch (error) {
        renameSync(keptAside, stateDir);
        throw error;
      }
    } else {
      // rename(2) replaces an empty directory in one step.
      renameSync(s.dir, stateDir);
    }
    staging = undefined;
    syncDirectory(dirname(stateDir));

    // 4. The configuration files, the replaced ones kept beside them.
    const done: ConfigAction[] = [];
    for (const c of config) {
      if (c.action === 'unchanged') {
        done.push(c);
        continue;
      }
      mkdirSync(configDir, { recursive: true, mode: MODE.publicDir });
      const target = configTargets(configDir).find((t) => t.path === c.path)!;
      const data = checker.config.get(target.member)!;
      let keptAs: string | undefined;
      if (c.action === 'replace') {
        keptAs = uniqueName(`${c.path}.before-restore-${stamp}`);
        copyFileSync(c.path, keptAs);
      }
      writeFileAtomic(c.path, data, target.mode);
      done.push(keptAs ? { ...c, keptAs } : c);
    }
    return E.right({ ...result, keptAside, crl, config: done, remote: remote ? { target: remote.target, heldEvents: false, appended } : undefined });
  } catch (error) {
    if (remote && appendedToRemote > 0 && staging !== undefined) {
      // The log is in the server, the local state is not: say so, and how to get out of it.
      throw new Error(
        `the ${appendedToRemote} events were appended to EventStoreDB at ${remote.target}, but the local state could not be built: ` +
          `${oneLine(error instanceof Error ? error.message : String(error))}; ${stateDir} was not changed; to recover, empty that database ` +
          `(or point OVL_EVENT_STORE at an empty one) and run ov_restore again`,
        { cause: error },
      );
    }
    if (error instanceof BackupArchiveError || error instanceof HistoryError || error instanceof ArchiveRejected) {
      return refuse(oneLine(error.message));
    }
    throw error;
  } finally {
    await opened?.close();
    if (staging) {
      staging.spool?.close();
      staging.fresh?.close();
      await staging.files.settled();
      rmSync(staging.dir, { recursive: true, force: true });
    }
  }
}

function currentSettings(configDir: string): GatewaySettings {
  const path = gatewayConfPath(configDir);
  const parsed = parseGatewayConf(existsSync(path) ? readFileSync(path, 'utf8') : '', path);
  if (E.isRight(parsed)) return parsed.right;
  const defaults = parseGatewayConf('', path);
  if (E.isLeft(defaults)) throw new Error(defaults.left.message);
  return defaults.right;
}

function currentDnsSettings(configDir: string): DnsSettings {
  const path = dnsConfPath(configDir);
  if (!existsSync(path)) return DEFAULT_DNS_SETTINGS;
  const parsed = parseDnsConf(readFileSync(path, 'utf8'), path);
  return E.isRight(parsed) ? parsed.right : DEFAULT_DNS_SETTINGS;
}
