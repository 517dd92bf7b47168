// ov_backup: the event log and the key material in one archive (see adapters/archive/backup-archive.ts
// for its layout), taken as a consistent snapshot while other commands may be writing.
//
// Consistency: the events are read inside one SQLite read transaction, so the archive holds the
// log as of one instant, and only the keys and profiles that snapshot refers to. Those files are
// always on disk before their event is appended (issue-client-profile.ts) and never change, so
// every one the snapshot needs is there to read, whatever is appended meanwhile.
//
// The events go to a temporary file first (the manifest, which leads the archive, needs their
// SHA-256), then everything is written to a hidden partial file that is hard-linked to its final
// name once complete and flushed: no half-written archive ever carries the final name.
import { createHash, X509Certificate } from 'node:crypto';
import { closeSync, createReadStream, existsSync, fchmodSync, linkSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import {
  eventLine,
  MEMBER,
  renderManifest,
  TarGzFileWriter,
  type ContentSummary,
} from '../../adapters/archive/backup-archive.js';
import { syncDirectory } from '../../adapters/fs/atomic-file.js';
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

export async function backupGateway(ledger: Ledger, input: BackupInput): Promise<E.Either<Failure, BackupResult>> {
  const { layout } = ledger;
  const now = ledger.clock.now();
  const name = archiveName(input.hostname, now);
  const finalPath = join(input.outputDir, name);
  if (existsSync(finalPath)) return E.left(refused(`${finalPath} already exists; nothing was written (run ov_backup again in a second, or use --output-dir)`));
  const eventsTemp = join(input.outputDir, `.${name}.events.tmp`);
  const partial = join(input.outputDir, `.${name}.partial`);
  let writer: TarGzFileWriter | undefined;

  try {
    // 1. The log as of one instant, checked as a restore will check it, to a temporary file.
    const replay = new LogReplay();
    const eventsHash = createHash('sha256');
    let eventsSize = 0;
    const fd = openSync(eventsTemp, 'wx', 0o600);
    let snapshot: { count: number; lastPosition: bigint };
    try {
      fchmodSync(fd, 0o600);
      let pending: string[] = [];
      let pendingLength = 0;
      const flush = () => {
        const bytes = Buffer.from(pending.join(''), 'utf8');
        eventsHash.update(bytes);
        eventsSize += bytes.length;
        for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
        pending = [];
        pendingLength = 0;
      };
      snapshot = ledger.readEventSnapshot((event) => {
        replay.add(event);
        const line = `${eventLine(event)}\n`;
        pending.push(line);
        pendingLength += line.length;
        if (pendingLength >= 1 << 20) flush();
        if (replay.count % 50_000 === 0) input.onProgress?.(`reading events: ${replay.count}`);
      });
      flush();
    } finally {
      closeSync(fd);
    }
    const summary = replay.summary();
    const gateway = replay.gateway!;

    // 2. The files that snapshot needs.
    const needed = replay.neededCertificates(now.toISOString());
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
    const files: HashedFile[] = [];
    for (const file of planned) {
      const data = readIfExists(file.source);
      if (!data) {
        if (file.requiredAs) return E.left(refused(`${file.requiredAs} is missing (${file.source}); the state is damaged, so no backup was written`));
        continue;
      }
      if (file.path === MEMBER.caCert || file.path === MEMBER.serverCert) {
        const expected = file.path === MEMBER.caCert ? gateway.caCertificatePem : gateway.serverCertificatePem;
        if (!new X509Certificate(data).raw.equals(new X509Certificate(expected).raw)) {
          return E.left(refused(`${file.source} is not the certificate the event log records; no backup was written`));
        }
      }
      files.push({ ...file, size: data.length, sha256: sha256(data) });
    }

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
    const eventsSha256 = eventsHash.digest('hex');
    const manifest = renderManifest({
      ledgerVersion: LEDGER_VERSION,
      hostname: input.hostname,
      createdAt: header.createdAt,
      eventCount: snapshot.count,
      lastPosition: snapshot.lastPosition,
      crlNumber,
      summary,
      members: [{ path: MEMBER.events, size: eventsSize, sha256: eventsSha256 }, ...files],
    });

    // 4. The archive, each member checked again against what the manifest says as it is written.
    input.onProgress?.('writing the archive');
    const mtime = Math.floor(now.getTime() / 1000);
    const w = TarGzFileWriter.create(partial);
    writer = w;
    await w.tar.addBuffer(MEMBER.manifest, manifest, { mode: 0o600, mtime });
    const rehash = createHash('sha256');
    await w.tar.addStream(
      { path: MEMBER.events, size: eventsSize, mode: 0o600, mtime },
      (async function* () {
        for await (const chunk of createReadStream(eventsTemp, { highWaterMark: 1 << 20 })) {
          rehash.update(chunk as Buffer);
          yield chunk as Buffer;
        }
      })(),
    );
    if (rehash.digest('hex') !== eventsSha256) throw new Error(`${eventsTemp} changed while the backup was being written`);
    let written = 0;
    for (const file of files) {
      const data = readFileSync(file.source);
      if (data.length !== file.size || sha256(data) !== file.sha256) {
        throw new Error(`${file.source} changed while the backup was being written; run ov_backup again`);
      }
      await w.tar.addBuffer(file.path, data, { mode: 0o600, mtime });
      if (++written % 20_000 === 0) input.onProgress?.(`writing the archive: ${written} of ${files.length} files`);
    }
    const archive = await w.close();

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
      size: archive.size,
      sha256: archive.sha256,
      header,
      summary,
      crlNumber,
      clientKeys: files.filter((f) => f.path.startsWith('keys/clients/')).length,
      profiles: files.filter((f) => f.path.startsWith('profiles/')).length,
    });
  } catch (error) {
    if (error instanceof HistoryError) {
      return E.left(refused(`the event log cannot be restored as it is, so no backup was written: ${error.message}`));
    }
    throw error;
  } finally {
    await writer?.abort();
    rmSync(partial, { force: true });
    rmSync(eventsTemp, { force: true });
  }
}
