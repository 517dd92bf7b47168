// PageCacheWarmer, which reads ov_backup's keys and profiles ahead of it: every file of the
// directories is opened and read (seen here by its access time moving), nothing is changed, a
// directory whose files are already cached is left after a sample, and what cannot be read is
// passed over.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PageCacheWarmer } from '../../adapters/fs/page-cache-warmer.js';
import { scratchDirectories } from '../support/scratch-directories.js';

const scratch = scratchDirectories('ovl-warmer-');

// A file's access time from before any read: under relatime (the default) the next read moves it.
const LONG_AGO = new Date('2000-01-01T00:00:00Z');
const WRITTEN = new Date('2020-01-01T00:00:00Z');

function file(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
  utimesSync(path, LONG_AGO, WRITTEN);
}

const wasRead = (path: string) => statSync(path).atimeMs > LONG_AGO.getTime();

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('PageCacheWarmer', () => {
  beforeAll(() => {
    // The checks below see reads through access times; a filesystem mounted noatime hides them.
    const probe = join(scratch(), 'probe');
    file(probe, 'x');
    readFileSync(probe);
    if (!wasRead(probe)) throw new Error(`${tmpdir()} does not record access times (mounted noatime?); these tests need relatime or strictatime`);
  });

  it('given keys in a directory and profiles one level down, when warmed, then every file was read and none changed', async () => {
    const root = scratch();
    const keys = join(root, 'keys');
    const profiles = join(root, 'profiles');
    mkdirSync(keys);
    mkdirSync(profiles);
    for (let i = 0; i < 150; i++) {
      file(join(keys, `${i}.key`), `key ${i}`);
      mkdirSync(join(profiles, `p${i}`));
      file(join(profiles, `p${i}`, `${i}.ovpn`), `profile ${i}`);
      if (i % 50 === 0) file(join(profiles, `p${i}`, `${i}-old.ovpn`), `older profile ${i}`);
    }
    const all = filesUnder(root);
    expect(all).toHaveLength(303);

    const warmer = PageCacheWarmer.start(
      [
        { path: keys, depth: 0 },
        { path: profiles, depth: 1 },
      ],
      { threads: 3 },
    );
    await warmer.finished();

    expect(all.filter((p) => !wasRead(p))).toEqual([]);
    for (const p of all) {
      expect(statSync(p).mtime).toEqual(WRITTEN);
      expect(readFileSync(p, 'utf8')).toMatch(/^(older )?(key|profile) \d+$/);
    }
    expect(filesUnder(root)).toHaveLength(303);
  });

  it('given a directory of files that are already cached, when warmed, then each thread stops after its sample of 256', async () => {
    const root = scratch();
    for (let i = 0; i < 3000; i++) file(join(root, `${i}.key`), `key ${i}`);
    // Just written: every one is in the page cache, so nothing is read from the disk.

    const warmer = PageCacheWarmer.start([{ path: root, depth: 0 }], { threads: 2 });
    await warmer.finished();

    const read = filesUnder(root).filter(wasRead).length;
    expect(read).toBe(2 * 256);
  });

  it('given a missing directory, a FIFO, an unreadable file and a file where a directory was expected, when warmed, then it finishes and reads the rest', async () => {
    const root = scratch();
    const profiles = join(root, 'profiles');
    mkdirSync(profiles);
    mkdirSync(join(profiles, 'p1'));
    file(join(profiles, 'p1', 'a.ovpn'), 'a');
    file(join(profiles, 'stray'), 'not a directory');
    mkdirSync(join(profiles, 'p2'));
    file(join(profiles, 'p2', 'b.ovpn'), 'b');
    const locked = join(profiles, 'p2', 'locked.ovpn');
    file(locked, 'locked');
    chmodSync(locked, 0);
    // Opening a FIFO for reading waits for a writer, unless it is opened non-blocking.
    const fifo = spawnSync('mkfifo', [join(profiles, 'p2', 'c.ovpn')]);
    expect(fifo.status).toBe(0);

    const warmer = PageCacheWarmer.start(
      [
        { path: join(root, 'missing'), depth: 0 },
        { path: profiles, depth: 1 },
      ],
      { threads: 2 },
    );
    await warmer.finished();

    expect(wasRead(join(profiles, 'p1', 'a.ovpn'))).toBe(true);
    expect(wasRead(join(profiles, 'p2', 'b.ovpn'))).toBe(true);
    expect(wasRead(join(profiles, 'stray'))).toBe(false);
  });
});
