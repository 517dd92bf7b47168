// Writes many small new files (a restore's 100,000 keys and profiles, each profile in a directory
// of its own) in a thread of their own, so that creating them overlaps with the reading and
// checking that goes on in JavaScript. Files are created exclusively ('wx') with their exact mode,
// directories with theirs, in the order they were asked for, and nothing is flushed one by one:
// the caller flushes the whole tree once (syncfs) before it is used.
//
// Why a thread doing plain synchronous calls rather than fs's callbacks on libuv's pool: measured
// on this project's VM (ext4, 2 cores), 96,000 directories and 192,000 files took 8.9 s wall and
// 8.2 s of system time as synchronous calls in one thread, but 34 s wall and 35 s of system time
// through the pool (open, write and close each a hop between threads), more with more in flight.
// The thread's code is a few lines of plain JavaScript handed to the Worker as source, so it needs
// no file of its own beside the built commands.
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * A batch, as the writer thread gets it: its operations as numbers (four per operation: kind,
 * mode, and the range of a file's bytes in `buffer`), their paths as one text joined by NULs
 * (which no path holds): measured alone, posting 200,000 operations this way took 0.13–0.18 s
 * of CPU, against 0.37–0.46 s as one small object each.
 */
interface Batch {
  readonly batch: number;
  readonly buffer: ArrayBuffer;
  readonly numbers: Uint32Array;
  readonly paths: string;
}

/** An operation's kind in Batch.numbers. */
const DIRECTORY = 0;
const FILE = 1;
const FILE_CHMOD = 2;
const DIRECTORY_CHMOD = 3;

/**
 * File bytes written between two background writebacks. Left to itself the kernel held a
 * restore's 1 GB of keys and profiles in memory (the test VM's 24 GiB are far from its dirty-page
 * thresholds), and the flush at the end wrote it all while the restore waited: 1.5-2.8 s, against
 * 0.07-0.14 s with these writebacks (1M-event archive, runs taken in turn).
 */
const WRITEBACK_BYTES = 128 * 1024 * 1024;

type Reply = { readonly kind: 'done'; readonly batch: number } | { readonly kind: 'failed'; readonly batch: number; readonly message: string; readonly code: string | undefined };

const WRITER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
let failed = false;
parentPort.on('message', ({ batch, buffer, numbers, paths }) => {
  if (failed) return;
  const bytes = Buffer.from(buffer);
  const path = paths.split('\\0');
  try {
    for (let i = 0; i < path.length; i++) {
      const kind = numbers[4 * i], mode = numbers[4 * i + 1], start = numbers[4 * i + 2], end = numbers[4 * i + 3];
      if (kind === ${DIRECTORY} || kind === ${DIRECTORY_CHMOD}) {
        fs.mkdirSync(path[i], { mode });
        if (kind === ${DIRECTORY_CHMOD}) fs.chmodSync(path[i], mode);
        continue;
      }
      const fd = fs.openSync(path[i], 'wx', mode);
      try {
        for (let at = start; at < end; ) at += fs.writeSync(fd, bytes, at, end - at);
        if (kind === ${FILE_CHMOD}) fs.fchmodSync(fd, mode);
      } finally {
        fs.closeSync(fd);
      }
    }
    parentPort.postMessage({ kind: 'done', batch });
  } catch (error) {
    failed = true;
    parentPort.postMessage({ kind: 'failed', batch, message: String(error && error.message), code: error && error.code });
  }
});
`;

/** Bytes gathered before a batch is handed to the thread. */
const BATCH_BYTES = 1024 * 1024;
/** Operations gathered at most in one batch. */
const BATCH_OPERATIONS = 512;
/** Batches handed over and not yet written at most; beyond that the caller is asked to wait. */
const MAX_BATCHES_IN_FLIGHT = 8;

export class BackgroundFiles {
  private readonly worker: Worker;
  private failure: Error | undefined;
  private readonly waiting: Array<() => void> = [];
  private readonly directories = new Set<string>();
  /** The bits the process umask takes away, found once by creating a probe file in `root`. */
  private readonly umask: number;
  /** The batch being gathered: four numbers and a path per operation (see Batch). */
  private numbers: number[] = [];
  private paths: string[] = [];
  private buffer = new Uint8Array(BATCH_BYTES);
  private filled = 0;
  private posted = 0;
  private written = 0;
  private exited = false;
  private readonly exit: Promise<void>;
  /** File bytes in the batches posted, per batch, until the thread says it wrote them. */
  private readonly batchBytes: number[] = [];
  /** File bytes written since the last writeback began. */
  private unflushed = 0;
  private writeback: Promise<void> | undefined;
  private readonly writebackBytes: number;
  private readonly writebackCommand: readonly [string, ...string[]];

  /**
   * `writeback`: after how many bytes written a writeback starts, and the command that does it
   * (by default sync --file-system on `root`; tests give another).
   */
  constructor(
    root: string,
    writeback: { readonly bytes?: number; readonly command?: readonly [string, ...string[]] } = {},
  ) {
    this.writebackBytes = writeback.bytes ?? WRITEBACK_BYTES;
    this.writebackCommand = writeback.command ?? ['sync', '--file-system', root];
    const probe = join(root, `.umask-probe-${process.pid}`);
    const fd = openSync(probe, 'wx', 0o777);
    try {
      this.umask = 0o777 & ~fstatSync(fd).mode;
    } finally {
      closeSync(fd);
      rmSync(probe, { force: true });
    }
    this.worker = new Worker(WRITER_SOURCE, { eval: true });
    this.worker.on('message', (reply: Reply) => {
      if (reply.kind === 'done') {
        this.written++;
        this.unflushed += this.batchBytes.shift() ?? 0;
        if (this.unflushed >= this.writebackBytes) this.startWriteback();
      } else this.fail(Object.assign(new Error(reply.message), { code: reply.code }));
      this.wake();
    });
    this.worker.on('error', (error) => this.fail(error));
    this.exit = new Promise<void>((resolve) =>
      this.worker.on('exit', () => {
        this.exited = true;
        if (this.written < this.posted) this.fail(new Error('the thread writing the files stopped before it was done'));
        this.wake();
        resolve();
      }),
    );
  }

  private fail(error: Error): void {
    this.failure ??= error;
  }

  private wake(): void {
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Creates `dir` (whose parent exists or was asked for earlier) with exactly `mode`, once. */
  directory(dir: string, mode: number): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.directories.has(dir)) return;
    this.directories.add(dir);
    this.numbers.push((mode & this.umask) !== 0 ? DIRECTORY_CHMOD : DIRECTORY, mode, 0, 0);
    this.paths.push(dir);
    if (this.paths.length >= BATCH_OPERATIONS) this.post();
  }

  /**
   * Writes a new file (refused if it exists) with exactly `mode`, after every directory and file
   * asked for before it. Returns a promise when the caller should wait before handing over more,
   * undefined otherwise; throws the first failure of an earlier write.
   */
  write(path: string, data: Uint8Array, mode: number): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.failure;
    if (this.filled + data.length > this.buffer.length) {
      this.post();
      if (data.length > this.buffer.length) this.buffer = new Uint8Array(data.length);
    }
    this.buffer.set(data, this.filled);
    this.numbers.push((mode & this.umask) !== 0 ? FILE_CHMOD : FILE, mode, this.filled, this.filled + data.length);
    this.paths.push(path);
    this.filled += data.length;
    if (this.paths.length >= BATCH_OPERATIONS) this.post();
    if (this.posted - this.written < MAX_BATCHES_IN_FLIGHT) return undefined;
    return this.until(() => this.posted - this.written < MAX_BATCHES_IN_FLIGHT / 2);
  }

  private post(): void {
    if (this.paths.length === 0) return;
    // The batch's own buffer is moved to the thread, not copied; a new one takes its place.
    const buffer = this.filled === this.buffer.length ? this.buffer.buffer : this.buffer.slice(0, this.filled).buffer;
    const numbers = Uint32Array.from(this.numbers);
    const batch: Batch = { batch: this.posted, buffer, numbers, paths: this.paths.join('\0') };
    this.worker.postMessage(batch, [buffer, numbers.buffer]);
    this.batchBytes.push(this.filled);
    this.posted++;
    this.numbers = [];
    this.paths = [];
    this.filled = 0;
    if (this.buffer.buffer.byteLength === 0) this.buffer = new Uint8Array(BATCH_BYTES);
  }

  private until(ready: () => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = () => {
        if (ready() || this.failure !== undefined || this.exited) resolve();
        else this.waiting.push(check);
      };
      check();
    });
  }

  /** Waits for every write; throws the first failure. */
  async finish(): Promise<void> {
    if (this.failure === undefined) this.post();
    await this.settled();
    if (this.failure !== undefined) throw this.failure;
  }

  /** Waits for what was handed over, whatever became of it, and stops the thread (before the directory is removed). */
  async settled(): Promise<void> {
    if (!this.exited) await this.until(() => this.written >= this.posted);
    await this.worker.terminate();
    await this.exit;
    await this.writeback;
  }

  /**
   * Starts writing what is written so far back to disk (sync --file-system), unless that is under
   * way already. Only to spread the disk writes over the time the files are being made: the caller
   * still flushes the whole tree once at the end, which then has less left to write.
   */
  private startWriteback(): void {
    if (this.writeback !== undefined) return;
    this.unflushed = 0;
    const [command, ...args] = this.writebackCommand;
    const child = spawn(command, args, { stdio: 'ignore' });
    this.writeback = new Promise<void>((resolve) => {
      child.on('error', () => resolve());
      child.on('exit', () => resolve());
    }).then(() => {
      this.writeback = undefined;
    });
  }
}
