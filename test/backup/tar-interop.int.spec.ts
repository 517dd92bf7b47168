// Our ustar is the one everybody reads: GNU tar lists and extracts what the writer makes, and the
// reader accepts what `tar --format=ustar` makes, so an operator can always inspect a backup by hand.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTar, TarPacker } from '../../adapters/archive/tar.js';

let dir: string;
beforeAll(() => {
  if (spawnSync('tar', ['--version']).status !== 0) throw new Error('`tar` not found: install it with `apt-get install -y tar`');
  dir = mkdtempSync(join(tmpdir(), 'ovl-tar-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FILES: [string, Buffer][] = [
  ['manifest.json', Buffer.from('{}\n')],
  ['keys/clients/0a1b.key', Buffer.from('-----BEGIN PRIVATE KEY-----\n...\n')],
  [`profiles/p0123456789abcdef01234567/${'f'.repeat(60)}/${'a'.repeat(70)}.ovpn`, Buffer.alloc(1500, 0x61)],
  ['empty', Buffer.alloc(0)],
];

describe('tar interoperability', () => {
  it('GNU tar lists and extracts what TarPacker writes, byte for byte', async () => {
    const out: Buffer[] = [];
    const packer = new TarPacker(async (c) => {
      out.push(Buffer.from(c));
    });
    for (const [path, data] of FILES) await packer.addBuffer(path, data, { mode: 0o600, mtime: 1_700_000_000 });
    await packer.finish();
    const archive = join(dir, 'ours.tar');
    writeFileSync(archive, Buffer.concat(out));

    const listed = execFileSync('tar', ['-tf', archive], { encoding: 'utf8' }).trim().split('\n');
    expect(listed).toEqual(FILES.map(([p]) => p));
    const into = join(dir, 'extracted');
    mkdirSync(into);
    execFileSync('tar', ['-xf', archive, '-C', into]);
    for (const [path, data] of FILES) expect(readFileSync(join(into, path)).equals(data), path).toBe(true);
  });

  it('readTar accepts what `tar --format=ustar` writes', async () => {
    const src = join(dir, 'src');
    mkdirSync(join(src, 'keys'), { recursive: true });
    writeFileSync(join(src, 'keys', 'ca.key'), 'key bytes\n');
    writeFileSync(join(src, 'manifest.json'), '{"a":1}\n');
    const archive = join(dir, 'theirs.tar');
    execFileSync('tar', ['--format=ustar', '-cf', archive, '-C', src, 'manifest.json', 'keys/ca.key']);
    const seen: [string, string][] = [];
    async function* source() {
      yield readFileSync(archive);
    }
    for await (const entry of readTar(source())) {
      const parts: Buffer[] = [];
      for await (const p of entry.body) parts.push(p);
      seen.push([entry.path, Buffer.concat(parts).toString()]);
    }
    expect(seen).toEqual([
      ['manifest.json', '{"a":1}\n'],
      ['keys/ca.key', 'key bytes\n'],
    ]);
  });
});
