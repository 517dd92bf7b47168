// A decoder of EventStoreDB's Streams.Read answers (`event_store.client.streams.ReadResp`, from
// streams.proto as `@eventstore/db-client` 6.x ships it), straight from the bytes on the wire, for
// bulk reads of `$all`.
//
// Why not the client's own decoding: it builds google-protobuf objects for every message (after
// copying its bytes), then a ResolvedEvent (UUID, Date, both JSON fields parsed) from them; at a
// million events that is most of a catch-up's time. This reads the protobuf fields in place and
// keeps data and metadata as byte ranges, so that the caller parses JSON only for the events it
// keeps (not for the server's own `$`-events, not for the record a read from a position repeats).
//
// Only what a read of `$all` carries is decoded: ReadResp.event (field 1) → ReadEvent.event
// (field 1) → RecordedEvent. Every other answer (confirmation, checkpoint, stream_not_found,
// first/last positions, caught_up, fell_behind, …) decodes to OTHER, and unknown fields are
// skipped, as protobuf requires of a reader.
//
// The wire format, for the record (https://protobuf.dev/programming-guides/encoding/): a message
// is a sequence of (tag, value) where tag = field << 3 | wire type; wire type 0 is a varint, 1 a
// fixed 64-bit value, 2 a length-prefixed byte range (strings, bytes, sub-messages, map entries),
// 5 a fixed 32-bit value; 3 and 4 (groups) do not occur in proto3.

/** A recorded event as the server sent it, with data and metadata still bytes. */
export interface WireEvent {
  readonly streamId: string;
  readonly revision: bigint;
  readonly commit: bigint;
  readonly prepare: bigint;
  /** The "type" entry of the system metadata ('<no-event-type-provided>' if none, as in the client). */
  readonly type: string;
  /** The "content-type" entry ('application/octet-stream' if none, as in the client). */
  readonly contentType: string;
  /** The bytes the message was decoded from, and where data and custom metadata lie in them. */
  readonly bytes: Buffer;
  readonly dataStart: number;
  readonly dataEnd: number;
  readonly metadataStart: number;
  readonly metadataEnd: number;
}

/** What a ReadResp that carries no event decodes to. */
export const OTHER = Symbol('ReadResp without an event');

export type DecodedReadResp = WireEvent | typeof OTHER;

export class ReadRespDecodeError extends Error {
  override readonly name = 'ReadRespDecodeError';
}

const EMPTY = Buffer.alloc(0);

/** Reading position in the message being decoded (module state: decoding never re-enters). */
let buf: Buffer = EMPTY;
let pos = 0;

function fail(what: string): never {
  throw new ReadRespDecodeError(`malformed EventStoreDB read answer: ${what} at byte ${pos}`);
}

/** A varint that fits a safe integer (tags, lengths): up to 7 bytes. */
function varint(): number {
  let result = 0;
  let multiplier = 1;
  for (let i = 0; i < 7; i++) {
    if (pos >= buf.length) fail('truncated varint');
    const b = buf[pos++]!;
    result += (b & 0x7f) * multiplier;
    if (b < 0x80) return result;
    multiplier *= 128;
  }
  return fail('varint too large for a length or tag');
}

/** A uint64 varint as a bigint (exact over the whole 64-bit range). */
function uint64(): bigint {
  let small = 0;
  let multiplier = 1;
  let i = 0;
  for (; i < 7; i++) {
    if (pos >= buf.length) fail('truncated varint');
    const b = buf[pos++]!;
    small += (b & 0x7f) * multiplier;
    if (b < 0x80) return BigInt(small);
    multiplier *= 128;
  }
  // Beyond 49 bits: go on in bigint (at most 10 bytes; the 64th bit and above wrap, as protobuf's
  // own readers do).
  let big = BigInt(small);
  for (let shift = 49n; i < 10; i++, shift += 7n) {
    if (pos >= buf.length) fail('truncated varint');
    const b = buf[pos++]!;
    big += BigInt(b & 0x7f) << shift;
    if (b < 0x80) return BigInt.asUintN(64, big);
  }
  return fail('varint longer than 10 bytes');
}

/** The end of a length-delimited field whose length prefix starts at `pos`. */
function delimitedEnd(limit: number): number {
  const length = varint();
  const end = pos + length;
  if (end > limit) fail('length beyond the end of its message');
  return end;
}

function skip(wireType: number, limit: number): void {
  switch (wireType) {
    case 0:
      while (pos < limit && buf[pos]! >= 0x80) pos++;
      if (pos >= limit) fail('truncated varint');
      pos++;
      return;
    case 1:
      pos += 8;
      break;
    case 2:
      pos = delimitedEnd(limit);
      return;
    case 5:
      pos += 4;
      break;
    default:
      fail(`unsupported wire type ${wireType}`);
  }
  if (pos > limit) fail('truncated field');
}

function text(start: number, end: number): string {
  return buf.toString('utf8', start, end);
}

/** Whether bytes [start, end) of the buffer spell the ASCII string `s`. */
function spells(start: number, end: number, s: string): boolean {
  if (end - start !== s.length) return false;
  for (let i = 0; i < s.length; i++) if (buf[start + i] !== s.charCodeAt(i)) return false;
  return true;
}

const JSON_CONTENT_TYPE = 'application/json';

function recordedEvent(end: number): WireEvent {
  let streamId: string | undefined;
  let revision = 0n;
  let commit = 0n;
  let prepare = 0n;
  let type: string | undefined;
  let contentType: string | undefined;
  let dataStart = 0;
  let dataEnd = 0;
  let metadataStart = 0;
  let metadataEnd = 0;
  while (pos < end) {
    const tag = varint();
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field === 2 && wireType === 2) {
      // StreamIdentifier { bytes stream_name = 3; }
      const idEnd = delimitedEnd(end);
      while (pos < idEnd) {
        const t = varint();
        if (t === ((3 << 3) | 2)) {
          const nameEnd = delimitedEnd(idEnd);
          streamId = text(pos, nameEnd);
          pos = nameEnd;
        } else skip(t & 7, idEnd);
      }
    } else if (field === 3 && wireType === 0) revision = uint64();
    else if (field === 4 && wireType === 0) prepare = uint64();
    else if (field === 5 && wireType === 0) commit = uint64();
    else if (field === 6 && wireType === 2) {
      // map<string, string> metadata: one entry { string key = 1; string value = 2; }
      const entryEnd = delimitedEnd(end);
      let keyStart = 0;
      let keyEnd = 0;
      let valueStart = 0;
      let valueEnd = 0;
      while (pos < entryEnd) {
        const t = varint();
        if (t === ((1 << 3) | 2)) {
          keyEnd = delimitedEnd(entryEnd);
          keyStart = pos;
          pos = keyEnd;
        } else if (t === ((2 << 3) | 2)) {
          valueEnd = delimitedEnd(entryEnd);
          valueStart = pos;
          pos = valueEnd;
        } else skip(t & 7, entryEnd);
      }
      if (spells(keyStart, keyEnd, 'type')) type = text(valueStart, valueEnd);
      else if (spells(keyStart, keyEnd, 'content-type')) {
        contentType = spells(valueStart, valueEnd, JSON_CONTENT_TYPE) ? JSON_CONTENT_TYPE : text(valueStart, valueEnd);
      }
    } else if (field === 7 && wireType === 2) {
      metadataEnd = delimitedEnd(end);
      metadataStart = pos;
      pos = metadataEnd;
    } else if (field === 8 && wireType === 2) {
      dataEnd = delimitedEnd(end);
      dataStart = pos;
      pos = dataEnd;
    } else skip(wireType, end);
  }
  if (pos !== end) fail('field beyond the end of its message');
  if (streamId === undefined) fail('recorded event without a stream identifier');
  return {
    streamId,
    revision,
    commit,
    prepare,
    type: type ?? '<no-event-type-provided>',
    contentType: contentType ?? 'application/octet-stream',
    bytes: buf,
    dataStart,
    dataEnd,
    metadataStart,
    metadataEnd,
  };
}

function readEvent(end: number): WireEvent | typeof OTHER {
  let event: WireEvent | typeof OTHER = OTHER;
  while (pos < end) {
    const tag = varint();
    if (tag === ((1 << 3) | 2)) {
      const eventEnd = delimitedEnd(end);
      event = recordedEvent(eventEnd);
    } else skip(tag & 7, end);
  }
  return event;
}

/** Decodes one ReadResp message. The result refers to `bytes`, which must not change afterwards. */
export function decodeReadResp(bytes: Buffer): DecodedReadResp {
  buf = bytes;
  pos = 0;
  try {
    let result: DecodedReadResp = OTHER;
    const end = bytes.length;
    while (pos < end) {
      const tag = varint();
      if (tag === ((1 << 3) | 2)) {
        const eventEnd = delimitedEnd(end);
        result = readEvent(eventEnd);
      } else {
        // Another member of the content oneof (fields 2 to 9; the last one wins): this answer
        // carries no event. Fields unknown to us leave the oneof as it is.
        const field = tag >>> 3;
        if (field >= 2 && field <= 9) result = OTHER;
        skip(tag & 7, end);
      }
    }
    if (pos !== end) fail('field beyond the end of the message');
    return result;
  } finally {
    buf = EMPTY;
  }
}

/** The event's data as text (JSON for our events). */
export function dataText(event: WireEvent): string {
  return event.bytes.toString('utf8', event.dataStart, event.dataEnd);
}

/** The event's custom metadata as text (JSON for our events). */
export function metadataText(event: WireEvent): string {
  return event.bytes.toString('utf8', event.metadataStart, event.metadataEnd);
}
