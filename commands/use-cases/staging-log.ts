// The event log of ov_restore's staging directory: events.ndjson's bytes, as the archive is read,
// appended to a fresh store and projected into its read models in the same pass.
//
// This is half of a restore's work (a million appends and a million projected events), so on a
// gateway with more than one core it runs in a worker thread of its own (restore-staging-worker.ts)
// while the main thread goes on reading and checking the archive. The worker gets the raw bytes
// (through a spool file it follows) and reads the lines again itself; everything it could refuse,
// the main thread refuses first (readBackupArchive and the replay check every line), so the worker
// only fails on a fault of its own, reported as such. Without a worker (tests, or a build without
// the worker file) the same loader runs in the main thread.
import { closeSync, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as E from 'fp-ts/lib/Either.js';
import { eventLineReader, type ArchivedEvent } from '../../adapters/archive/backup-archive.js';
import { LineSplitter } from '../../adapters/archive/line-splitter.js';
import type { BulkLoader, LoadedEvent, SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import type { Envelope } from '../../domain/events.js';
import { decodeStoredEvent, describeDecodeError } from '../../domain/upcasters.js';
import type { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';

/** What the loader needs of a fresh state (infra/composition-root.ts openFreshState). */
export interface FreshLog {
  readonly store: SqliteEventStore;
  readonly projections: SqliteProjectionStore;
  close(): void;
}

/** The event at the position the staging store gave it (the archive's may have gaps; the store's do not). */
const atPosition = (e: Envelope, position: bigint): Envelope =>
  ({ type: e.type, data: e.data, metadata: e.metadata, streamId: e.streamId, revision: e.revision, position }) as Envelope;

const BATCH = 10_000;

/** Splits bytes into lines, appends each event as stored and projects it as decoded (upcast). */
export class StagingLogLoader {
  private readonly lines = new LineSplitter();
  private batch: LoadedEvent[] = [];
  private decoded: Envelope[] = [];
  private readonly readLine: (raw: unknown) => ArchivedEvent;
  private readonly readModels: { apply(events: readonly Envelope[]): void; finish(): number };
  private readonly log: BulkLoader;

  constructor(fresh: FreshLog, formatVersion: string) {
    this.readLine = eventLineReader(formatVersion);
    // The restore's replay checks every stream's revisions; the store takes them as they come.
    this.log = fresh.store.bulkLoader();
    this.readModels = fresh.projections.projectLogAsWritten();
  }

  bytes(chunk: Buffer): void {
    this.lines.push(chunk, (text) => this.line(text));
  }

  private line(text: string): void {
    const e = this.readLine(JSON.parse(text));
    const decoded = decodeStoredEvent(e);
    if (E.isLeft(decoded)) throw new Error(`event at position ${e.position}: ${describeDecodeError(decoded.left)}`);
    this.batch.push({ streamId: e.streamId, revision: e.revision, type: e.type, schemaVersion: e.schemaVersion, data: e.data, metadata: e.metadata });
    this.decoded.push(decoded.right);
    if (this.batch.length >= BATCH) this.flush();
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const positions = this.log.append(this.batch);
    this.readModels.apply(this.decoded.map((d, i) => atPosition(d, positions[i]!)));
    this.batch = [];
    this.decoded = [];
  }

  /** After the last byte: the last events, the user rows and the audit indexes; returns how many events were projected. */
  end(): number {
    this.lines.end('events.ndjson');
    this.flush();
    this.log.finish();
    return this.readModels.finish();
  }
}

/** events.ndjson, as the archive is read, into the staging store. */
export interface StagingLog {
  /** The next bytes of events.ndjson; a promise when the caller should wait before handing over more. */
  bytes(chunk: Buffer): Promise<void> | undefined;
  /** After the last byte: resolves, once every event is appended and projected and the store closed, with how many there were. */
  end(): Promise<number>;
  /** Gives up: resolves once the store is closed (the staging directory is about to be removed). */
  abort(): Promise<void>;
}

/** The loader in this thread, over a store this opens and closes. */
export function stagingLogHere(open: () => FreshLog, formatVersion: string): StagingLog {
  const fresh = open();
  let loader: StagingLogLoader;
  try {
    loader = new StagingLogLoader(fresh, formatVersion);
  } catch (error) {
    fresh.close();
    throw error;
  }
  let closed = false;
  const close = () => {
    if (!closed) fresh.close();
    closed = true;
  };
  return {
    bytes(chunk) {
      loader.bytes(chunk);
      return undefined;
    },
    async end() {
      try {
        return loader.end();
      } finally {
        close();
      }
    },
    async abort() {
      close();
    },
  };
}

/** What the worker is told when it starts. */
export interface StagingWorkerData {
  readonly stagingDir: string;
  readonly formatVersion: string;
  /** The file in the staging directory that events.ndjson's bytes are appended to as they are read; the worker follows it. */
  readonly spoolPath: string;
}

/** To the worker: the spool has grown to `size` bytes; `end`: and that is all of it. */
export type StagingWorkerRequest = { readonly kind: 'grown' | 'end'; readonly size: number };

export type StagingWorkerMessage = { readonly kind: 'done'; readonly events: number } | { readonly kind: 'failed'; readonly message: string };

/** Bytes spooled between two messages telling the worker to read on. */
const NOTIFY = 1024 * 1024;

/**
 * The loader in a worker thread running `script` (restore-staging-worker.ts), over the store of
 * `stagingDir`. The bytes go through a file rather than messages so that the reading never waits
 * for the worker: on two cores the worker is the slower of the two, and the reading thread goes
 * on to check keys and profiles while the worker still appends and projects; holding the bytes in
 * memory instead would cost what the archive holds (hundreds of MiB), a file only disk space, and
 * it is read back from the page cache.
 */
export function stagingLogInWorker(script: URL, data: StagingWorkerData): StagingLog {
  const fd = openSync(data.spoolPath, 'wx', 0o600);
  let fdOpen = true;
  const closeSpool = () => {
    if (fdOpen) closeSync(fd);
    fdOpen = false;
  };
  const worker = new Worker(script, { workerData: data });
  let size = 0;
  let told = 0;
  let failure: Error | undefined;
  let finished = false;
  let settle: { resolve: (events: number) => void; reject: (error: Error) => void } | undefined;
  const done = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => undefined);
  const fail = (error: Error) => {
    failure ??= error;
    settle!.reject(failure);
  };
  worker.on('message', (m: StagingWorkerMessage) => {
    if (m.kind === 'done') {
      finished = true;
      settle!.resolve(m.events);
    } else {
      fail(new Error(`the staging store could not be filled: ${m.message}`));
    }
  });
  worker.on('error', (error) => fail(error));
  const exited = new Promise<void>((resolve) =>
    worker.on('exit', (code) => {
      if (!finished) fail(new Error(`the staging store's worker stopped (exit code ${code}) before it was done`));
      resolve();
    }),
  );
  const tell = (kind: StagingWorkerRequest['kind']) => {
    worker.postMessage({ kind, size } satisfies StagingWorkerRequest);
    told = size;
  };
  return {
    bytes(chunk) {
      if (failure) throw failure;
      for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
      size += chunk.length;
      if (size - told >= NOTIFY) tell('grown');
      return undefined;
    },
    async end() {
      if (failure) throw failure;
      closeSpool();
      tell('end');
      const events = await done;
      await exited;
      rmSync(data.spoolPath, { force: true });
      return events;
    },
    async abort() {
      closeSpool();
      if (!finished) await worker.terminate();
      await exited;
    },
  };
}

/** The worker when its script is there (the built commands have it beside them), else this thread. */
export function openStagingLog(options: { worker: URL | undefined; open: () => FreshLog; data: StagingWorkerData }): StagingLog {
  if (options.worker && existsSync(fileURLToPath(options.worker))) return stagingLogInWorker(options.worker, options.data);
  return stagingLogHere(options.open, options.data.formatVersion);
}
