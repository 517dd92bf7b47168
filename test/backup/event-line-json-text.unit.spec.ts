// A restore's staging store writes data and metadata as the archive line holds them, cut out of
// the line instead of serialised again: pinned here is that what is cut out is exactly the event's
// data, and that any line it cannot be sure of is left to serialisation. The staging thread does
// not even parse the lines the checking thread parsed: cutEventLine cuts a line laid out as
// eventLine writes it without parsing it, and leaves every other line to the parser.
import { describe, expect, it } from 'vitest';
import { cutEventLine, EventLineParser, eventLine, jsonOfLine, type ArchivedEvent } from '../../adapters/archive/backup-archive.js';

const event = (data: unknown, metadata: unknown = { actor: 'ops', at: '2026-01-02T03:04:05.000Z' }): ArchivedEvent => ({
  streamId: 'profile-p0123456789abcdef01234567',
  revision: 4n,
  position: 17n,
  type: 'ProfileIssued',
  schemaVersion: 2,
  data,
  metadata,
});

/** Data whose text holds what a cutter could trip over: quotes, braces and brackets in strings, an escaped backslash before a quote, newlines, non-ASCII. */
const TRICKY_DATA = {
  email: 'a"b@example.com',
  nested: { metadata: { position: '1' }, list: [1, { a: '}]"{' }], back: 'ends in \\' },
  pem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  name: 'Spärck Jones ✓',
};

const readKeepingJson = (text: string, options: { keepJson?: boolean; cut?: boolean } = { keepJson: true }, format = '1.1'): ArchivedEvent[] => {
  const parser = new EventLineParser(format, options);
  const events: ArchivedEvent[] = [];
  parser.push(Buffer.from(`${text}\n`, 'utf8'), (e) => events.push(e));
  parser.end();
  return events;
};

describe('data and metadata as JSON text cut from an event line', () => {
  it('given a line as ov_backup writes it, then the text cut out is the serialised data and metadata', () => {
    const data = TRICKY_DATA;
    const e = event(data);
    const [read] = readKeepingJson(eventLine(e));
    expect(read!.json).toEqual({ data: JSON.stringify(data), metadata: JSON.stringify(e.metadata) });
    expect(JSON.parse(read!.json!.data)).toEqual(read!.data);
  });

  it('given a line that names "data" twice, then nothing is cut out and the value JSON.parse kept is what is stored', () => {
    const e = event({ b: 2 });
    const forged = eventLine(e).replace('"data":{"b":2}', '"data":{"a":1},"metadata":{},"position":"3","data":{"b":2}');
    expect(JSON.parse(forged).data).toEqual({ b: 2 });
    expect(jsonOfLine(forged, e)).toBeUndefined();
    const [read] = readKeepingJson(forged);
    expect(read!.data).toEqual({ b: 2 });
    expect(read!.json).toBeUndefined();
  });

  it('given a line laid out otherwise (spaces, another key order, a schema version written as 2.0), then nothing is cut out', () => {
    const e = event({ a: 1 });
    const spaced = JSON.stringify(JSON.parse(eventLine(e)), null, 1).replace(/\n/g, '');
    const { position, ...rest } = JSON.parse(eventLine(e)) as Record<string, unknown>;
    const reordered = JSON.stringify({ position, ...rest });
    const numbered = eventLine(e).replace('"schemaVersion":2,', '"schemaVersion":2.0,');
    for (const text of [spaced, reordered, numbered]) {
      const [read] = readKeepingJson(text);
      expect(read!.data).toEqual({ a: 1 });
      expect(read!.json).toBeUndefined();
    }
  });

  it('given data that is not an object, then nothing is cut out', () => {
    const e = event([1, 2]);
    expect(jsonOfLine(eventLine(e), e)).toBeUndefined();
  });

  it('given a parser without keepJson, then events carry no JSON text', () => {
    const parser = new EventLineParser('1.1');
    const events: ArchivedEvent[] = [];
    parser.push(Buffer.from(`${eventLine(event({ a: 1 }))}\n`), (x) => events.push(x));
    expect(events[0]!.json).toBeUndefined();
  });
});

describe('an event line cut apart without being parsed', () => {
  it('given lines as ov_backup writes them, then each field and the data and metadata text are what parsing the line gives', () => {
    for (const e of [event(TRICKY_DATA), event({}), { ...event({ serial: 'ab' }), type: 'ProfileResent', schemaVersion: 1, revision: 0n, position: 12345678901234n }]) {
      const line = eventLine(e);
      const [parsed] = readKeepingJson(line);
      const cut = cutEventLine(line);
      expect(cut).toEqual({ ...parsed, data: undefined, metadata: undefined });
      expect(cut!.json).toEqual({ data: JSON.stringify(e.data), metadata: JSON.stringify(e.metadata) });
    }
  });

  it('given a line that names "data" twice, is laid out otherwise, or has a stream id with an escape, then it is not cut, and the cutting parser reads it by parsing', () => {
    const e = event({ a: 1 });
    const line = eventLine(e);
    const { position, ...rest } = JSON.parse(line) as Record<string, unknown>;
    const escaped = eventLine({ ...e, streamId: 'profile-"quoted"' });
    const others = [
      line.replace('"data":{"a":1}', '"data":{"z":0},"metadata":{},"position":"3","data":{"a":1}'),
      JSON.stringify(JSON.parse(line), null, 1).replace(/\n/g, ''),
      JSON.stringify({ position, ...rest }),
      line.replace('"schemaVersion":2,', '"schemaVersion":2.0,'),
      line.replace('"revision":"4"', '"revision":"4x"'),
      line.replace('"data":{"a":1}', '"data":[1]'),
      `${line.slice(0, -1)},"extra":1}`,
      escaped,
    ];
    for (const text of others) {
      expect(cutEventLine(text), text).toBeUndefined();
      // Not event lines at all (a bad revision, a key too many): the parser refuses them.
      if (text.includes('4x') || text.includes('"extra"')) continue;
      const [read] = readKeepingJson(text, { cut: true });
      expect(read!.data).toEqual(JSON.parse(text).data);
    }
    expect(readKeepingJson(escaped, { cut: true })[0]!.streamId).toBe('profile-"quoted"');
  });

  it('given a line that is not an event line at all, then the cutting parser refuses it as the parser does', () => {
    const bad = eventLine(event({ a: 1 })).replace('"revision":"4"', '"revision":"4x"');
    expect(() => readKeepingJson(bad, { cut: true })).toThrow(/is not an event line/);
  });
});

describe('an event line written from the JSON text the store holds', () => {
  it('given an event with its stored JSON text, then the line is the one serialising the parsed values gives', () => {
    const e = event(TRICKY_DATA);
    const json = { data: JSON.stringify(TRICKY_DATA), metadata: JSON.stringify(e.metadata) };
    expect(eventLine({ ...e, json })).toBe(eventLine(e));
    expect(eventLine({ ...e, json })).toBe(
      JSON.stringify({ stream: e.streamId, revision: '4', type: e.type, schemaVersion: 2, data: TRICKY_DATA, metadata: e.metadata, position: '17' }),
    );
  });

  it('given stored text that another writer laid out over several lines, then the line is serialised again and stays one line', () => {
    const e = event(TRICKY_DATA);
    const json = { data: JSON.stringify(TRICKY_DATA, null, 2), metadata: JSON.stringify(e.metadata) };
    const line = eventLine({ ...e, json });
    expect(line).not.toContain('\n');
    expect(line).toBe(eventLine(e));
  });

  it('given stored text with spaces that JSON.stringify would not write, then the line still reads back as the same event', () => {
    const e = event({ a: 1, b: [1, 2] });
    const line = eventLine({ ...e, json: { data: '{ "a": 1, "b": [1, 2] }', metadata: JSON.stringify(e.metadata) } });
    const [read] = readKeepingJson(line);
    expect(read!.data).toStrictEqual({ a: 1, b: [1, 2] });
    expect(read!.position).toBe(17n);
  });
});
