// A minimal POSIX ustar reader and writer, for backup archives: regular files only, read and
// written as streams so a million-event log never sits in memory. No dependency: the format is
// 512-byte headers with octal fields and a checksum, each file's bytes padded to 512, and two
// zero blocks at the end.
//
// The reader is strict, because a backup is only worth restoring if every byte is accounted for:
// every header's checksum and fields are checked, padding and the end-of-archive blocks must be
// zeros, nothing but regular files with safe relative names is accepted (no links, devices,
// directories, pax or GNU extensions, no absolute paths or `..`), and an archive that ends early
// is refused as truncated.

export const BLOCK = 512;
/** tar's traditional record: 20 blocks. The writer pads the archive to a whole record, as tar(1) does. */
export const RECORD = 20 * BLOCK;
/** The largest size an 11-digit octal size field holds (8 GiB - 1). */
export const MAX_MEMBER_SIZE = 0o77777777777;

export class TarFormatError extends Error {
  override readonly name = 'TarFormatError';
}

export interface TarEntryHeader {
  /** Relative path with '/' separators, prefix and name joined. */
  readonly path: string;
  readonly size: number;
  /** Permission bits, e.g. 0o600. */
  readonly mode: number;
  /** Seconds since the epoch. */
  readonly mtime: number;
}

// ---- names -----------------------------------------------------------------------------------

// eslint-disable-next-line no-control-regex
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f\\]/;

/** Why a member path is not a safe relative path, or undefined when it is. */
export function unsafePathReason(path: string): string | undefined {
  if (path.length === 0) return 'is empty';
  if (UNSAFE_CHARACTERS.test(path)) return 'contains a control character or a backslash';
  if (path.startsWith('/')) return 'is absolute';
  const parts = path.split('/');
  if (parts.some((p) => p === '')) return 'has an empty component (a leading, trailing or doubled /)';
  if (parts.some((p) => p === '.' || p === '..')) return 'has a . or .. component';
  return undefined;
}

/** Splits a path into ustar's prefix (<= 155 bytes) and name (<= 100 bytes) at a '/'. */
function splitName(path: string): { prefix: string; name: string } {
  const bytes = Buffer.byteLength(path);
  if (bytes <= 100) return { prefix: '', name: path };
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) return { prefix, name };
  }
  throw new TarFormatError(`member path ${JSON.stringify(path)} is too long for a ustar header`);
}

// ---- headers -----------------------------------------------------------------------------------

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new TarFormatError(`header field value ${JSON.stringify(value)} is longer than ${length} bytes`);
  bytes.copy(block, offset);
}

/** An octal field: zero-padded digits followed by a NUL, filling `length` bytes. */
function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new TarFormatError(`header field value ${value} is not a non-negative integer`);
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new TarFormatError(`header field value ${value} does not fit in ${length - 1} octal digits`);
  writeString(block, offset, length, `${digits.padStart(length - 1, '0')}\0`);
}

function checksumOf(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum;
}

/** The 512-byte ustar header of a regular file. */
export function encodeHeader(entry: TarEntryHeader): Buffer {
  const reason = unsafePathReason(entry.path);
  if (reason) throw new TarFormatError(`member path ${JSON.stringify(entry.path)} ${reason}`);
  if (entry.size > MAX_MEMBER_SIZE) throw new TarFormatError(`member ${entry.path} is larger than ustar allows`);
  const { prefix, name } = splitName(entry.path);
  const block = Buffer.alloc(BLOCK);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, entry.mode & 0o7777);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, entry.size);
  writeOctal(block, 136, 12, Math.max(0, Math.floor(entry.mtime)));
  block[156] = 0x30; // '0': regular file
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  writeString(block, 345, 155, prefix);
  // Six octal digits, NUL, space: the historical layout every tar reads.
  writeString(block, 148, 8, `${checksumOf(block).toString(8).padStart(6, '0')}\0 `);
  return block;
}

// The two readers below run on every header of a restore (some 200,000 members): they walk the
// bytes in place rather than cut views, regular expressions and callbacks out of them.

/** A NUL-terminated text field; every byte after the terminator must be NUL too. */
function readString(block: Buffer, offset: number, length: number, field: string, at: number): string {
  const limit = offset + length;
  let end = offset;
  let ascii = true;
  for (; end < limit && block[end] !== 0; end++) if (block[end]! > 0x7f) ascii = false;
  for (let i = end; i < limit; i++) {
    if (block[i] !== 0) throw new TarFormatError(`tar header at offset ${at}: the ${field} field has bytes after its terminator`);
  }
  if (ascii) return block.toString('latin1', offset, end);
  const value = block.toString('utf8', offset, end);
  if (Buffer.byteLength(value) !== end - offset) throw new TarFormatError(`tar header at offset ${at}: the ${field} field is not valid UTF-8`);
  return value;
}

const SPACE = 0x20;
const DIGIT_0 = 0x30;
const DIGIT_7 = 0x37;

/** An octal field: digits, then NULs or spaces to the end (leading spaces allowed, as old tars wrote). */
function readOctal(block: Buffer, offset: number, length: number, field: string, at: number): number {
  const limit = offset + length;
  if ((block[offset]! & 0x80) !== 0) throw new TarFormatError(`tar header at offset ${at}: the ${field} field uses base-256, which this reader does not accept`);
  let i = offset;
  while (i < limit && block[i] === SPACE) i++;
  const first = i;
  let value = 0;
  for (; i < limit && block[i]! >= DIGIT_0 && block[i]! <= DIGIT_7; i++) value = value * 8 + (block[i]! - DIGIT_0);
  const digits = i - first;
  while (i < limit && (block[i] === SPACE || block[i] === 0)) i++;
  if (digits === 0 || i !== limit) throw new TarFormatError(`tar header at offset ${at}: the ${field} field is not an octal number`);
  if (!Number.isSafeInteger(value)) throw new TarFormatError(`tar header at offset ${at}: the ${field} field is too large`);
  return value;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Parses and checks one header block; `at` is its offset in the archive, for messages. */
export function decodeHeader(block: Buffer, at: number): TarEntryHeader {
  if (block.length !== BLOCK) throw new TarFormatError(`tar header at offset ${at} is ${block.length} bytes, not ${BLOCK}`);
  let recorded: number;
  try {
    recorded = readOctal(block, 148, 8, 'checksum', at);
  } catch {
    throw new TarFormatError(`tar header at offset ${at} has no valid checksum field: not a tar archive, or a damaged one`);
  }
  const actual = checksumOf(block);
  if (recorded !== actual) {
    throw new TarFormatError(`tar header at offset ${at} fails its checksum (recorded ${recorded}, computed ${actual}): not a tar archive, or a damaged one`);
  }
  if (block.toString('latin1', 257, 263) !== 'ustar\0' || block.toString('latin1', 263, 265) !== '00') {
    throw new TarFormatError(`tar header at offset ${at} is not a POSIX ustar header`);
  }
  const type = block[156];
  if (type !== 0x30 && type !== 0) {
    throw new TarFormatError(`tar member at offset ${at} is of type ${JSON.stringify(String.fromCharCode(type ?? 0))}; only regular files are accepted`);
  }
  const name = readString(block, 0, 100, 'name', at);
  const prefix = readString(block, 345, 155, 'prefix', at);
  const path = prefix === '' ? name : `${prefix}/${name}`;
  const reason = unsafePathReason(path);
  if (reason) throw new TarFormatError(`tar member ${JSON.stringify(path)} at offset ${at}: the path ${reason}`);
  if (readString(block, 157, 100, 'linkname', at) !== '') throw new TarFormatError(`tar member ${path} at offset ${at} names a link target`);
  return {
    path,
    mode: readOctal(block, 100, 8, 'mode', at),
    size: readOctal(block, 124, 12, 'size', at),
    mtime: readOctal(block, 136, 12, 'mtime', at),
  };
}

export function paddingLength(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

// ---- writing -------------------------------------------------------------------------------------

/**
 * Writes members to a byte sink (a gzip stream, a file, an array in a test) as they come. The sink
 * is awaited after every write, so backpressure holds and memory stays flat however large a member.
 */
export class TarPacker {
  private written = 0;
  private finished = false;

  constructor(private readonly sink: (chunk: Buffer) => Promise<void>) {}

  private async emit(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    this.written += chunk.length;
    await this.sink(chunk);
  }

  async addBuffer(path: string, data: Buffer, options: { mode: number; mtime: number }): Promise<void> {
    await this.addStream({ path, size: data.length, ...options }, [data]);
  }

  /** Adds a member whose bytes arrive in chunks; refuses when they do not add up to `size`. */
  async addStream(entry: TarEntryHeader, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
    if (this.finished) throw new TarFormatError('the archive is already finished');
    await this.emit(encodeHeader(entry));
    let count = 0;
    for await (const chunk of chunks) {
      count += chunk.length;
      if (count > entry.size) throw new TarFormatError(`member ${entry.path} is longer than the ${entry.size} bytes announced`);
      await this.emit(chunk);
    }
    if (count !== entry.size) throw new TarFormatError(`member ${entry.path} is ${count} bytes, not the ${entry.size} announced`);
    await this.emit(Buffer.alloc(paddingLength(entry.size)));
  }

  /** Two zero blocks, then zeros up to a whole record. */
  async finish(): Promise<void> {
    if (this.finished) return;
    await this.emit(Buffer.alloc(2 * BLOCK));
    await this.emit(Buffer.alloc((RECORD - (this.written % RECORD)) % RECORD));
    this.finished = true;
  }
}

// ---- reading -------------------------------------------------------------------------------------

/** Pulls exact byte counts out of a stream of chunks of any size. */
class ChunkReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  /** Bytes handed out so far: the offset of the next byte in the archive. */
  offset = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.ended) {
      const next = await this.source.next();
      if (next.done) this.ended = true;
      else if (next.value.length > 0) {
        this.chunks.push(next.value);
        this.buffered += next.value.length;
      }
    }
  }

  /**
   * Exactly `n` bytes when they are already here in one chunk, without waiting; else undefined
   * (then use readUpTo). Most headers and small members of an archive are: a restore reads some
   * 200,000 of them, and each await costs a trip through the microtask queue.
   */
  takeBuffered(n: number): Buffer | undefined {
    const first = this.chunks[0];
    return first && first.length >= n ? this.takeFrom(first, n) : undefined;
  }

  /** Up to `max` bytes (fewer only at the end of the stream); an empty buffer at the end. */
  async readSome(max: number): Promise<Buffer> {
    await this.fill(1);
    const first = this.chunks[0];
    return first ? this.takeFrom(first, Math.min(max, first.length)) : Buffer.alloc(0);
  }

  /** The first `n` bytes of `first`, the first chunk, handed out. */
  private takeFrom(first: Buffer, n: number): Buffer {
    if (n === first.length) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    this.offset += n;
    return first.subarray(0, n);
  }

  /** Exactly `n` bytes, or fewer when the stream ends first. */
  async readUpTo(n: number): Promise<Buffer> {
    await this.fill(n);
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const part = await this.readSome(n - got);
      if (part.length === 0) break;
      parts.push(part);
      got += part.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

export interface TarEntry extends TarEntryHeader {
  /**
   * The member's bytes. Read it before asking for the next entry; what is left unread is skipped.
   * Yields nothing more (and the next entry fails) when the archive ends inside the member.
   */
  readonly body: AsyncIterable<Buffer>;
  /** All of the member's bytes at once when they are already read, before `body` was touched; else undefined. */
  readonly bodyIfBuffered: () => Buffer | undefined;
}

export interface ReadTarOptions {
  /** Refuse members larger than this (default: what ustar can describe). */
  readonly maxMemberSize?: number;
}

/**
 * The members of a tar stream, in order. Throws TarFormatError on anything this reader does not
 * fully understand, on a truncated archive and on garbage after the end-of-archive blocks.
 */
export async function* readTar(source: AsyncIterable<Buffer>, options: ReadTarOptions = {}): AsyncGenerator<TarEntry, void, undefined> {
  const reader = new ChunkReader(source[Symbol.asyncIterator]());
  const maxSize = options.maxMemberSize ?? MAX_MEMBER_SIZE;
  let pending = 0;
  let pendingPath = '';
  let pendingPadding = 0;
  /** Entries yielded so far: an entry's bodyIfBuffered answers only while it is the current one. */
  let entries = 0;

  const truncated = (what: string) => new TarFormatError(`the archive is truncated: it ends inside ${what}`);

  for (;;) {
    // Finish the previous member: skip what the caller left unread, then check its padding.
    while (pending > 0) {
      const part = await reader.readSome(pending);
      if (part.length === 0) throw truncated(`member ${pendingPath}`);
      pending -= part.length;
    }
    if (pendingPadding > 0) {
      const at = reader.offset;
      const padding = reader.takeBuffered(pendingPadding) ?? (await reader.readUpTo(pendingPadding));
      if (padding.length < pendingPadding) throw truncated(`the padding of member ${pendingPath}`);
      if (!isZeroBlock(padding)) throw new TarFormatError(`the padding after member ${pendingPath} (offset ${at}) is not zeros`);
      pendingPadding = 0;
    }

    const at = reader.offset;
    const block = reader.takeBuffered(BLOCK) ?? (await reader.readUpTo(BLOCK));
    if (block.length === 0) throw new TarFormatError('the archive is truncated: the end-of-archive marker is missing');
    if (block.length < BLOCK) throw truncated(`a header (offset ${at})`);
    if (isZeroBlock(block)) {
      const second = await reader.readUpTo(BLOCK);
      if (second.length < BLOCK) throw truncated('the end-of-archive marker');
      if (!isZeroBlock(second)) throw new TarFormatError(`a lone zero block at offset ${at} is followed by data`);
      // Record padding may follow, and must be zeros too.
      for (;;) {
        const rest = await reader.readSome(64 * 1024);
        if (rest.length === 0) return;
        if (!isZeroBlock(rest)) throw new TarFormatError(`data after the end-of-archive marker (offset ${reader.offset - rest.length})`);
      }
    }

    const header = decodeHeader(block, at);
    if (header.size > maxSize) {
      throw new TarFormatError(`member ${header.path} is ${header.size} bytes, more than the ${maxSize} allowed for it`);
    }
    pending = header.size;
    pendingPath = header.path;
    pendingPadding = paddingLength(header.size);

    const body = async function* (): AsyncGenerator<Buffer, void, undefined> {
      while (pending > 0) {
        const part = await reader.readSome(Math.min(pending, 256 * 1024));
        if (part.length === 0) throw truncated(`member ${header.path}`);
        pending -= part.length;
        yield part;
      }
    };
    const size = header.size;
    const entry = ++entries;
    const bodyIfBuffered = (): Buffer | undefined => {
      if (entry !== entries || pending !== size || size === 0) return undefined;
      const whole = reader.takeBuffered(size);
      if (whole) pending = 0;
      return whole;
    };
    yield { path: header.path, size, mode: header.mode, mtime: header.mtime, body: body(), bodyIfBuffered };
  }
}

/** Reads a whole member into memory (for small members); refuses more than `max` bytes. */
export async function readBody(entry: TarEntry, max: number): Promise<Buffer> {
  if (entry.size > max) throw new TarFormatError(`member ${entry.path} is ${entry.size} bytes, more than the ${max} allowed for it`);
  const whole = entry.bodyIfBuffered();
  if (whole) return whole;
  const parts: Buffer[] = [];
  for await (const part of entry.body) parts.push(part);
  // Most members lie within one chunk of the stream: no copy then.
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
