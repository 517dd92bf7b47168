// The read side of a whole-log projection pass, shared between this thread and a worker thread
// (projection-read-worker.ts). The log is cut into pages of consecutive positions, and whichever
// thread is free claims the next one (one shared counter): the worker reads, decodes (zod,
// upcasters: the same decodeStoredEvent as the single thread) and projects the pages it claims
// into rows and hands them over; this thread inserts every page's rows in log order, and when
// it would otherwise wait for the worker it decodes and projects a page itself. On two cores the
// pass is then as fast as the two threads' work together allows, whichever of them is slower.
//
// The user rows are folded in the worker, in log order: this thread sends it the user facts of
// the pages it projected itself, and the worker sends the rows once at the end. A few pages run
// ahead at most, so memory stays bounded however long the log is.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RowPage } from './projected-rows.js';

export interface ReadWorkerData {
  readonly file: string;
  /** The pass covers the positions after `after` up to `head`, in pages of `pageSize` positions. */
  readonly after: bigint;
  readonly head: bigint;
  readonly pageSize: number;
  /** Pages sent and not yet acknowledged, at most. */
  readonly window: number;
  /** One Int32: the number of the next page to claim, for both threads. */
  readonly claims: SharedArrayBuffer;
}

/** The rows of a page of events: what the main thread inserts, in log order. */
export type ProjectedPage = RowPage;

export type ReadWorkerMessage =
  | ({ readonly kind: 'page'; readonly index: number } & ProjectedPage)
  /** Every page is folded into the user rows: these, as sortedUserColumns (projected-rows.ts) gives them. */
  | { readonly kind: 'end'; readonly userColumns: readonly (readonly unknown[])[] }
  | { readonly kind: 'invalid'; readonly index: number; readonly position: bigint; readonly streamId: string; readonly message: string }
  | { readonly kind: 'failed'; readonly message: string };

export type MainMessage =
  /** A page was taken: the worker may claim another. */
  | { readonly kind: 'ack' }
  /** The user facts (pushUserFact's flat list) of a page this thread projected itself. */
  | { readonly kind: 'facts'; readonly index: number; readonly facts: readonly unknown[] };

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

/** The worker failed before it delivered anything: the caller may do the pass in its own thread. */
export class ReadWorkerUnavailable extends Error {}

/** How many pages of `pageSize` positions there are after `after` up to `head`. */
export function pageCount(after: bigint, head: bigint, pageSize: number): number {
  return head <= after ? 0 : Number((head - after + BigInt(pageSize) - 1n) / BigInt(pageSize));
}

/** The positions of page `index`: after `after` up to `upTo`, both as readAll takes them. */
export function pageRange(data: Pick<ReadWorkerData, 'after' | 'pageSize'>, index: number): { after: bigint; upTo: bigint } {
  const size = BigInt(data.pageSize);
  const after = data.after + BigInt(index) * size;
  return { after, upTo: after + size };
}

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

/** What the worker delivered: a page's rows, the first invalid event of a page, or the user rows. */
export type Delivery =
  | { readonly kind: 'page'; readonly index: number; readonly page: ProjectedPage }
  | { readonly kind: 'invalid'; readonly index: number; readonly error: PipelinedDecodeError }
  | { readonly kind: 'end'; readonly userColumns: readonly (readonly unknown[])[] };

export class ReadPipeline {
  /** How many pages the pass has. */
  readonly pages: number;
  private readonly worker: Worker;
  private readonly claims: Int32Array;
  private readonly queue: ReadWorkerMessage[] = [];
  private waiting: ((m: ReadWorkerMessage) => void) | undefined;
  private delivered = false;
  private finished = false;

  constructor(
    script: URL,
    private readonly data: ReadWorkerData,
  ) {
    this.pages = pageCount(data.after, data.head, data.pageSize);
    this.claims = new Int32Array(data.claims);
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

  /** Claims the next page for this thread; undefined when every page is claimed. */
  claim(): { index: number; after: bigint; upTo: bigint } | undefined {
    const index = Atomics.add(this.claims, 0, 1);
    return index < this.pages ? { index, ...pageRange(this.data, index) } : undefined;
  }

  /** Hands the worker the user facts of a page this thread projected, for it to fold in order. */
  facts(index: number, facts: readonly unknown[]): void {
    this.worker.postMessage({ kind: 'facts', index, facts } satisfies MainMessage);
  }

  /** What the worker has delivered, if anything, without waiting (after the event loop had a turn). */
  async poll(): Promise<Delivery | undefined> {
    await new Promise((resolve) => setImmediate(resolve));
    const m = this.queue.shift();
    return m && this.deliver(m);
  }

  /** The worker's next delivery. */
  async next(): Promise<Delivery> {
    const m = this.queue.shift() ?? (await new Promise<ReadWorkerMessage>((resolve) => (this.waiting = resolve)));
    return this.deliver(m);
  }

  async close(): Promise<void> {
    this.finished = true;
    this.worker.removeAllListeners();
    await this.worker.terminate();
  }

  private deliver(m: ReadWorkerMessage): Delivery {
    switch (m.kind) {
      case 'page': {
        this.delivered = true;
        this.worker.postMessage({ kind: 'ack' } satisfies MainMessage);
        return { kind: 'page', index: m.index, page: m };
      }
      case 'end':
        this.finished = true;
        return m;
      case 'invalid':
        // The worker stops at its first invalid event: nothing more will come.
        this.finished = true;
        return { kind: 'invalid', index: m.index, error: new PipelinedDecodeError(m.position, m.streamId, m.message) };
      case 'failed':
        this.finished = true;
        if (!this.delivered) throw new ReadWorkerUnavailable(m.message);
        throw new Error(`the projection read worker failed: ${m.message}`);
    }
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
