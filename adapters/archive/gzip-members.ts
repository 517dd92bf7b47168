// A gzip file written as a series of members, each one block of the input compressed on its own
// (RFC 1952 allows any number of members in a file; gzip -d, tar, Python and Node's gunzip read
// them as one stream). The blocks are compressed on libuv's thread pool, several at a time and in
// the background, so a backup compresses on every core while it goes on reading events and files;
// they are written to the file in order as they come back.
import { createHash } from 'node:crypto';
import { closeSync, fchmodSync, openSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { gzip, gzipSync } from 'node:zlib';

/** One block's worth of input per member: large enough that the 18 bytes of framing and the lost window do not matter. */
const BLOCK_SIZE = 1024 * 1024;

interface Job {
  readonly block: Buffer;
  output: Buffer | undefined;
}

export class GzipMembersFile {
  private block: Buffer;
  private filled = 0;
  private readonly jobs: Job[] = [];
  private readonly spare: Buffer[] = [];
  private readonly waiting: Array<() => void> = [];
  private failure: unknown;
  private closed = false;
  private readonly hash = createHash('sha256');
  private digest: string | undefined;
  /** Bytes written to the file so far. */
  size = 0;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly level: number,
    private readonly inFlight: number,
  ) {
    this.block = Buffer.allocUnsafe(BLOCK_SIZE);
  }

  /** Creates `path` exclusively (mode 0600): an existing file is never overwritten. */
  static create(path: string, options: { level: number; inFlight?: number }): GzipMembersFile {
    const fd = openSync(path, 'wx', 0o600);
    fchmodSync(fd, 0o600);
    return new GzipMembersFile(path, fd, options.level, options.inFlight ?? availableParallelism() + 1);
  }

  /**
   * Appends bytes (copied at once: the caller may reuse `chunk`). Returns a promise when the caller
   * should wait for the compression to catch up before writing more, undefined otherwise.
   */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw new Error(`${this.path} is already closed`);
    for (let at = 0; at < chunk.length; ) {
      const n = chunk.copy(this.block, this.filled, at);
      at += n;
      this.filled += n;
      if (this.filled === BLOCK_SIZE) this.submit();
    }
    return this.jobs.length < this.inFlight ? undefined : this.whenFewer();
  }

  private whenFewer(): Promise<void> {
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private submit(): void {
    const job: Job = { block: this.block, output: undefined };
    const input = this.block.subarray(0, this.filled);
    this.jobs.push(job);
    this.block = this.spare.pop() ?? Buffer.allocUnsafe(BLOCK_SIZE);
    this.filled = 0;
    // An output buffer larger than any block's member: one pass on the thread pool per block.
    gzip(input, { level: this.level, chunkSize: BLOCK_SIZE + 64 * 1024 }, (error, output) => {
      if (error) {
        if (this.failure === undefined) this.failure = error;
      } else {
        job.output = output;
      }
      this.writeReady();
    });
  }

  /** Writes, in order, every member whose compression has finished. */
  private writeReady(): void {
    try {
      while (this.jobs.length > 0 && this.jobs[0]!.output !== undefined && this.failure === undefined) {
        const job = this.jobs.shift()!;
        const out = job.output!;
        for (let at = 0; at < out.length; ) at += writeSync(this.fd, out, at, out.length - at);
        this.hash.update(out);
        this.size += out.length;
        this.spare.push(job.block);
      }
    } catch (error) {
      if (this.failure === undefined) this.failure = error;
    }
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Compresses and writes what is left, then closes the file (not flushed: the caller decides). */
  async close(): Promise<number> {
    if (this.filled > 0) this.submit();
    while (this.jobs.length > 0 && this.failure === undefined) await this.whenFewer();
    if (this.failure !== undefined) throw this.failure;
    this.closed = true;
    closeSync(this.fd);
    this.digest = this.hash.digest('hex');
    return this.size;
  }

  /** SHA-256 of the file as written (after close). */
  sha256(): string {
    if (this.digest === undefined) throw new Error(`${this.path} is not closed yet`);
    return this.digest;
  }

  /** Stops and removes the file; compressions still running finish into nothing. */
  abort(): void {
    if (!this.closed) {
      this.closed = true;
      this.failure ??= new Error(`${this.path} was abandoned`);
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
    }
    rmSync(this.path, { force: true });
  }
}

/** `data` as one gzip member, compressed at once (the small pieces around the blocks). */
export function gzipMember(data: Buffer, level: number): Buffer {
  return gzipSync(data, { level });
}
