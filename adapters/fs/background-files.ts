// Writes many small new files (a restore's 100,000 keys and profiles, each in a directory of its
// own) on libuv's thread pool, so that creating them overlaps with the reading and checking that
// goes on in JavaScript. Files are created exclusively ('wx') with their exact mode, directories
// with theirs, and nothing is flushed one by one: the caller flushes the whole tree once (syncfs)
// before it is used. At most a few operations are in flight, so the thread pool stays free for
// decompression and signature checks.
import { chmod, closeSync, fstatSync, mkdir, openSync, rmSync, writeFile } from 'node:fs';
import { join } from 'node:path';

export class BackgroundFiles {
  private inFlight = 0;
  private failure: unknown;
  private readonly waiting: Array<() => void> = [];
  private readonly directories = new Map<string, Promise<void>>();
  /** The bits the process umask takes away, found once by creating a probe file in `root`. */
  private readonly umask: number;

  constructor(
    root: string,
    private readonly limit = 2,
  ) {
    const probe = join(root, `.umask-probe-${process.pid}`);
    const fd = openSync(probe, 'wx', 0o777);
    try {
      this.umask = 0o777 & ~fstatSync(fd).mode;
    } finally {
      closeSync(fd);
      rmSync(probe, { force: true });
    }
  }

  /** Creates `dir` (whose parent exists or is being created by an earlier call) with exactly `mode`, once. */
  directory(dir: string, mode: number, parent?: Promise<void>): Promise<void> {
    let created = this.directories.get(dir);
    if (!created) {
      created = (parent ?? Promise.resolve()).then(
        () =>
          new Promise<void>((resolve, reject) =>
            mkdir(dir, { mode }, (error) => {
              if (error) return reject(error);
              if ((mode & this.umask) === 0) return resolve();
              chmod(dir, mode, (e) => (e ? reject(e) : resolve()));
            }),
          ),
      );
      // Observed through the files written into it; never an unhandled rejection by itself.
      created.catch(() => undefined);
      this.directories.set(dir, created);
    }
    return created;
  }

  /**
   * Writes a new file (refused if it exists) with exactly `mode`, once `directory` (if given) exists.
   * Returns a promise when the caller should wait before handing over more, undefined otherwise;
   * throws the first failure of an earlier write.
   */
  write(path: string, data: Buffer, mode: number, directory?: Promise<void>): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.failure;
    this.inFlight++;
    const done = (error?: unknown) => {
      if (error && this.failure === undefined) this.failure = error;
      this.inFlight--;
      for (const wake of this.waiting.splice(0)) wake();
    };
    const start = () =>
      writeFile(path, data, { mode, flag: 'wx' }, (error) => {
        if (error || (mode & this.umask) === 0) return done(error);
        chmod(path, mode, done);
      });
    if (directory) directory.then(start, done);
    else start();
    if (this.inFlight < this.limit) return undefined;
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Waits for every write; throws the first failure. */
  async finish(): Promise<void> {
    await this.settled();
    if (this.failure !== undefined) throw this.failure;
  }

  /** Waits for every write, whatever became of it (before the directory is removed). */
  async settled(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
}
