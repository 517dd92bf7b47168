// BackgroundFiles, which writes a restore's keys and profiles in a thread of its own: every file
// and directory with exactly its mode and bytes, in the order asked, and a failure (a file that is
// already there) reported to the caller rather than lost.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackgroundFiles } from '../../adapters/fs/background-files.js';
import { scratchDirectories } from '../support/scratch-directories.js';

const scratch = scratchDirectories('ovl-bgfiles-');

const mode = (path: string) => statSync(path).mode & 0o777;

describe('BackgroundFiles', () => {
  it('given many directories and files, when finished, then each has its bytes and exact mode', async () => {
    const root = scratch();
    const files = new BackgroundFiles(root);
    const expected: Array<{ path: string; data: Buffer }> = [];
    for (let i = 0; i < 3000; i++) {
      const dir = join(root, `p${i}`);
      files.directory(dir, 0o700);
      files.directory(dir, 0o700);
      // Sizes that straddle the batches: most small, some larger than a whole batch.
      const size = i % 997 === 0 ? 1_500_000 + i : 100 + ((i * 7919) % 9000);
      const data = Buffer.alloc(size, i % 251);
      data.write(`file ${i}\n`);
      const path = join(dir, `${i}.ovpn`);
      expected.push({ path, data });
      const wait = files.write(path, data, i % 2 === 0 ? 0o600 : 0o644);
      if (wait) await wait;
    }
    await files.finish();
    for (const [i, { path, data }] of expected.entries()) {
      expect(readFileSync(path).equals(data), path).toBe(true);
      expect(mode(path)).toBe(i % 2 === 0 ? 0o600 : 0o644);
    }
    expect(mode(join(root, 'p0'))).toBe(0o700);
  });

  it('given writebacks started while the files are written, when finished, then every file has its bytes and no writeback is left running', async () => {
    const root = scratch();
    // A writeback after every 64 KiB written, each one slow: a stand-in for sync that sleeps.
    const marker = `ovl-writeback-${process.pid}-${Date.now()}`;
    const files = new BackgroundFiles(root, { bytes: 64 * 1024, command: ['sh', '-c', 'sleep 0.4', marker] });
    const expected: Array<{ path: string; data: Buffer }> = [];
    for (let i = 0; i < 2000; i++) {
      const data = Buffer.alloc(2000 + (i % 5000), i % 251);
      const path = join(root, `${i}.key`);
      expected.push({ path, data });
      const wait = files.write(path, data, 0o600);
      if (wait) await wait;
    }
    await files.finish();
    const running = spawnSync('pgrep', ['-f', marker], { encoding: 'utf8' });
    expect(running.stdout).toBe('');
    for (const { path, data } of expected) expect(readFileSync(path).equals(data), path).toBe(true);
  });

  it('given a mode the umask would narrow, when written, then the file still gets exactly that mode', async () => {
    const root = scratch();
    const old = process.umask(0o077);
    try {
      const files = new BackgroundFiles(root);
      files.directory(join(root, 'open'), 0o755);
      await files.write(join(root, 'open', 'crl.pem'), Buffer.from('x'), 0o644);
      await files.finish();
    } finally {
      process.umask(old);
    }
    expect(mode(join(root, 'open'))).toBe(0o755);
    expect(mode(join(root, 'open', 'crl.pem'))).toBe(0o644);
  });

  it('given a file that already exists, when written again, then finish rejects with EEXIST and the file keeps its bytes', async () => {
    const root = scratch();
    writeFileSync(join(root, 'taken.key'), 'original');
    const files = new BackgroundFiles(root);
    await files.write(join(root, 'taken.key'), Buffer.from('replacement'), 0o600);
    await expect(files.finish()).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(join(root, 'taken.key'), 'utf8')).toBe('original');
  });

  it('given a failure, when more is written afterwards, then the next write throws it', async () => {
    const root = scratch();
    const files = new BackgroundFiles(root);
    files.write(join(root, 'missing-dir', 'a.key'), Buffer.from('a'), 0o600);
    await expect(files.finish()).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => files.write(join(root, 'b.key'), Buffer.from('b'), 0o600)).toThrow(/ENOENT/);
  });
});
