// The read side of a whole-log projection pass in a worker thread of its own: the worker
// (projection-read-worker.ts) reads the next pages of the embedded log through a second
// connection, parses and decodes them (zod, upcasters: the same decodeStoredEvent as the single
// thread) and projects them into rows (projectEvent, as the single thread does), while this
// thread inserts the rows of the pages before. The user rows stay in the worker until the end.
// A few pages run ahead at most, so memory stays bounded however long the log is.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RowPage } from './projected-rows.js';
import type { UserRow } from './user-list.js';

export interface ReadWorkerData {
  readonly file: string;
  readonly after: bigint;
  readonly pageSize: number;
  /** Pages sent and not yet acknowledged, at most. */
  readonly window: number;
  /** The user rows projected so far, in the order they were first seen. */
  readonly users: ReadonlyArray<readonly [string, UserRow | undefined]>;
}

/** The rows of a page of events: what the main thread inserts, in log order. */
export type ProjectedPage = RowPage;

export type ReadWorkerMessage =
  | ({ readonly kind: 'page' } & ProjectedPage)
  /** Every page was sent; the user rows follow. */
  | { readonly kind: 'drained' }
  /** The user rows, as sortedUserColumns (projected-rows.ts) gives them. */
  | { readonly kind: 'end'; readonly userColumns: readonly (readonly unknown[])[] }
  | { readonly kind: 'invalid'; readonly position: bigint; readonly streamId: string; readonly message: string }
  | { readonly kind: 'failed'; readonly message: string };

export type MainMessage = { readonly kind: 'ack' };

/** An event the worker could not decode; `detail` is the single thread's words. */
export class PipelinedDecodeError extends Error {
  constructor(
    readonly position: bigint,
    readonly streamId: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/** The worker failed before it delivered anything: the caller reads on in its own thread. */
export class ReadWorkerUnavailable extends Error {}

/**
 * The worker's script: `explicit` if given, else projection-read-worker.js beside this module
 * (the tsc build) or one directory up (the bundles: this code sits in dist/bin/chunks/, the
 * worker's bundle in dist/bin/). Undefined when there is none (e.g. running from the sources),
 * and the pass then runs in one thread.
 */
export function readWorkerScript(explicit: URL | false | undefined): URL | undefined {
  if (explicit === false) return undefined;
  const candidates = explicit ? [explicit] : [new URL('./projection-read-worker.js', import.meta.url), new URL('../projection-read-worker.js', import.meta.url)];
  return candidates.find((url) => url.protocol === 'file:' && existsSync(fileURLToPath(url)));
}

export class ReadPipeline {
  private readonly worker: Worker;
  private readonly queue: ReadWorkerMessage[] = [];
  private waiting: ((m: ReadWorkerMessage) => void) | undefined;
  private delivered = false;
  private finished = false;

  constructor(script: URL, data: ReadWorkerData) {
    this.worker = new Worker(script, {
      workerData: data,
      // A young generation this size scavenges far less often: the worker makes short-lived
      // garbage by the gigabyte (rows, parsed JSON, zod's copies), and a quarter of its time went
      // to GC with the default (measured: ~15 % less CPU for the whole pass).
      resourceLimits: { maxYoungGenerationSizeMb: 256 },
    });
    this.worker.on('message', (m: ReadWorkerMessage) => this.push(m));
    this.worker.on('error', (error: Error) => this.push({ kind: 'failed', message: error.message }));
    this.worker.on('exit', (code) => this.push({ kind: 'failed', message: `the read worker exited with code ${code}` }));
  }

  /** The rows of the next page; at the end of the log, that every page is in, then the user rows. */
  async next(): Promise<ProjectedPage | { readonly drained: true } | { readonly userColumns: readonly (readonly unknown[])[] }> {
    const m = this.queue.shift() ?? (await new Promise<ReadWorkerMessage>((resolve) => (this.waiting = resolve)));
    switch (m.kind) {
      case 'page':
        this.delivered = true;
        this.worker.postMessage({ kind: 'ack' } satisfies MainMessage);
        return m;
      case 'drained':
        return { drained: true };
      case 'end':
        this.finished = true;
        return { userColumns: m.userColumns };
      case 'invalid':
        this.finished = true;
        throw new PipelinedDecodeError(m.position, m.streamId, m.message);
      case 'failed':
        this.finished = true;
        if (!this.delivered) throw new ReadWorkerUnavailable(m.message);
        throw new Error(`the projection read worker failed: ${m.message}`);
    }
  }

  async close(): Promise<void> {
    this.finished = true;
    this.worker.removeAllListeners();
    await this.worker.terminate();
  }

  private push(m: ReadWorkerMessage): void {
    if (this.finished) return;
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting(m);
    } else this.queue.push(m);
  }
}
