// The backup archive: a gzip-compressed ustar file (see tar.ts) holding
//
//   manifest.json                       what the archive is and the SHA-256 of every other member
//   events.ndjson                       the event log in global order, one event per line
//   keys/ca.key ca.crt server.key server.crt tls-crypt.key profile-id.key
//   keys/clients/<serial>.key           the private key of every certificate still needed
//   profiles/<profile id>/<serial>.ovpn the .ovpn of every certificate still needed, as mailed
//   config/gateway.conf email.conf dns.conf   those the gateway has
//
// in that order (the reader relies on it: the events come before the keys checked against them).
//
// Format versions. Each one this release reads is one entry in FORMATS: the manifest's schema, the
// shape of an events.ndjson line, and how both read as today's. Anything newer is refused before
// any other check, with a message that says to upgrade.
//   1.0  (ovpn-ledger 1.0.x) manifest: formatVersion, ledgerVersion, hostname, createdAt,
//        eventCount, lastPosition (a JSON number) and a `sha256` map of member paths. It had no
//        format tag, no CRL number, no member sizes or order, no content summary and no checksum
//        of its own. Event lines carried revision and position as JSON numbers.
//   1.1  (today) adds `format`, `crlNumber` (a restore numbers its CRL above it), `members` with
//        size and SHA-256 in archive order, `summary` (what a restore must reproduce) and
//        `manifestSha256`, a SHA-256 of the manifest itself (computed with that field's value
//        set to 64 zeros), so no byte of the archive goes unchecked. Revisions and positions are
//        decimal strings, the store's convention for bigints.
import { createHash, hash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fchmodSync, fsyncSync, openSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { z } from 'zod';
import { readBody, readTar, TarFormatError, TarPacker, type TarEntry } from './tar.js';

export const ARCHIVE_FORMAT = 'ovpn-ledger-backup';
export const CURRENT_FORMAT_VERSION = '1.1';

export class BackupArchiveError extends Error {
  override readonly name = 'BackupArchiveError';
}

// ---- members -------------------------------------------------------------------------------------

export const MEMBER = {
  manifest: 'manifest.json',
  events: 'events.ndjson',
  caKey: 'keys/ca.key',
  caCert: 'keys/ca.crt',
  serverKey: 'keys/server.key',
  serverCert: 'keys/server.crt',
  tlsCryptKey: 'keys/tls-crypt.key',
  profileIdKey: 'keys/profile-id.key',
  gatewayConf: 'config/gateway.conf',
  emailConf: 'config/email.conf',
  dnsConf: 'config/dns.conf',
  clientKey: (serial: string) => `keys/clients/${serial}.key`,
  profile: (profileId: string, serial: string) => `profiles/${profileId}/${serial}.ovpn`,
} as const;

export const REQUIRED_KEY_MEMBERS = [
  MEMBER.caKey,
  MEMBER.caCert,
  MEMBER.serverKey,
  MEMBER.serverCert,
  MEMBER.tlsCryptKey,
  MEMBER.profileIdKey,
] as const;

export type MemberKind =
  | { kind: 'manifest' }
  | { kind: 'events' }
  | { kind: 'key'; path: (typeof REQUIRED_KEY_MEMBERS)[number] }
  | { kind: 'client-key'; serial: string }
  | { kind: 'profile'; profileId: string; serial: string }
  | { kind: 'config'; path: ConfigMember };

export const CONFIG_MEMBERS = [MEMBER.gatewayConf, MEMBER.emailConf, MEMBER.dnsConf] as const;
export type ConfigMember = (typeof CONFIG_MEMBERS)[number];

const RANK: Record<MemberKind['kind'], number> = { manifest: 0, events: 1, key: 2, 'client-key': 3, profile: 4, config: 5 };

const CLIENT_KEY = /^keys\/clients\/([0-9a-f]{2,40})\.key$/;
const PROFILE = /^profiles\/(p[0-9a-f]{24})\/([0-9a-f]{2,40})\.ovpn$/;

/** What a member path means, or undefined for a path no backup holds. */
export function memberKind(path: string): MemberKind | undefined {
  if (path === MEMBER.manifest) return { kind: 'manifest' };
  if (path === MEMBER.events) return { kind: 'events' };
  if ((REQUIRED_KEY_MEMBERS as readonly string[]).includes(path)) return { kind: 'key', path: path as (typeof REQUIRED_KEY_MEMBERS)[number] };
  if ((CONFIG_MEMBERS as readonly string[]).includes(path)) return { kind: 'config', path: path as ConfigMember };
  const client = CLIENT_KEY.exec(path);
  if (client?.[1]) return { kind: 'client-key', serial: client[1] };
  const profile = PROFILE.exec(path);
  if (profile?.[1] && profile[2]) return { kind: 'profile', profileId: profile[1], serial: profile[2] };
  return undefined;
}

/** Members other than the events are small; anything larger is not what a backup writes. */
export const MAX_SMALL_MEMBER = 1024 * 1024;
export const MAX_MANIFEST = 64 * 1024 * 1024;
export const MAX_EVENT_LINE = 4 * 1024 * 1024;

// ---- manifest ------------------------------------------------------------------------------------

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'is not a lower-case hex SHA-256');
const DECIMAL = /^(0|[1-9][0-9]{0,30})$/;
const Decimal = z.string().regex(DECIMAL, 'is not a decimal number');
const IsoInstant = z.iso.datetime({ offset: false });
const Count = z.number().int().nonnegative();

/** What a backup holds, in numbers: ov_backup prints it, and ov_restore must reproduce it. */
export const ContentSummary = z
  .object({
    gateway: z.string().min(1),
    users: z.object({
      all: z.object({ active: Count, revoked: Count }).strict(),
      partial: z.object({ active: Count, revoked: Count }).strict(),
    }),
    renewed: Count,
    renewals: Count,
    crl: z.object({ serials: Count, sha256: Sha256Hex }).strict(),
    caFingerprint: z.string().regex(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
    events: Count,
  })
  .strict();
export type ContentSummary = z.infer<typeof ContentSummary>;

const MemberPath = z.string().refine((p) => memberKind(p) !== undefined && p !== MEMBER.manifest, 'is not a member a backup holds');

const ManifestV1_1 = z
  .object({
    format: z.literal(ARCHIVE_FORMAT),
    formatVersion: z.literal('1.1'),
    ledgerVersion: z.string().min(1),
    hostname: z.string().min(1),
    createdAt: IsoInstant,
    eventCount: Count,
    lastPosition: Decimal,
    crlNumber: Decimal,
    summary: ContentSummary,
    members: z.array(z.object({ path: MemberPath, size: Count, sha256: Sha256Hex }).strict()),
    manifestSha256: Sha256Hex,
  })
  .strict();

const ManifestV1_0 = z
  .object({
    formatVersion: z.literal('1.0'),
    ledgerVersion: z.string().min(1),
    hostname: z.string().min(1),
    createdAt: IsoInstant,
    eventCount: Count,
    lastPosition: Count,
    sha256: z.record(MemberPath, Sha256Hex),
  })
  .strict();

const ANY_DATA = z.custom<unknown>((v) => v !== undefined, 'is missing');

const EventLineV1_1 = z
  .object({
    stream: z.string().min(1),
    revision: Decimal,
    type: z.string().min(1),
    schemaVersion: z.number().int().min(1),
    data: ANY_DATA,
    metadata: ANY_DATA,
    position: Decimal,
  })
  .strict();

const EventLineV1_0 = z
  .object({
    stream: z.string().min(1),
    revision: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    type: z.string().min(1),
    schemaVersion: z.number().int().min(1),
    data: ANY_DATA,
    metadata: ANY_DATA,
    position: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  })
  .strict();

/** A manifest of any known version, read as today's. */
export interface Manifest {
  readonly formatVersion: string;
  readonly ledgerVersion: string;
  readonly hostname: string;
  readonly createdAt: string;
  readonly eventCount: number;
  readonly lastPosition: bigint;
  /** The CRL number the source gateway had reached; unknown for 1.0 archives. */
  readonly crlNumber: bigint | undefined;
  /** What the archive holds, to be reproduced by a restore; 1.0 archives did not record it. */
  readonly summary: ContentSummary | undefined;
  /** Every member but the manifest, in archive order when `ordered`. */
  readonly members: readonly { readonly path: string; readonly size: number | undefined; readonly sha256: string }[];
  readonly ordered: boolean;
}

/** An events.ndjson line, read as the store's shape (data and metadata as stored, not upcast). */
export interface ArchivedEvent {
  readonly streamId: string;
  readonly revision: bigint;
  readonly position: bigint;
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: unknown;
  readonly metadata: unknown;
  /**
   * data and metadata as JSON text, cut from the line (EventLineParser with `keepJson`, for lines
   * laid out as eventLine writes them): what a store writes without serialising them again.
   */
  readonly json?: { readonly data: string; readonly metadata: string };
}

interface FormatReader {
  readonly selfChecksum: boolean;
  /** Whether its event lines are laid out as today's eventLine writes them (see cutEventLine). */
  readonly cuttable: boolean;
  readManifest(raw: unknown): z.ZodSafeParseResult<Manifest>;
  readEventLine(raw: unknown): z.ZodSafeParseResult<ArchivedEvent>;
}

const toArchivedEvent = (e: z.output<typeof EventLineV1_1> | z.output<typeof EventLineV1_0>): ArchivedEvent => ({
  streamId: e.stream,
  revision: BigInt(e.revision),
  position: BigInt(e.position),
  type: e.type,
  schemaVersion: e.schemaVersion,
  data: e.data,
  metadata: e.metadata,
});

// Built once: a line is read a million times.
const ManifestV1_0AsToday = ManifestV1_0.transform(
  (m): Manifest => ({
    formatVersion: m.formatVersion,
    ledgerVersion: m.ledgerVersion,
    hostname: m.hostname,
    createdAt: m.createdAt,
    eventCount: m.eventCount,
    lastPosition: BigInt(m.lastPosition),
    crlNumber: undefined,
    summary: undefined,
    members: Object.entries(m.sha256).map(([path, sha256]) => ({ path, size: undefined, sha256 })),
    ordered: false,
  }),
);
const ManifestV1_1AsToday = ManifestV1_1.transform(
  (m): Manifest => ({
    formatVersion: m.formatVersion,
    ledgerVersion: m.ledgerVersion,
    hostname: m.hostname,
    createdAt: m.createdAt,
    eventCount: m.eventCount,
    lastPosition: BigInt(m.lastPosition),
    crlNumber: BigInt(m.crlNumber),
    summary: m.summary,
    members: m.members,
    ordered: true,
  }),
);
const EventLineV1_0AsToday = EventLineV1_0.transform(toArchivedEvent);
const EventLineV1_1AsToday = EventLineV1_1.transform(toArchivedEvent);

const EVENT_LINE_KEYS = ['stream', 'revision', 'type', 'schemaVersion', 'data', 'metadata', 'position'] as const;

/**
 * EventLineV1_1 without zod, for the million lines of a large archive: a line it accepts is one
 * the schema accepts, read the same way; anything else (including every line the schema refuses)
 * goes through the schema, which accepts or refuses it and says why.
 */
function plainEventLineV1_1(raw: unknown): ArchivedEvent | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  if (Object.keys(o).length !== EVENT_LINE_KEYS.length) return undefined;
  for (const key of EVENT_LINE_KEYS) if (!Object.hasOwn(o, key)) return undefined;
  const { stream, revision, type, schemaVersion, data, metadata, position } = o;
  if (typeof stream !== 'string' || stream.length === 0 || typeof type !== 'string' || type.length === 0) return undefined;
  if (typeof revision !== 'string' || !DECIMAL.test(revision) || typeof position !== 'string' || !DECIMAL.test(position)) return undefined;
  if (typeof schemaVersion !== 'number' || !Number.isSafeInteger(schemaVersion) || schemaVersion < 1) return undefined;
  if (data === undefined || metadata === undefined) return undefined;
  return { streamId: stream, revision: BigInt(revision), position: BigInt(position), type, schemaVersion, data, metadata };
}

/** Every format this release reads. Adding one: its schemas and how they read as today's. */
const FORMATS: Readonly<Record<string, FormatReader>> = {
  '1.0': {
    selfChecksum: false,
    cuttable: false,
    readManifest: (raw) => ManifestV1_0AsToday.safeParse(raw),
    readEventLine: (raw) => EventLineV1_0AsToday.safeParse(raw),
  },
  '1.1': {
    selfChecksum: true,
    cuttable: true,
    readManifest: (raw) => ManifestV1_1AsToday.safeParse(raw),
    readEventLine: (raw) => {
      const plain = plainEventLineV1_1(raw);
      return plain ? { success: true, data: plain } : EventLineV1_1AsToday.safeParse(raw);
    },
  },
};

export const KNOWN_FORMAT_VERSIONS: readonly string[] = Object.keys(FORMATS);

/** Start-up check, like the upcaster chain's: the current format is readable and versions are x.y. */
export function verifyFormatTable(): void {
  if (!FORMATS[CURRENT_FORMAT_VERSION]) throw new Error(`backup format ${CURRENT_FORMAT_VERSION} has no reader`);
  for (const v of KNOWN_FORMAT_VERSIONS) {
    if (!/^\d+\.\d+$/.test(v) || compareFormatVersions(v, CURRENT_FORMAT_VERSION) > 0) throw new Error(`backup format table lists ${v}`);
  }
}

export function compareFormatVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am !== bm ? am - bm : an - bn;
}

function issuesOf(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'} ${i.message}`)
    .join('; ');
}

const SELF_CHECKSUM = /"manifestSha256":\s*"([0-9a-f]{64})"/g;
const ZEROS = '0'.repeat(64);

function sha256(data: Buffer | string): string {
  return hash('sha256', data);
}

/** The manifest's own SHA-256: over its bytes with the manifestSha256 value replaced by zeros. */
function selfChecksumOf(text: string): { recorded: string; actual: string } | undefined {
  const matches = [...text.matchAll(SELF_CHECKSUM)];
  if (matches.length !== 1) return undefined;
  const m = matches[0]!;
  const valueAt = m.index + m[0].length - 65;
  const zeroed = `${text.slice(0, valueAt)}${ZEROS}${text.slice(valueAt + 64)}`;
  return { recorded: m[1]!, actual: sha256(zeroed) };
}

/** Reads manifest.json of any known format version; refuses newer and unknown ones first. */
export function parseManifest(bytes: Buffer): Manifest {
  const text = bytes.toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new BackupArchiveError(`manifest.json is not valid JSON (${(error as Error).message}): the archive is damaged`);
  }
  const version = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>)['formatVersion'] : undefined;
  if (typeof version !== 'string' || !/^\d{1,6}\.\d{1,6}$/.test(version)) {
    throw new BackupArchiveError('manifest.json has no format version: this is not an ovpn-ledger backup, or a damaged one');
  }
  const format = FORMATS[version];
  if (!format) {
    if (compareFormatVersions(version, CURRENT_FORMAT_VERSION) > 0) {
      const by = (raw as Record<string, unknown>)['ledgerVersion'];
      throw new BackupArchiveError(
        `the archive is in backup format ${version}${typeof by === 'string' ? ` (written by ovpn-ledger ${by})` : ''}, newer than this ovpn-ledger reads (up to ${CURRENT_FORMAT_VERSION}): upgrade ovpn-ledger to restore it`,
      );
    }
    throw new BackupArchiveError(`the archive is in backup format ${version}, which no ovpn-ledger release wrote (this one reads ${KNOWN_FORMAT_VERSIONS.join(', ')})`);
  }
  if (format.selfChecksum) {
    const check = selfChecksumOf(text);
    if (!check) throw new BackupArchiveError('manifest.json does not hold exactly one manifestSha256: the archive is damaged');
    if (check.recorded !== check.actual) {
      throw new BackupArchiveError('manifest.json does not match its own SHA-256 (manifestSha256): the archive was altered or damaged');
    }
  }
  const parsed = format.readManifest(raw);
  if (!parsed.success) throw new BackupArchiveError(`manifest.json (format ${version}) is invalid: ${issuesOf(parsed.error)}`);
  const manifest = parsed.data;
  const paths = new Set<string>();
  let rank = RANK.events;
  for (const m of manifest.members) {
    if (paths.has(m.path)) throw new BackupArchiveError(`manifest.json lists ${m.path} twice`);
    paths.add(m.path);
    if (manifest.ordered) {
      const r = RANK[memberKind(m.path)!.kind];
      if (r < rank) throw new BackupArchiveError(`manifest.json lists ${m.path} out of order`);
      rank = r;
    }
  }
  for (const required of [MEMBER.events, ...REQUIRED_KEY_MEMBERS]) {
    if (!paths.has(required)) throw new BackupArchiveError(`manifest.json does not list ${required}: the archive is incomplete`);
  }
  if (manifest.ordered && manifest.members[0]?.path !== MEMBER.events) {
    throw new BackupArchiveError(`manifest.json must list ${MEMBER.events} first`);
  }
  return manifest;
}

export interface CurrentManifestInput {
  readonly ledgerVersion: string;
  readonly hostname: string;
  readonly createdAt: string;
  readonly eventCount: number;
  readonly lastPosition: bigint;
  readonly crlNumber: bigint;
  readonly summary: ContentSummary;
  readonly members: readonly { readonly path: string; readonly size: number; readonly sha256: string }[];
}

/** manifest.json in today's format, with its own checksum filled in. */
export function renderManifest(input: CurrentManifestInput): Buffer {
  const text = `${JSON.stringify(
    {
      format: ARCHIVE_FORMAT,
      formatVersion: CURRENT_FORMAT_VERSION,
      ledgerVersion: input.ledgerVersion,
      hostname: input.hostname,
      createdAt: input.createdAt,
      eventCount: input.eventCount,
      lastPosition: input.lastPosition.toString(),
      crlNumber: input.crlNumber.toString(),
      summary: input.summary,
      members: input.members.map((m) => ({ path: m.path, size: m.size, sha256: m.sha256 })),
      manifestSha256: ZEROS,
    },
    null,
    2,
  )}\n`;
  const check = selfChecksumOf(text);
  if (!check) throw new Error('internal error: manifest without its checksum field');
  return Buffer.from(text.replace(`"manifestSha256": "${ZEROS}"`, `"manifestSha256": "${check.actual}"`), 'utf8');
}

// An event line as eventLine lays it out: what comes before its data, and its metadata (as JSON
// text) with what follows. Shared with jsonOfLine, which recognises lines laid out this way.
const lineHead = (e: ArchivedEvent): string =>
  `{"stream":${JSON.stringify(e.streamId)},"revision":"${e.revision}","type":${JSON.stringify(e.type)},"schemaVersion":${e.schemaVersion},"data":`;
const lineTail = (e: ArchivedEvent, metadata: string): string => `,"metadata":${metadata},"position":"${e.position}"}`;

/** One events.ndjson line in today's format (without the newline). */
export function eventLine(e: ArchivedEvent): string {
  const json = e.json;
  // The store's own JSON text, as JSON.stringify wrote it, is the text JSON.stringify would write
  // again, without the cost (at 1M events, some 4 s of a backup). A line break in it could only be
  // whitespace that another writer put there, and would cut the line: such text is serialised again.
  if (json !== undefined && !json.data.includes('\n') && !json.metadata.includes('\n')) {
    return lineHead(e) + json.data + lineTail(e, json.metadata);
  }
  return JSON.stringify({
    stream: e.streamId,
    revision: e.revision.toString(),
    type: e.type,
    schemaVersion: e.schemaVersion,
    data: e.data,
    metadata: e.metadata,
    position: e.position.toString(),
  });
}

// ---- writing -------------------------------------------------------------------------------------

/** A .tar.gz being written to a new file (mode 0600), with the SHA-256 and size of what lands on disk. */
export class TarGzFileWriter {
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly gzip: ReturnType<typeof createGzip>,
    private readonly done: Promise<void>,
    private readonly digest: { hash: Hash; size: number },
    readonly tar: TarPacker,
  ) {}

  /** Creates `path` exclusively: an existing file is never overwritten. */
  static create(path: string): TarGzFileWriter {
    const fd = openSync(path, 'wx', 0o600);
    fchmodSync(fd, 0o600);
    const gzip = createGzip({ level: 6 });
    const digest = { hash: createHash('sha256'), size: 0 };
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        digest.hash.update(chunk);
        digest.size += chunk.length;
        callback(null, chunk);
      },
    });
    const out = createWriteStream(path, { fd, autoClose: false });
    const done = pipeline(gzip, tap, out);
    // Observed by close()/abort(); never an unhandled rejection in between.
    done.catch(() => undefined);
    const sink = async (chunk: Buffer): Promise<void> => {
      if (!gzip.write(chunk)) await Promise.race([once(gzip, 'drain'), done]);
    };
    return new TarGzFileWriter(path, fd, gzip, done, digest, new TarPacker(sink));
  }

  /** Ends the archive, flushes it to disk and reports what was written. */
  async close(): Promise<{ size: number; sha256: string }> {
    await this.tar.finish();
    this.gzip.end();
    await this.done;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.closed = true;
    return { size: this.digest.size, sha256: this.digest.hash.digest('hex') };
  }

  /** Stops writing and removes the file. */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.gzip.destroy();
    await this.done.catch(() => undefined);
    try {
      closeSync(this.fd);
    } catch {
      // already closed by the stream
    }
    rmSync(this.path, { force: true });
  }
}

// ---- reading -------------------------------------------------------------------------------------

export interface BackupVisitor {
  /** The manifest, read and checked; called before any other member. */
  manifest(manifest: Manifest): void;
  /**
   * Each event line in order, parsed (not yet checked against its schema). May return a promise
   * (checks it runs in the background, when too many are in flight): the next line waits for it.
   * Without it the lines are not read here at all, only hashed and handed to `eventBytes`: the
   * visitor reads them itself (with an EventLineParser, perhaps in another thread) and reports
   * what it finds from `eventsDone`.
   */
  event?(event: ArchivedEvent): void | Promise<void>;
  /**
   * Waits for the checks still running on the events handed over so far and rejects with the first
   * that failed; called before a problem found in a later line is reported, so that problems are
   * reported in the order of the lines.
   */
  drain?(): Promise<void>;
  /**
   * The bytes of events.ndjson as they are read, before their lines are checked (ov_restore hands
   * them to the thread that fills its staging store). Not called once a problem was found. May
   * return a promise: the reading waits for it.
   */
  eventBytes?(chunk: Buffer): void | Promise<void>;
  /** After the last event, once events.ndjson matched its SHA-256. */
  eventsDone(): void | Promise<void>;
  /** Every other member, once its bytes matched their SHA-256. */
  member(path: string, kind: MemberKind, data: Buffer): void | Promise<void>;
}

export interface ArchiveFacts {
  readonly manifest: Manifest;
  /** Of the file as stored (compressed). */
  readonly size: number;
  readonly sha256: string;
}

/** `inflated`: whether any data had been decompressed (a bad header after it is a later member's). */
function describeReadError(error: unknown, path: string, inflated: boolean): Error {
  if (error instanceof BackupArchiveError) return error;
  if (error instanceof TarFormatError) return new BackupArchiveError(error.message);
  const e = error as NodeJS.ErrnoException;
  switch (e.code) {
    case 'Z_DATA_ERROR':
      return new BackupArchiveError(
        e.message === 'incorrect header check' && !inflated
          ? `${path} is not a gzip-compressed archive: not an ovpn-ledger backup`
          : `${path} is damaged: its gzip data does not decompress (${e.message})`,
      );
    case 'Z_BUF_ERROR':
      return new BackupArchiveError(`${path} is truncated: its gzip data ends early (${e.message})`);
    case 'ENOENT':
      return new BackupArchiveError(`${path} does not exist`);
    case 'EISDIR':
      return new BackupArchiveError(`${path} is a directory, not a backup archive`);
    case 'EACCES':
      return new BackupArchiveError(`${path} cannot be read by this user`);
    default:
      return error instanceof Error ? error : new Error(String(error));
  }
}

/**
 * events.ndjson's lines, cut from chunks of any size, each parsed and read as an event line of the
 * archive's format: the one reading of those lines, whichever thread does it. A line longer than
 * MAX_EVENT_LINE, one that is not JSON, one that is not an event line and bytes that end in the
 * middle of a line are each refused with a BackupArchiveError naming the line.
 */
export class EventLineParser {
  private readonly format: FormatReader;
  private readonly keepJson: boolean;
  private readonly cut: boolean;
  private carry: Buffer[] = [];
  private carried = 0;
  private number = 0;

  /**
   * `keepJson`: also hand over data and metadata as the line's JSON text, where it can be cut out
   * (see jsonOfLine). `cut`: for a reader of lines already checked elsewhere, which needs their
   * JSON text and not their values: lines laid out as eventLine writes them are cut apart without
   * being parsed (cutEventLine; data and metadata then undefined), others read as with keepJson.
   */
  constructor(formatVersion: string, options: { keepJson?: boolean; cut?: boolean } = {}) {
    const format = FORMATS[formatVersion];
    if (!format) throw new BackupArchiveError(`backup format ${formatVersion} is not one this ovpn-ledger reads`);
    this.format = format;
    this.cut = options.cut === true && format.cuttable;
    this.keepJson = options.keepJson === true || this.cut;
  }

  /**
   * Hands `event` every event of the lines `chunk` completes, in order; at a line that is not one,
   * throws (after every event before it was handed over). `chunk` may be reused afterwards.
   */
  push(chunk: Buffer, event: (e: ArchivedEvent) => void): void {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      this.number++;
      let text: string;
      if (this.carried > 0) {
        this.carry.push(chunk.subarray(start, nl));
        const length = this.carried + nl - start;
        if (length > MAX_EVENT_LINE) throw new BackupArchiveError(`events.ndjson line ${this.number} is longer than ${MAX_EVENT_LINE} bytes`);
        text = Buffer.concat(this.carry, length).toString('utf8');
        this.carry = [];
        this.carried = 0;
      } else {
        if (nl - start > MAX_EVENT_LINE) throw new BackupArchiveError(`events.ndjson line ${this.number} is longer than ${MAX_EVENT_LINE} bytes`);
        text = chunk.toString('utf8', start, nl);
      }
      start = nl + 1;
      event(this.read(text));
    }
    if (start < chunk.length) {
      // A copy: the caller may fill `chunk` again before the line ends.
      this.carry.push(Buffer.from(chunk.subarray(start)));
      this.carried += chunk.length - start;
      if (this.carried > MAX_EVENT_LINE) throw new BackupArchiveError(`events.ndjson line ${this.number + 1} is longer than ${MAX_EVENT_LINE} bytes`);
    }
  }

  /** After the last chunk: throws when the bytes end in the middle of a line. */
  end(): void {
    if (this.carried > 0) throw new BackupArchiveError(`events.ndjson ends in the middle of line ${this.number + 1}: the archive is damaged`);
  }

  private read(text: string): ArchivedEvent {
    if (this.cut) {
      const e = cutEventLine(text);
      if (e) return e;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new BackupArchiveError(`events.ndjson line ${this.number} is not valid JSON: the archive is damaged`);
    }
    const parsed = this.format.readEventLine(raw);
    if (!parsed.success) throw new BackupArchiveError(`events.ndjson line ${this.number} is not an event line: ${issuesOf(parsed.error)}`);
    if (!this.keepJson) return parsed.data;
    const e = parsed.data;
    const json = jsonOfLine(text, e);
    if (!json) return e;
    return { streamId: e.streamId, revision: e.revision, position: e.position, type: e.type, schemaVersion: e.schemaVersion, data: e.data, metadata: e.metadata, json };
  }
}

/**
 * data and metadata of `e` as JSON text, when `line` (valid JSON, read as `e`) is exactly what
 * eventLine makes of `e` except perhaps for data's own text: then that text is the member between
 * the fixed start and end, provided it is one object (a line with "data" twice would otherwise
 * slip the first one in; JSON.parse keeps the last). Cutting it out instead of serialising the
 * parsed value again saves a restore about 3 µs per event. Undefined for any other line.
 */
export function jsonOfLine(line: string, e: ArchivedEvent): { data: string; metadata: string } | undefined {
  const metadata = JSON.stringify(e.metadata);
  const head = lineHead(e);
  const tail = lineTail(e, metadata);
  const end = line.length - tail.length;
  if (end <= head.length || !line.startsWith(head) || !line.endsWith(tail) || !isOneObject(line, head.length, end)) return undefined;
  return { data: line.slice(head.length, end), metadata };
}

/** Whether `text` from `start` to `end` is one JSON object, `text` being valid JSON: its first brace closes at `end`. */
function isOneObject(text: string, start: number, end: number): boolean {
  return objectEnd(text, start, end) === end;
}

/**
 * Where the JSON object that opens at `start` of `text` (valid JSON) ends: the index after its
 * closing brace, if that comes before `limit`; -1 otherwise, or when no object opens there.
 */
function objectEnd(text: string, start: number, limit: number): number {
  if (text.charCodeAt(start) !== 0x7b) return -1;
  let depth = 0;
  for (let i = start; i < limit; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // To the closing quote: one not escaped, i.e. after an even number of backslashes.
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i < 0 || i >= limit) return -1;
        let backslashes = 0;
        while (text.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
        if (backslashes % 2 === 0) break;
      }
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * An event line of a valid events.ndjson, cut apart without being parsed, when it is laid out
 * exactly as eventLine writes it: `{"stream":…,"revision":"…","type":…,"schemaVersion":…,
 * "data":{…},"metadata":{…},"position":"…"}`, its stream and type without escapes. Then each
 * value is the text between fixed marks, and data and metadata are the line's own JSON text
 * (`json`; `data` and `metadata` are left undefined). Undefined for any other line, which the
 * caller parses. Only for lines that were checked (parsed, against the schemas) elsewhere: a
 * line that is not valid JSON may still be cut.
 */
export function cutEventLine(line: string): ArchivedEvent | undefined {
  const STREAM = '{"stream":"';
  if (!line.startsWith(STREAM)) return undefined;
  const streamEnd = line.indexOf('"', STREAM.length);
  const streamId = line.slice(STREAM.length, streamEnd);
  if (streamEnd < 0 || streamId.length === 0 || streamId.includes('\\')) return undefined;
  const revision = digitsAfter(line, streamEnd, '","revision":"', '"');
  if (!revision) return undefined;
  const typeStart = revision.end + 1;
  if (!line.startsWith(',"type":"', typeStart)) return undefined;
  const typeEnd = line.indexOf('"', typeStart + 9);
  const type = line.slice(typeStart + 9, typeEnd);
  if (typeEnd < 0 || type.length === 0 || type.includes('\\')) return undefined;
  const version = digitsAfter(line, typeEnd, '","schemaVersion":', ',');
  if (!version) return undefined;
  const schemaVersion = Number(version.digits);
  if (!Number.isSafeInteger(schemaVersion) || schemaVersion < 1) return undefined;
  if (!line.startsWith(',"data":', version.end)) return undefined;
  const dataStart = version.end + 8;
  const dataEnd = objectEnd(line, dataStart, line.length);
  if (dataEnd < 0 || !line.startsWith(',"metadata":', dataEnd)) return undefined;
  const metadataStart = dataEnd + 12;
  const metadataEnd = objectEnd(line, metadataStart, line.length);
  if (metadataEnd < 0) return undefined;
  const position = digitsAfter(line, metadataEnd - 1, '},"position":"', '"');
  if (!position || position.end !== line.length - 2 || !line.endsWith('"}')) return undefined;
  return {
    streamId,
    revision: BigInt(revision.digits),
    position: BigInt(position.digits),
    type,
    schemaVersion,
    data: undefined,
    metadata: undefined,
    json: { data: line.slice(dataStart, dataEnd), metadata: line.slice(metadataStart, metadataEnd) },
  };
}

/** The decimal digits after `mark` (which starts at `at`) up to `stop`, and where `stop` is. */
function digitsAfter(line: string, at: number, mark: string, stop: string): { digits: string; end: number } | undefined {
  if (!line.startsWith(mark, at)) return undefined;
  const start = at + mark.length;
  const end = line.indexOf(stop, start);
  if (end <= start || end - start > 20) return undefined;
  for (let i = start; i < end; i++) {
    const c = line.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  return { digits: line.slice(start, end), end };
}

/**
 * Reads a backup archive from start to end, checking its structure and every member's SHA-256,
 * and hands the content to `visitor` as it streams by. Throws BackupArchiveError (or what the
 * visitor throws) at the first problem; when it returns, every byte of the file was accounted for.
 */
export async function readBackupArchive(
  path: string,
  visitor: BackupVisitor,
  options: { onEvents?: (count: number) => void } = {},
): Promise<ArchiveFacts> {
  const fileHash = createHash('sha256');
  let fileSize = 0;
  const file = createReadStream(path, { highWaterMark: 256 * 1024 });
  file.on('data', (chunk) => {
    fileHash.update(chunk as Buffer);
    fileSize += chunk.length;
  });
  // 256 KiB pieces (zlib's default is 16 KiB): most members whole in one of them, and few passes
  // on the thread pool. Measured on the bench archive (1.4 GB inflated), 64 KiB pieces cost the
  // reading thread 0.9 s of dispatching (3.3 s in a restore, where every core is busy); 256 KiB
  // pieces 0.08 s.
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  const piped = pipeline(file, gunzip).catch((error: unknown) => error);
  // An archive is a series of gzip members: a damaged header after the first one is damage, not
  // a file that was never gzip.
  let inflated = 0;
  async function* counted(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      inflated += chunk.length;
      yield chunk;
    }
  }
  try {
    let manifest: Manifest | undefined;
    let expected: Map<string, { size: number | undefined; sha256: string; index: number }> = new Map();
    const seen = new Set<string>();
    let next = 0;
    let rank = RANK.manifest;

    for await (const entry of readTar(counted(gunzip))) {
      if (!manifest) {
        if (entry.path !== MEMBER.manifest) {
          throw new BackupArchiveError(`the archive starts with ${entry.path}, not manifest.json: not an ovpn-ledger backup`);
        }
        manifest = parseManifest(await readBody(entry, MAX_MANIFEST));
        expected = new Map(manifest.members.map((m, index) => [m.path, { size: m.size, sha256: m.sha256, index }]));
        visitor.manifest(manifest);
        continue;
      }
      const listed = expected.get(entry.path);
      if (!listed) {
        throw new BackupArchiveError(
          entry.path === MEMBER.manifest ? 'the archive holds a second manifest.json' : `the archive holds ${entry.path}, which its manifest does not list`,
        );
      }
      if (seen.has(entry.path)) throw new BackupArchiveError(`the archive holds ${entry.path} twice`);
      if (manifest.ordered && listed.index !== next) {
        const missing = manifest.members[next]?.path ?? '?';
        throw new BackupArchiveError(`${missing} is missing from the archive (its manifest lists it before ${entry.path}): the archive is incomplete`);
      }
      const kind = memberKind(entry.path)!;
      const r = RANK[kind.kind];
      if (r < rank || (r === RANK.events) !== (seen.size === 0)) {
        throw new BackupArchiveError(`${entry.path} is out of order in the archive (events, then keys, client keys, profiles, config)`);
      }
      rank = r;
      if (listed.size !== undefined && listed.size !== entry.size) {
        throw new BackupArchiveError(`${entry.path} is ${entry.size} bytes, but the manifest says ${listed.size}: the archive was altered or damaged`);
      }
      seen.add(entry.path);
      next = listed.index + 1;
      const mismatch = () =>
        new BackupArchiveError(`${entry.path} does not match its SHA-256 in the manifest: the archive was altered or damaged`);

      if (kind.kind === 'events') {
        await readEvents(entry, manifest.formatVersion, visitor, listed.sha256, mismatch, options.onEvents);
        await visitor.eventsDone();
        continue;
      }
      const data = await readBody(entry, MAX_SMALL_MEMBER);
      if (sha256(data) !== listed.sha256) throw mismatch();
      await visitor.member(entry.path, kind, data);
    }
    if (!manifest) throw new BackupArchiveError(`${path} holds no members: not an ovpn-ledger backup`);
    for (const m of manifest.members) {
      if (!seen.has(m.path)) throw new BackupArchiveError(`${m.path} is missing from the archive (its manifest lists it): the archive is incomplete`);
    }
    const streamError = await piped;
    if (streamError) throw streamError;
    return { manifest, size: fileSize, sha256: fileHash.digest('hex') };
  } catch (error) {
    throw describeReadError(error, path, inflated > 0);
  } finally {
    file.destroy();
    gunzip.destroy();
  }
}

/**
 * Streams the events to the visitor. The first problem (a line that does not parse, or an event
 * the visitor refuses) stops the visitor but not the hashing: when the member does not match its
 * SHA-256 the archive was altered, and that is what the operator is told, whatever else is wrong.
 * A visitor without `event` gets the bytes only (see BackupVisitor).
 */
async function readEvents(
  entry: TarEntry,
  formatVersion: string,
  visitor: BackupVisitor,
  expectedSha256: string,
  mismatch: () => Error,
  onEvents: ((count: number) => void) | undefined,
): Promise<void> {
  const hash = createHash('sha256');
  const parser = visitor.event ? new EventLineParser(formatVersion) : undefined;
  let count = 0;
  let problem: unknown;
  /** A problem of this line, unless the visitor's checks of an earlier one failed. */
  const inOrder = async (error: unknown): Promise<unknown> => {
    try {
      await visitor.drain?.();
    } catch (earlier) {
      return earlier;
    }
    return error;
  };
  /** The visitor's verdict on each event of a chunk, in order, then the chunk's own problem if any. */
  const visit = async (events: readonly ArchivedEvent[], lineProblem: unknown): Promise<void> => {
    for (const e of events) {
      try {
        const waiting = visitor.event!(e);
        if (waiting) await waiting;
      } catch (error) {
        problem = error;
        return;
      }
      count++;
      if (onEvents && count % 10_000 === 0) onEvents(count);
    }
    if (lineProblem !== undefined) problem = await inOrder(lineProblem);
  };
  for await (const chunk of entry.body) {
    hash.update(chunk);
    if (problem !== undefined) continue;
    if (visitor.eventBytes) {
      const waiting = visitor.eventBytes(chunk);
      if (waiting) await waiting;
    }
    if (!parser) continue;
    const events: ArchivedEvent[] = [];
    let lineProblem: unknown;
    try {
      parser.push(chunk, (e) => events.push(e));
    } catch (error) {
      lineProblem = error;
    }
    await visit(events, lineProblem);
  }
  if (hash.digest('hex') !== expectedSha256) throw mismatch();
  if (parser && problem === undefined) {
    try {
      parser.end();
    } catch (error) {
      problem = await inOrder(error);
    }
  }
  if (problem !== undefined) throw problem;
  if (parser) onEvents?.(count);
}
