// events.ndjson of the archive ov_restore reads: its lines read, replayed and checked
// (event-checks.ts), and, for a real restore into the embedded store, appended to the fresh store
// of the staging directory and projected into its read models.
//
// Storing is about half of a restore's work (a million appends and a million projected events),
// so when the built worker is there it runs in a thread of its own (restore-staging-worker.ts),
// which reads the lines again itself while this thread checks them. Measured at a million events,
// this split is faster than one thread doing both from a single parse (about 50 s against 30 s
// for the store alone and 25 s for the checks alone): the two heaps' garbage collections stay
// small. A dry run and a restore into EventStoreDB only check; without the worker (tests) the
// store is filled in this thread from the same parse.
import { closeSync, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ArchivedEvent } from '../../adapters/archive/backup-archive.js';
import type { BulkLoader, LoadedEvent, SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import type { Envelope } from '../../domain/events.js';
import type { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { EventStage, type EventFacts, type EventSink } from './event-checks.js';

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

/** Appends each checked event as stored and projects it as decoded (upcast). */
export class StagingLogLoader implements EventSink {
  private batch: LoadedEvent[] = [];
  private decoded: Envelope[] = [];
  private readonly readModels: { apply(events: readonly Envelope[]): void; finish(): number };
  private readonly log: BulkLoader;

  constructor(fresh: FreshLog) {
    // The replay checks every stream's revisions; the store takes them as they come.
    this.log = fresh.store.bulkLoader();
    this.readModels = fresh.projections.projectLogAsWritten();
  }

  add(e: ArchivedEvent, decoded: Envelope): void {
    this.batch.push({ streamId: e.streamId, revision: e.revision, type: e.type, schemaVersion: e.schemaVersion, data: e.data, metadata: e.metadata, json: e.json });
    this.decoded.push(decoded);
    if (this.batch.length >= BATCH) this.flush();
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const positions = this.log.append(this.batch);
    this.readModels.apply(this.decoded.map((d, i) => atPosition(d, positions[i]!)));
    this.batch = [];
    this.decoded = [];
  }

  /** After the last event: the last batch, the user rows and the audit indexes; returns how many events were projected. */
  end(): number {
    this.flush();
    this.log.finish();
    return this.readModels.finish();
  }
}

/** events.ndjson, as the archive is read: checked, and stored when there is a staging store. */
export interface StagingLog {
  /** The next bytes of events.ndjson; a promise when the caller should wait before handing over more. */
  bytes(chunk: Buffer): Promise<void> | undefined;
  /** After the last byte: the facts of the log, or a rejection with the first problem found in it (BackupArchiveError, HistoryError). */
  facts(): Promise<EventFacts>;
  /** Once the facts are in: resolves, when every event is stored and projected and the store closed, with how many (0 without a store). */
  stored(): Promise<number>;
  /** Gives up: resolves once the store is closed (the staging directory is about to be removed). */
  abort(): Promise<void>;
}

/** The checks, and the loader over a store this opens and closes when `open` is given, in this thread. */
export function stagingLogHere(open: (() => FreshLog) | undefined, formatVersion: string, asOf: string, onCount?: (count: number) => void): StagingLog {
  const fresh = open?.();
  let stage: EventStage;
  let loader: StagingLogLoader | undefined;
  try {
    loader = fresh ? new StagingLogLoader(fresh) : undefined;
    stage = new EventStage(formatVersion, loader, onCount);
  } catch (error) {
    fresh?.close();
    throw error;
  }
  let closed = false;
  const close = () => {
    if (!closed) fresh?.close();
    closed = true;
  };
  return {
    bytes: (chunk) => stage.bytes(chunk),
    facts: () => stage.facts(asOf),
    async stored() {
      try {
        return loader?.end() ?? 0;
      } finally {
        close();
      }
    },
    async abort() {
      close();
      await stage.close();
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

/** The staging store, filled by a worker thread from events.ndjson's bytes. */
interface StoreInWorker {
  bytes(chunk: Buffer): void;
  /** After the last byte: resolves, once every event is stored and projected and the store closed, with how many. */
  end(): Promise<number>;
  abort(): Promise<void>;
}

/**
 * The loader in a worker thread running `script` (restore-staging-worker.ts), over the store of
 * `stagingDir`. It reads and decodes the lines again itself: everything it could refuse, this
 * thread's checks refuse first, so it only fails on a fault of its own, reported as such. The bytes
 * go through a file rather than messages so that the reading never waits for the worker; holding
 * them in memory instead would cost what the archive holds (hundreds of MiB), the file only disk
 * space in the staging directory, read back from the page cache.
 */
function storeInWorker(script: URL, data: StagingWorkerData): StoreInWorker {
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
      // The worker's own failure is reported by end(), after this thread's checks had their say.
      if (failure) return;
      for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
      size += chunk.length;
      if (size - told >= NOTIFY) tell('grown');
    },
    async end() {
      closeSpool();
      if (failure) throw failure;
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

/**
 * The checks in this thread; the store, when there is one to fill, in the worker when its script
 * is there (the built commands have it beside them), else in this thread too.
 */
export function openStagingLog(options: {
  worker: URL | undefined;
  open: (() => FreshLog) | undefined;
  data: StagingWorkerData & { readonly asOf: string };
  onCount?: (count: number) => void;
}): StagingLog {
  const { worker, open, data, onCount } = options;
  if (!open || !worker || !existsSync(fileURLToPath(worker))) return stagingLogHere(open, data.formatVersion, data.asOf, onCount);
  const checks = stagingLogHere(undefined, data.formatVersion, data.asOf, onCount);
  const store = storeInWorker(worker, data);
  let stored: Promise<number> | undefined;
  return {
    bytes(chunk) {
      store.bytes(chunk);
      return checks.bytes(chunk);
    },
    async facts() {
      const facts = await checks.facts();
      stored = store.end();
      stored.catch(() => undefined);
      return facts;
    },
    stored: () => stored ?? Promise.reject(new Error('internal error: the staging store was asked for before the events were checked')),
    async abort() {
      await store.abort();
      await checks.abort();
    },
  };
}
