// PrefetchedFiles, which reads a backup's keys and profiles ahead in threads of its own: every
// file's bytes in the order of the list whichever thread read it, a missing file as undefined
// (as readIfExists gave it), any other failure thrown at that file, and threads that stop when
// told to even while they wait for the consumer.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PrefetchedFiles } from '../../adapters/fs/prefetched-files.js';

const dirs: string[] = [];
const scratch = () => {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-prefetch-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** `count` files of varied sizes (some empty, some large), and their bytes. */
function someFiles(root: string, count: number): { paths: string[]; contents: Buffer[] } {
  const paths: string[] = [];
  const contents: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const size = i % 101 === 0 ? 0 : i % 997 === 0 ? 700_000 + i : 50 + ((i * 7919) % 6000);
    const data = Buffer.alloc(size, i % 251);
    if (size > 0) data.write(`file ${i}\n`);
    const path = join(root, `${i}.ovpn`);
    writeFileSync(path, data);
    paths.push(path);
    contents.push(data);
  }
  return { paths, contents };
}

describe('PrefetchedFiles', () => {
  it('given thousands of files over many batches and threads, when read, then each comes with its own bytes, in the order listed', async () => {
    const { paths, contents } = someFiles(scratch(), 3000);
    const files = new PrefetchedFiles(paths, { threads: 3 });
    try {
      for (const [i, expected] of contents.entries()) {
        const got = await files.next();
        expect(got?.equals(expected), paths[i]).toBe(true);
      }
      await expect(files.next()).rejects.toThrow('more files asked for than listed');
    } finally {
      await files.close();
    }
  });

  it('given files that do not exist among them, when read, then those come as undefined and the others still in order', async () => {
    const root = scratch();
    const { paths, contents } = someFiles(root, 200);
    const listed = paths.flatMap((p, i) => (i % 3 === 0 ? [join(root, `missing-${i}`), p] : [p]));
    const files = new PrefetchedFiles(listed);
    try {
      const got: (Buffer | undefined)[] = [];
      for (let i = 0; i < listed.length; i++) got.push(await files.next());
      const expected = contents.flatMap((c, i) => (i % 3 === 0 ? [undefined, c] : [c]));
      expect(got.map((b) => b?.toString('hex'))).toStrictEqual(expected.map((b) => b?.toString('hex')));
    } finally {
      await files.close();
    }
  });

  it('given a path that cannot be read (a directory), when its turn comes, then that read throws the error with its code, and the files before it were read', async () => {
    const root = scratch();
    const { paths, contents } = someFiles(root, 100);
    const directory = join(root, 'a-directory');
    mkdirSync(directory);
    const files = new PrefetchedFiles([...paths.slice(0, 70), directory, ...paths.slice(70)]);
    try {
      for (let i = 0; i < 70; i++) expect((await files.next())?.equals(contents[i]!)).toBe(true);
      await expect(files.next()).rejects.toMatchObject({ code: 'EISDIR', path: directory });
    } finally {
      await files.close();
    }
  });

  it('given threads waiting for the consumer to catch up, when closed after a few files, then close returns at once', async () => {
    const { paths } = someFiles(scratch(), 5000);
    const files = new PrefetchedFiles(paths, { threads: 2 });
    await files.next();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    await files.close();
    expect(performance.now() - started).toBeLessThan(500);
    await expect(files.next()).rejects.toThrow('stopped');
  });

  it('given an empty list, when a file is asked for, then that is an internal error', async () => {
    const files = new PrefetchedFiles([]);
    try {
      await expect(files.next()).rejects.toThrow('more files asked for than listed');
    } finally {
      await files.close();
    }
  });
});
