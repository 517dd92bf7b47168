// events.ndjson of the archive ov_restore reads: its lines read, replayed and checked
// (event-checks.ts), and, for a real restore into the embedded store, appended to the fresh store
// of the staging directory and projected into its read models.
//
// Storing is much of a restore's work (a million appends, a million events' rows inserted, the
// indexes built), so when the built worker is there it runs in a thread of its own
// (restore-staging-worker.ts). This thread, which parses and decodes every event for its checks,
// also projects each one into rows and user facts and hands those over; the worker reads the lines
// again from a spool file only to cut out their JSON text, and never parses or decodes an event.
// (Before, it parsed and decoded every line again to project it itself: at 1M events, in runs taken
// in turn, it used 35-37 s of CPU, and 22 s with the rows handed over.) A dry run and a restore
// into EventStoreDB only check; without the worker (tests) the store is filled in this thread from
// the same parse.
import { closeSync, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ArchivedEvent } from '../../adapters/archive/backup-archive.js';
import type { BulkLoader, LoadedEvent, SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import type { Envelope } from '../../domain/events.js';
import type { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import { emptyRowPage, projectEventFacts, rowPageSink, type RowPage } from '../../projections/projected-rows.js';
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
    this.batch.push(e);
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

/**
 * The checks, and the loader over a store this opens and closes when `open` is given, in this
 * thread; without one, the checked events go to `sink` if given (the staging worker's rows).
 */
export function stagingLogHere(
  open: (() => FreshLog) | undefined,
  formatVersion: string,
  asOf: string,
  onCount?: (count: number) => void,
  sink?: EventSink,
): StagingLog {
  const fresh = open?.();
  let stage: EventStage;
  let loader: StagingLogLoader | undefined;
  try {
    loader = fresh ? new StagingLogLoader(fresh) : undefined;
    stage = new EventStage(formatVersion, loader ?? sink, onCount);
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

/**
 * To the worker: `rows`, the rows of the next `page.count` events, whose lines the spool holds
 * within its first `size` bytes, with their user facts (pushUserFact's list); `end`: the spool is
 * `size` bytes long, and that is all of it.
 */
export type StagingWorkerRequest =
  | { readonly kind: 'rows'; readonly size: number; readonly page: RowPage; readonly users: unknown[] }
  | { readonly kind: 'end'; readonly size: number };

/** From the worker: `taken` for each `rows` it took on; `done` or `failed` at the end. */
export type StagingWorkerMessage = { readonly kind: 'taken' } | { readonly kind: 'done'; readonly events: number } | { readonly kind: 'failed'; readonly message: string };

/**
 * Events whose rows go in one message: few enough that a message's rows die young in this
 * thread's heap (with 4,096, they lived long enough to be promoted, and the old generation held
 * some 250 MB of them between collections: 1 GB peak RSS for a restore of 1M events).
 */
const ROWS_BATCH = 512;
/** Messages of rows the worker has not taken on yet at most; beyond that the reading waits for half of them. */
const ROWS_IN_FLIGHT = 64;

/** The staging store, filled by a worker thread from events.ndjson's bytes and this thread's rows. */
interface StoreInWorker extends EventSink {
  bytes(chunk: Buffer): void;
  /** A promise when the worker is too far behind: the next bytes should wait for it. */
  backlog(): Promise<void> | undefined;
  /** After the last byte: resolves, once every event is stored and projected and the store closed, with how many. */
  end(): Promise<number>;
  abort(): Promise<void>;
}

/**
 * The store in a worker thread running `script` (restore-staging-worker.ts), over the store of
 * `stagingDir`. This thread decodes and checks every event; it also projects each one
 * (projectEventRows, userFactOf) and hands the rows over, so that the worker only stores: it cuts
 * the lines apart for their JSON text (cutEventLine), appends them, and inserts the rows, without
 * parsing or decoding an event a second time (at 1M events, that had been some 10 s of its CPU).
 * The lines go through a file rather than messages: holding them in memory instead would cost
 * what the archive holds (hundreds of MiB), the file only disk space in the staging directory,
 * read back from the page cache.
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
  let position = 0n;
  let page = emptyRowPage();
  let sink = rowPageSink(page);
  let users: unknown[] = [];
  let inFlight = 0;
  const waiting: Array<() => void> = [];
  const wake = () => waiting.splice(0).forEach((w) => w());
  let failure: Error | undefined;
  let finished = false;
  let settle: { resolve: (events: number) => void; reject: (error: Error) => void } | undefined;
  const done = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => undefined);
  const fail = (error: Error) => {
    failure ??= error;
    settle!.reject(failure);
    wake();
  };
  worker.on('message', (m: StagingWorkerMessage) => {
    if (m.kind === 'taken') {
      inFlight--;
      if (inFlight <= ROWS_IN_FLIGHT / 2) wake();
    } else if (m.kind === 'done') {
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
  const post = () => {
    if (page.count === 0 || failure) return;
    worker.postMessage({ kind: 'rows', size, page, users } satisfies StagingWorkerRequest);
    inFlight++;
    page = emptyRowPage();
    sink = rowPageSink(page);
    users = [];
  };
  return {
    bytes(chunk) {
      // The worker's own failure is reported by end(), after this thread's checks had their say.
      if (failure) return;
      for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
      size += chunk.length;
    },
    add(_e, decoded) {
      if (failure) return;
      // The staging store numbers the events from 1 without gaps (the archive's may have some).
      position++;
      projectEventFacts(atPosition(decoded, position), sink, users);
      if (page.count++ === 0) page.first = position;
      page.last = position;
      if (page.count >= ROWS_BATCH) post();
    },
    backlog() {
      if (failure || inFlight < ROWS_IN_FLIGHT) return undefined;
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    async end() {
      closeSpool();
      post();
      if (failure) throw failure;
      worker.postMessage({ kind: 'end', size } satisfies StagingWorkerRequest);
      const events = await done;
      await exited;
      rmSync(data.spoolPath, { force: true });
      return events;
    },
    async abort() {
      closeSpool();
      wake();
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
  const store = storeInWorker(worker, data);
  const checks = stagingLogHere(undefined, data.formatVersion, data.asOf, onCount, store);
  let stored: Promise<number> | undefined;
  return {
    bytes(chunk) {
      store.bytes(chunk);
      const checked = checks.bytes(chunk);
      const behind = store.backlog();
      if (!behind) return checked;
      return checked ? Promise.all([checked, behind]).then(() => undefined) : behind;
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
