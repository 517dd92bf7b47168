// The ustar reader and writer behind backup archives: what goes in comes out byte for byte, and
// anything damaged, truncated or outside the small subset a backup uses is refused, never guessed.
import { describe, expect, it } from 'vitest';
import { BLOCK, encodeHeader, readBody, readTar, RECORD, TarFormatError, TarPacker, unsafePathReason, type TarEntryHeader } from '../../adapters/archive/tar.js';

async function pack(entries: readonly { path: string; data: Buffer }[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const packer = new TarPacker(async (chunk) => {
    out.push(Buffer.from(chunk));
  });
  for (const e of entries) await packer.addBuffer(e.path, e.data, { mode: 0o600, mtime: 1_700_000_000 });
  await packer.finish();
  return Buffer.concat(out);
}

/** Feeds `bytes` to the reader in chunks of `size` (1 makes every boundary a chunk boundary). */
async function* chunks(bytes: Buffer, size = 4096): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function unpack(bytes: Buffer, chunkSize?: number): Promise<(TarEntryHeader & { data: Buffer })[]> {
  const out: (TarEntryHeader & { data: Buffer })[] = [];
  for await (const entry of readTar(chunks(bytes, chunkSize))) {
    const parts: Buffer[] = [];
    for await (const part of entry.body) parts.push(part);
    out.push({ path: entry.path, size: entry.size, mode: entry.mode, mtime: entry.mtime, data: Buffer.concat(parts) });
  }
  return out;
}

async function refusal(bytes: Buffer): Promise<string> {
  try {
    await unpack(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(TarFormatError);
    return (error as Error).message;
  }
  throw new Error('the archive was accepted');
}

const binary = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 37) % 256));
const longPath = `profiles/p0123456789abcdef01234567/${'d'.repeat(40)}/${'e'.repeat(60)}.ovpn`;
const ENTRIES = [
  { path: 'manifest.json', data: Buffer.from('{"formatVersion":"1.1"}\n') },
  { path: 'empty', data: Buffer.alloc(0) },
  { path: 'keys/exactly-one-block', data: Buffer.alloc(BLOCK, 0x41) },
  { path: 'keys/one-more', data: Buffer.alloc(BLOCK + 1, 0x42) },
  { path: 'keys/clients/binary.key', data: binary },
  { path: longPath, data: Buffer.from('long name, split into prefix and name\n') },
];

describe('the tar writer and reader', () => {
  it('give back every member byte for byte, with its mode and time, whatever the chunk boundaries', async () => {
    const bytes = await pack(ENTRIES);
    expect(bytes.length % RECORD).toBe(0);
    for (const size of [1, 7, 512, 65536]) {
      const back = await unpack(bytes, size);
      expect(back.map((e) => e.path)).toEqual(ENTRIES.map((e) => e.path));
      for (const [i, e] of back.entries()) {
        expect(e.data.equals(ENTRIES[i]!.data), e.path).toBe(true);
        expect(e.size).toBe(ENTRIES[i]!.data.length);
        expect(e.mode).toBe(0o600);
        expect(e.mtime).toBe(1_700_000_000);
      }
    }
  });

  it('give back every member whole through readBody, from the bytes already read or by waiting for more', async () => {
    const bytes = await pack(ENTRIES);
    for (const size of [1, 7, 512, 65536]) {
      const back: Buffer[] = [];
      for await (const entry of readTar(chunks(bytes, size))) back.push(await readBody(entry, 1 << 20));
      expect(back.map((b, i) => b.equals(ENTRIES[i]!.data))).toEqual(ENTRIES.map(() => true));
    }
  });

  it('give an entry left behind nothing of the next one', async () => {
    const bytes = await pack([
      { path: 'a', data: Buffer.from('first') },
      { path: 'b', data: Buffer.from('other') },
    ]);
    const reader = readTar(chunks(bytes, 65536));
    const a = (await reader.next()).value!;
    const b = (await reader.next()).value!;
    expect(a.bodyIfBuffered()).toBeUndefined();
    expect(b.bodyIfBuffered()?.toString()).toBe('other');
    expect(b.bodyIfBuffered()).toBeUndefined();
  });

  it('skip what a caller leaves unread, and still check what follows', async () => {
    const bytes = await pack(ENTRIES);
    const paths: string[] = [];
    for await (const entry of readTar(chunks(bytes))) paths.push(entry.path);
    expect(paths).toEqual(ENTRIES.map((e) => e.path));
  });

  it('write a header whose checksum, magic and fields a POSIX ustar reader expects', () => {
    const header = encodeHeader({ path: 'keys/ca.key', size: 1234, mode: 0o600, mtime: 1_700_000_000 });
    expect(header.length).toBe(BLOCK);
    expect(header.toString('latin1', 257, 265)).toBe('ustar\u000000');
    expect(header.toString('latin1', 124, 136)).toBe(`${(1234).toString(8).padStart(11, '0')}\0`);
    expect(String.fromCharCode(header[156]!)).toBe('0');
  });
});

describe('the tar reader refuses', () => {
  it('a header whose checksum does not match', async () => {
    const bytes = await pack(ENTRIES);
    bytes[10] = bytes[10]! ^ 0x01; // a byte of the first member's name
    expect(await refusal(bytes)).toMatch(/header at offset 0 fails its checksum/);
  });

  it('a damaged checksum field itself', async () => {
    const bytes = await pack(ENTRIES);
    bytes[150] = 0x39; // '9' is not an octal digit
    expect(await refusal(bytes)).toMatch(/has no valid checksum field: not a tar archive/);
  });

  it('an archive cut inside a member', async () => {
    const bytes = await pack(ENTRIES);
    expect(await refusal(bytes.subarray(0, BLOCK + 10))).toMatch(/truncated: it ends inside member manifest\.json/);
  });

  it('an archive cut inside a header', async () => {
    const bytes = await pack(ENTRIES);
    expect(await refusal(bytes.subarray(0, 2 * BLOCK + 100))).toMatch(/truncated: it ends inside a header/);
  });

  it('an archive without its end-of-archive blocks', async () => {
    const bytes = await pack([{ path: 'a', data: Buffer.from('x') }]);
    expect(await refusal(bytes.subarray(0, 2 * BLOCK))).toMatch(/end-of-archive marker is missing/);
    expect(await refusal(bytes.subarray(0, 3 * BLOCK + 10))).toMatch(/truncated: it ends inside the end-of-archive marker/);
  });

  it('padding that is not zeros', async () => {
    const bytes = await pack([{ path: 'a', data: Buffer.from('x') }, { path: 'b', data: Buffer.from('y') }]);
    bytes[BLOCK + 100] = 0x20;
    expect(await refusal(bytes)).toMatch(/padding after member a .* is not zeros/);
  });

  it('data after the end-of-archive blocks', async () => {
    const bytes = await pack([{ path: 'a', data: Buffer.from('x') }]);
    bytes[bytes.length - 1] = 0x01;
    expect(await refusal(bytes)).toMatch(/data after the end-of-archive marker/);
  });

  it('a lone zero block followed by data', async () => {
    const one = await pack([{ path: 'a', data: Buffer.from('x') }]);
    const forged = Buffer.concat([one.subarray(0, 2 * BLOCK), Buffer.alloc(BLOCK), one.subarray(0, 2 * BLOCK), Buffer.alloc(2 * BLOCK)]);
    expect(await refusal(forged)).toMatch(/lone zero block/);
  });

  const forgeHeader = (patch: (block: Buffer) => void): Buffer => {
    const block = encodeHeader({ path: 'placeholder', size: 1, mode: 0o600, mtime: 0 });
    patch(block);
    block.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of block) sum += b;
    block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    return Buffer.concat([block, Buffer.from('x'), Buffer.alloc(BLOCK - 1), Buffer.alloc(2 * BLOCK)]);
  };

  it('names that would escape the extraction directory, even with a valid checksum', async () => {
    for (const name of ['../etc/passwd', '/etc/passwd', 'keys/../../x', 'a//b', 'a/./b']) {
      const bytes = forgeHeader((b) => {
        b.fill(0, 0, 100);
        b.write(name, 0, 'latin1');
      });
      expect(await refusal(bytes), name).toMatch(/the path (is absolute|has)/);
    }
  });

  it('links, directories and extension headers', async () => {
    for (const [type, label] of [['2', 'symlink'], ['1', 'hard link'], ['5', 'directory'], ['x', 'pax'], ['L', 'GNU long name']] as const) {
      const bytes = forgeHeader((b) => {
        b[156] = type.charCodeAt(0);
      });
      expect(await refusal(bytes), label).toMatch(/only regular files are accepted/);
    }
  });

  it('a header that is not POSIX ustar (no magic: not a tar archive at all)', async () => {
    const bytes = forgeHeader((b) => b.fill(0, 257, 265));
    expect(await refusal(bytes)).toMatch(/not a POSIX ustar header/);
    expect(await refusal(Buffer.concat([Buffer.from('hello, this is not an archive'), Buffer.alloc(2000)]))).toMatch(/not a tar archive/);
  });

  it('a member larger than the caller allows', async () => {
    const bytes = await pack([{ path: 'big', data: Buffer.alloc(5000) }]);
    await expect(async () => {
      for await (const entry of readTar(chunks(bytes), { maxMemberSize: 4096 })) void entry;
    }).rejects.toThrow(/big is 5000 bytes, more than the 4096 allowed/);
  });
});

describe('the tar writer refuses', () => {
  it('unsafe or unrepresentable names', async () => {
    for (const name of ['', '/abs', '../up', 'a//b', 'tab\there', 'x'.repeat(101)]) {
      await expect(pack([{ path: name, data: Buffer.from('x') }]), JSON.stringify(name)).rejects.toThrow(TarFormatError);
    }
    expect(unsafePathReason('keys/clients/0a.key')).toBeUndefined();
  });

  it('a member whose bytes do not add up to the size announced', async () => {
    const packer = new TarPacker(async () => undefined);
    await expect(packer.addStream({ path: 'a', size: 10, mode: 0o600, mtime: 0 }, [Buffer.alloc(4)])).rejects.toThrow(/is 4 bytes, not the 10 announced/);
    await expect(packer.addStream({ path: 'b', size: 2, mode: 0o600, mtime: 0 }, [Buffer.alloc(4)])).rejects.toThrow(/longer than the 2 bytes announced/);
  });
});
