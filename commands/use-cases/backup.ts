// ov_backup: the event log and the key material in one archive (see adapters/archive/backup-archive.ts
// for its layout), taken as a consistent snapshot while other commands may be writing.
//
// Consistency: the events are read inside one SQLite read transaction (or, with OVL_EVENT_STORE, from
// EventStoreDB's $all up to the head position seen when the backup starts: that log is append-only),
// so the archive holds the log as of one instant, and only the keys and profiles that snapshot
// refers to. Those files are
// always on disk before their event is appended (issue-client-profile.ts) and never change, so
// every one the snapshot needs is there to read, whatever is appended meanwhile.
//
// Layout on disk: the archive is one gzip file made of several gzip members (RFC 1952; gzip -d,
// tar and every gunzip read them as one stream). The manifest leads the archive but needs the
// SHA-256 of everything after it, so the rest is compressed first, into two hidden temporary
// files beside the archive, while it is read: the events (compressed while the log is replayed and
// checked) and the keys, profiles and configuration files (each read once, hashed and archived
// from the same bytes). Compression runs on libuv's thread pool, one 1 MiB block per member, on
// every core. Then a hidden partial file gets the manifest and the header of events.ndjson, the
// two compressed parts (checked against their own SHA-256 as they are copied), and the end-of-
// archive blocks; it is flushed and hard-linked to its final name: no half-written archive ever
// carries the final name.
import { createHash, X509Certificate } from 'node:crypto';
import { closeSync, existsSync, fchmodSync, fsyncSync, linkSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { eventLine, MEMBER, renderManifest, type ContentSummary } from '../../adapters/archive/backup-archive.js';
import { GzipMembersFile, gzipMember } from '../../adapters/archive/gzip-members.js';
import { BLOCK, encodeHeader, paddingLength, RECORD, TarPacker } from '../../adapters/archive/tar.js';
import { syncDirectory } from '../../adapters/fs/atomic-file.js';
import { PageCacheWarmer } from '../../adapters/fs/page-cache-warmer.js';
import { readCrlNumber } from '../../adapters/pki/crl-encoder.js';
import { dnsConfPath, emailConfPath, gatewayConfPath } from '../../infra/config/paths.js';
import { refused, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { LEDGER_VERSION } from '../version.js';
import { HistoryError, LogReplay, type SummaryHeader } from './log-replay.js';

export interface BackupInput {
  readonly outputDir: string;
  readonly hostname: string;
  readonly configDir: string;
  readonly onProgress?: (text: string) => void;
}

export interface BackupResult {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly header: SummaryHeader;
  readonly summary: ContentSummary;
  readonly crlNumber: bigint;
  readonly clientKeys: number;
  readonly profiles: number;
  /** Which log the events were read from ('the embedded store', or 'EventStoreDB at …'). */
  readonly source: string;
}

/** 2025-03-01T12:00:00.000Z → 20250301T120000Z: sortable, and no colons for scp to trip on. */
export function compactUtc(instant: Date): string {
  return instant.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

export function archiveName(hostname: string, instant: Date): string {
  const host = hostname.replace(/[^A-Za-z0-9.-]/g, '-').replace(/^[.-]+/, '') || 'gateway';
  return `backup-${host}-${compactUtc(instant)}.tar.gz`;
}

interface PlannedFile {
  readonly path: string;
  readonly source: string;
  /** What is missing, said to the operator, when the file must be there; undefined when optional. */
  readonly requiredAs: string | undefined;
}

interface HashedFile extends PlannedFile {
  readonly size: number;
  readonly sha256: string;
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

function readIfExists(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * zlib's fastest level. Measured on a 100,000-profile gateway's archive contents (1 MiB blocks):
 * level 1 compresses the events about 1.7× and the keys and profiles about 1.2× faster than gzip's
 * default of 6, for an archive some 6 % larger. A backup is bound by CPU (two cores between the
 * reading thread and the compression), and bytes on disk are cheaper than those seconds.
 */
const GZIP_LEVEL = 1;

/** Events read before the page cache warmer starts (a second or two into a long log). */
const WARM_AFTER_EVENTS = 20_000;

function writeAll(fd: number, bytes: Buffer): void {
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
}

export async function backupGateway(ledger: Ledger, input: BackupInput): Promise<E.Either<Failure, BackupResult>> {
  const { layout } = ledger;
  const now = ledger.clock.now();
  const name = archiveName(input.hostname, now);
  const finalPath = join(input.outputDir, name);
  if (existsSync(finalPath)) return E.left(refused(`${finalPath} already exists; nothing was written (run ov_backup again in a second, or use --output-dir)`));
  const eventsTemp = join(input.outputDir, `.${name}.events.tmp`);
  const filesTemp = join(input.outputDir, `.${name}.files.tmp`);
  const partial = join(input.outputDir, `.${name}.partial`);
  const temporary: GzipMembersFile[] = [];
  let partialFd: number | undefined;
  // Step 2 reads every key and profile, one after the other; while step 1 keeps this thread busy
  // with a long log, other threads bring those that are not cached in from the disk. Started
  // once the log proves long: for a small gateway the threads would cost more than they save.
  let warmer: PageCacheWarmer | undefined;

  try {
    // 1. The log as of one instant, checked as a restore will check it, compressed as it goes.
    const events = GzipMembersFile.create(eventsTemp, { level: GZIP_LEVEL });
    temporary.push(events);
    const eventsHash = createHash('sha256');
    let eventsSize = 0;
    let snapshot: { count: number; lastPosition: bigint; source: string };
    let summary: ContentSummary;
    let gateway: NonNullable<LogReplay['gateway']>;
    let needed: ReturnType<LogReplay['neededCertificates']>;
    {
      // In a block of its own: the replay's state (hundreds of MB at 100,000 profiles) is garbage
      // once it has said what the archive must hold, before the files are read.
      const replay = new LogReplay();
      let pending: string[] = [];
      let pendingLength = 0;
      const flush = (): Promise<void> | undefined => {
        const bytes = Buffer.from(pending.join(''), 'utf8');
        pending = [];
        pendingLength = 0;
        eventsHash.update(bytes);
        eventsSize += bytes.length;
        return events.write(bytes);
      };
      snapshot = await ledger.readEventSnapshot((event) => {
        replay.add(event);
        if (replay.count === WARM_AFTER_EVENTS) {
          warmer = PageCacheWarmer.start([
            { path: layout.clientKeysDir, depth: 0 },
            { path: layout.profilesDir, depth: 1 },
          ]);
        }
        const line = `${eventLine(event)}\n`;
        pending.push(line);
        pendingLength += line.length;
        if (replay.count % 50_000 === 0) input.onProgress?.(`reading events: ${replay.count}`);
        return pendingLength >= 1 << 20 ? flush() : undefined;
      });
      await flush();
      // events.ndjson's padding to a whole tar block, so that the files' members follow it.
      await events.write(Buffer.alloc(paddingLength(eventsSize)));
      summary = replay.summary();
      gateway = replay.gateway!;
      needed = replay.neededCertificates(now.toISOString());
    }
    input.onProgress?.('compressing the events');
    await events.close();

    // 2. The files that snapshot needs, each read once: hashed and archived from the same bytes.
    const planned: PlannedFile[] = [
      { path: MEMBER.caKey, source: layout.caKey, requiredAs: 'the CA private key' },
      { path: MEMBER.caCert, source: layout.caCert, requiredAs: 'the CA certificate' },
      { path: MEMBER.serverKey, source: layout.serverKey, requiredAs: 'the server private key' },
      { path: MEMBER.serverCert, source: layout.serverCert, requiredAs: 'the server certificate' },
      { path: MEMBER.tlsCryptKey, source: layout.tlsCryptKey, requiredAs: 'the tls-crypt key' },
      { path: MEMBER.profileIdKey, source: layout.profileIdKey, requiredAs: 'the profile-id key' },
      ...needed.map((n) => ({
        path: MEMBER.clientKey(n.serial),
        source: layout.clientKey(n.serial),
        requiredAs: n.required ? `the private key of ${n.email} (${n.traffic}), serial ${n.serial}` : undefined,
      })),
      ...needed.map((n) => ({
        path: MEMBER.profile(n.profileId, n.serial),
        source: layout.profile(n.profileId, n.serial),
        requiredAs: n.required ? `the profile of ${n.email} (${n.traffic}), serial ${n.serial}` : undefined,
      })),
      { path: MEMBER.gatewayConf, source: gatewayConfPath(input.configDir), requiredAs: undefined },
      { path: MEMBER.emailConf, source: emailConfPath(input.configDir), requiredAs: undefined },
      { path: MEMBER.dnsConf, source: dnsConfPath(input.configDir), requiredAs: undefined },
    ];
    const mtime = Math.floor(now.getTime() / 1000);
    const filesPart = GzipMembersFile.create(filesTemp, { level: GZIP_LEVEL });
    temporary.push(filesPart);
    const tar = new TarPacker(async (chunk) => {
      const waiting = filesPart.write(chunk);
      if (waiting) await waiting;
    });
    const files: HashedFile[] = [];
    let filesTarSize = 0;
    for (const file of planned) {
      const data = readIfExists(file.source);
      if (!data) {
        if (!file.requiredAs) continue;
        if (snapshot.source.startsWith('EventStoreDB')) {
          // A fleet: each gateway keeps the keys and profiles it issued itself.
          return E.left(
            refused(
              `${file.requiredAs} is missing (${file.source}): the log in ${snapshot.source} needs it, and each gateway of a fleet ` +
                `keeps only the keys and profiles it issued; copy keys/clients/ and profiles/ from the other gateways here, then run ov_backup again; no backup was written`,
            ),
          );
        }
        return E.left(refused(`${file.requiredAs} is missing (${file.source}); the state is damaged, so no backup was written`));
      }
      if (file.path === MEMBER.caCert || file.path === MEMBER.serverCert) {
        const expected = file.path === MEMBER.caCert ? gateway.caCertificatePem : gateway.serverCertificatePem;
        if (!new X509Certificate(data).raw.equals(new X509Certificate(expected).raw)) {
          return E.left(refused(`${file.source} is not the certificate the event log records; no backup was written`));
        }
      }
      files.push({ ...file, size: data.length, sha256: sha256(data) });
      await tar.addBuffer(file.path, data, { mode: 0o600, mtime });
      filesTarSize += BLOCK + data.length + paddingLength(data.length);
      if (files.length % 20_000 === 0) input.onProgress?.(`archiving files: ${files.length} of ${planned.length}`);
    }
    await warmer?.stop();
    await filesPart.close();

    // 3. The CRL number reached, so a restore keeps counting up from it.
    const recorded = ledger.crl.lastPublication()?.number ?? 0n;
    const crlFile = readIfExists(layout.crl);
    const onDisk = crlFile ? (readCrlNumber(crlFile) ?? 0n) : 0n;
    const crlNumber = recorded > onDisk ? recorded : onDisk;

    const header: SummaryHeader = {
      hostname: input.hostname,
      createdAt: now.toISOString(),
      formatVersion: '1.1',
      ledgerVersion: LEDGER_VERSION,
      lastPosition: snapshot.lastPosition,
    };
    const manifest = renderManifest({
      ledgerVersion: LEDGER_VERSION,
      hostname: input.hostname,
      createdAt: header.createdAt,
      eventCount: snapshot.count,
      lastPosition: snapshot.lastPosition,
      crlNumber,
      summary,
      members: [{ path: MEMBER.events, size: eventsSize, sha256: eventsHash.digest('hex') }, ...files],
    });

    // 4. The archive: manifest and events header, the two compressed parts, the end of the archive.
    input.onProgress?.('writing the archive');
    const fd = openSync(partial, 'wx', 0o600);
    partialFd = fd;
    fchmodSync(fd, 0o600);
    const archiveHash = createHash('sha256');
    let archiveSize = 0;
    const put = (bytes: Buffer): void => {
      archiveHash.update(bytes);
      archiveSize += bytes.length;
      writeAll(fd, bytes);
    };
    const head = Buffer.concat([
      encodeHeader({ path: MEMBER.manifest, size: manifest.length, mode: 0o600, mtime }),
      manifest,
      Buffer.alloc(paddingLength(manifest.length)),
      encodeHeader({ path: MEMBER.events, size: eventsSize, mode: 0o600, mtime }),
    ]);
    put(gzipMember(head, GZIP_LEVEL));
    for (const part of [events, filesPart]) copyPart(part, put);
    // Two zero blocks, then zeros up to a whole record, as tar(1) ends an archive.
    const tarLength = head.length + eventsSize + paddingLength(eventsSize) + filesTarSize + 2 * BLOCK;
    put(gzipMember(Buffer.alloc(2 * BLOCK + ((RECORD - (tarLength % RECORD)) % RECORD)), GZIP_LEVEL));
    fsyncSync(fd);
    closeSync(fd);
    partialFd = undefined;

    // 5. The final name, only now and never over an existing file.
    try {
      linkSync(partial, finalPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return E.left(refused(`${finalPath} appeared while the backup ran; nothing was written`));
      throw error;
    }
    syncDirectory(input.outputDir);

    return E.right({
      path: finalPath,
      size: archiveSize,
      sha256: archiveHash.digest('hex'),
      header,
      summary,
      crlNumber,
      clientKeys: files.filter((f) => f.path.startsWith('keys/clients/')).length,
      profiles: files.filter((f) => f.path.startsWith('profiles/')).length,
      source: snapshot.source,
    });
  } catch (error) {
    if (error instanceof HistoryError) {
      return E.left(refused(`the event log cannot be restored as it is, so no backup was written: ${error.message}`));
    }
    throw error;
  } finally {
    await warmer?.stop();
    if (partialFd !== undefined) closeSync(partialFd);
    for (const part of temporary) part.abort();
    rmSync(partial, { force: true });
  }
}

/** Copies a compressed part into the archive, checking it is byte for byte what was written to it. */
function copyPart(part: GzipMembersFile, put: (bytes: Buffer) => void): void {
  const fd = openSync(part.path, 'r');
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(1 << 20);
    let size = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      const bytes = buffer.subarray(0, n);
      hash.update(bytes);
      size += n;
      put(bytes);
    }
    if (size !== part.size || hash.digest('hex') !== part.sha256()) throw new Error(`${part.path} changed while the backup was being written; run ov_backup again`);
  } finally {
    closeSync(fd);
  }
}
