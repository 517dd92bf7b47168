// The decoder of Streams.Read answers against the client package's own protobuf classes: every
// message they encode must decode to the same fields.
import sharedPb from '@eventstore/db-client/generated/shared_pb.js';
import streamsPb from '@eventstore/db-client/generated/streams_pb.js';
import { describe, expect, it } from 'vitest';
import { dataText, decodeReadResp, metadataText, OTHER, ReadRespDecodeError, type WireEvent } from '../../adapters/eventstore/esdb-read-decoder.js';

const { ReadResp } = streamsPb;
const utf8 = new TextEncoder();

interface Fields {
  readonly streamId: string;
  readonly revision: bigint;
  readonly commit: bigint;
  readonly prepare: bigint;
  readonly type?: string;
  readonly contentType?: string;
  readonly data: string;
  readonly metadata: string;
  readonly structuredId?: boolean;
  readonly link?: boolean;
  readonly created?: boolean;
}

function recorded(f: Fields): InstanceType<typeof ReadResp.ReadEvent.RecordedEvent> {
  const id = new sharedPb.UUID();
  if (f.structuredId) id.setStructured(new sharedPb.UUID.Structured().setMostSignificantBits('-12345').setLeastSignificantBits('987654321'));
  else id.setString('5f0c1d0e-0000-4000-8000-000000000001');
  const r = new ReadResp.ReadEvent.RecordedEvent()
    .setId(id)
    .setStreamIdentifier(new sharedPb.StreamIdentifier().setStreamName(utf8.encode(f.streamId)))
    .setStreamRevision(f.revision.toString())
    .setCommitPosition(f.commit.toString())
    .setPreparePosition(f.prepare.toString())
    .setData(utf8.encode(f.data))
    .setCustomMetadata(utf8.encode(f.metadata));
  const map = r.getMetadataMap();
  if (f.created ?? true) map.set('created', '638000000000000000');
  if (f.type !== undefined) map.set('type', f.type);
  if (f.contentType !== undefined) map.set('content-type', f.contentType);
  return r;
}

function encode(f: Fields): Buffer {
  const event = new ReadResp.ReadEvent().setEvent(recorded(f)).setCommitPosition(f.commit.toString());
  if (f.link) event.setLink(recorded({ ...f, streamId: '$ce-profile', type: '$>', data: '0@profile-1' }));
  return Buffer.from(new ReadResp().setEvent(event).serializeBinary());
}

function expectDecoded(bytes: Buffer, f: Fields): void {
  const decoded = decodeReadResp(bytes);
  expect(decoded).not.toBe(OTHER);
  const e = decoded as WireEvent;
  expect({ streamId: e.streamId, revision: e.revision, commit: e.commit, prepare: e.prepare, type: e.type, contentType: e.contentType }).toEqual({
    streamId: f.streamId,
    revision: f.revision,
    commit: f.commit,
    prepare: f.prepare,
    type: f.type ?? '<no-event-type-provided>',
    contentType: f.contentType ?? 'application/octet-stream',
  });
  expect(dataText(e)).toBe(f.data);
  expect(metadataText(e)).toBe(f.metadata);
}

const base: Fields = {
  streamId: 'profile-0001',
  revision: 3n,
  commit: 4096n,
  prepare: 4096n,
  type: 'ProfileIssued',
  contentType: 'application/json',
  data: '{"serial":"0a1b","pem":"-----BEGIN CERTIFICATE-----"}',
  metadata: '{"schemaVersion":2,"metadata":{"actor":"ops"}}',
};

describe('decodeReadResp (unit)', () => {
  it('decodes an event as the client package encodes it', () => {
    expectDecoded(encode(base), base);
  });

  it('decodes every uint64 exactly, across the 49-bit fast path and up to 2^64 - 1', () => {
    const values = [0n, 1n, 127n, 128n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 53n + 1n, 2n ** 56n, 2n ** 63n, 2n ** 64n - 2n, 2n ** 64n - 1n];
    for (const v of values) {
      const f = { ...base, revision: v, commit: v, prepare: values[values.length - 1 - values.indexOf(v)]! };
      expectDecoded(encode(f), f);
    }
    let seed = 42n;
    for (let i = 0; i < 500; i++) {
      seed = (seed * 6364136223846793005n + 1442695040888963407n) % 2n ** 64n;
      const v = seed >> BigInt(i % 64);
      const f = { ...base, revision: v, commit: v, prepare: v };
      expectDecoded(encode(f), f);
    }
  });

  it('decodes UTF-8 names, types and data, long fields, empty fields and structured ids', () => {
    const cases: Fields[] = [
      { ...base, streamId: 'profile-émile-ünïcødé-😀', type: 'Révoqué', data: '{"note":"日本語 😀"}' },
      { ...base, data: `{"pem":"${'A'.repeat(200_000)}"}` },
      { ...base, data: '', metadata: '' },
      { ...base, structuredId: true },
      { ...base, link: true },
      { ...base, created: false },
      { ...base, type: undefined, contentType: undefined },
      { ...base, contentType: 'application/octet-stream' },
      { ...base, contentType: 'application/jsonx' },
    ];
    for (const f of cases) expectDecoded(encode(f), f);
  });

  it('reads every other answer as carrying no event', () => {
    const others = [
      new ReadResp().setConfirmation(new ReadResp.SubscriptionConfirmation().setSubscriptionId('x')),
      new ReadResp().setCheckpoint(new ReadResp.Checkpoint().setCommitPosition('10').setPreparePosition('10')),
      new ReadResp().setStreamNotFound(new ReadResp.StreamNotFound().setStreamIdentifier(new sharedPb.StreamIdentifier().setStreamName(utf8.encode('s')))),
      new ReadResp().setFirstStreamPosition('5'),
      new ReadResp().setLastStreamPosition('7'),
      new ReadResp().setLastAllStreamPosition(new sharedPb.AllStreamPosition().setCommitPosition('9').setPreparePosition('9')),
      new ReadResp().setCaughtUp(new ReadResp.CaughtUp()),
      new ReadResp().setFellBehind(new ReadResp.FellBehind()),
      new ReadResp(),
      new ReadResp().setEvent(new ReadResp.ReadEvent().setCommitPosition('3')),
    ];
    for (const m of others) expect(decodeReadResp(Buffer.from(m.serializeBinary()))).toBe(OTHER);
  });

  it('skips fields it does not know, of every wire type', () => {
    const known = encode(base);
    // Unknown fields appended to the outer message: 15 varint, 16 fixed64, 17 bytes, 18 fixed32.
    const unknown = Buffer.from([
      (15 << 3) | 0, 0xff, 0xff, 0x03,
      ...[(16 << 3) | 1, 0x01], 1, 2, 3, 4, 5, 6, 7, 8,
      ...[(17 << 3) | 2, 0x01], 3, 1, 2, 3,
      ...[(18 << 3) | 5, 0x01], 1, 2, 3, 4,
    ]);
    expectDecoded(Buffer.concat([known, unknown]), base);
  });

  it('refuses truncated or malformed answers instead of misreading them', () => {
    const bytes = encode(base);
    for (const cut of [1, 2, 5, 20, bytes.length - 1]) {
      expect(() => decodeReadResp(bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(ReadRespDecodeError);
    }
    expect(() => decodeReadResp(Buffer.from([(1 << 3) | 3]))).toThrow(ReadRespDecodeError);
    expect(() => decodeReadResp(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))).toThrow(ReadRespDecodeError);
  });

  it('leaves the decoder usable after a failure', () => {
    expect(() => decodeReadResp(Buffer.from([0x0a, 0x05, 0x0a]))).toThrow(ReadRespDecodeError);
    expectDecoded(encode(base), base);
  });
});
