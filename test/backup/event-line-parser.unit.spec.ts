// EventLineParser: events.ndjson's bytes, in chunks of any size, read line by line as event lines
// (what ov_restore's checks, its staging worker and its EventStoreDB append all read them with).
import { describe, expect, it } from 'vitest';
import { EventLineParser, type ArchivedEvent } from '../../adapters/archive/backup-archive.js';

const line = (position: number, data: Record<string, unknown>): string =>
  JSON.stringify({ stream: 'profile-p0123456789abcdef01234567', revision: String(position - 1), type: 'ProfileResent', schemaVersion: 1, data, metadata: { actor: 'ops' }, position: String(position) });

const parse = (chunks: readonly Buffer[]): ArchivedEvent[] => {
  const parser = new EventLineParser('1.1');
  const events: ArchivedEvent[] = [];
  for (const chunk of chunks) parser.push(chunk, (e) => events.push(e));
  parser.end();
  return events;
};

describe('reading events.ndjson line by line', () => {
  it('given lines split across chunks anywhere, even inside a UTF-8 character, then each event comes out whole and in order', () => {
    const bytes = Buffer.from(`${line(1, { a: 1 })}\n${line(2, { name: 'Spärck Jones' })}\n${line(3, { c: 3 })}\n`, 'utf8');
    for (let size = 1; size <= bytes.length; size += 7) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
      const events = parse(chunks);
      expect(events.map((e) => e.position)).toEqual([1n, 2n, 3n]);
      expect(events[1]!.data).toEqual({ name: 'Spärck Jones' });
    }
  });

  it('given one buffer refilled between pushes, then a line carried over is not overwritten', () => {
    const text = `${line(1, { a: 'abcdef' })}\n${line(2, { b: 'gh' })}\n`;
    const parser = new EventLineParser('1.1');
    const events: ArchivedEvent[] = [];
    const buffer = Buffer.alloc(16);
    for (let at = 0; at < text.length; at += 16) {
      const n = buffer.write(text.slice(at, at + 16));
      parser.push(buffer.subarray(0, n), (e) => events.push(e));
    }
    parser.end();
    expect(events.map((e) => e.data)).toEqual([{ a: 'abcdef' }, { b: 'gh' }]);
  });

  it('given bytes that stop in the middle of a line, when they end, then it says so', () => {
    const parser = new EventLineParser('1.1');
    parser.push(Buffer.from(`${line(1, {})}\n{"stream"`), () => undefined);
    expect(() => parser.end()).toThrow('events.ndjson ends in the middle of line 2: the archive is damaged');
  });

  it('given an empty line, then it is refused by number, after the events before it', () => {
    const parser = new EventLineParser('1.1');
    const events: ArchivedEvent[] = [];
    expect(() => parser.push(Buffer.from(`${line(1, {})}\n\n${line(2, {})}\n`), (e) => events.push(e))).toThrow('events.ndjson line 2 is not valid JSON');
    expect(events).toHaveLength(1);
  });
});
