import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../adapters/archive/line-splitter.js';

const split = (chunks: readonly Buffer[]): string[] => {
  const splitter = new LineSplitter();
  const lines: string[] = [];
  for (const chunk of chunks) splitter.push(chunk, (line) => lines.push(line));
  splitter.end('events.ndjson');
  return lines;
};

describe('cutting newline-delimited bytes into lines', () => {
  it('given lines split across chunks anywhere, even inside a UTF-8 character, then each line comes out whole and in order', () => {
    const text = '{"a":1}\n{"name":"Spärck Jones"}\n\n{"c":3}\n';
    const bytes = Buffer.from(text, 'utf8');
    for (let size = 1; size <= bytes.length; size++) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
      expect(split(chunks)).toEqual(['{"a":1}', '{"name":"Spärck Jones"}', '', '{"c":3}']);
    }
  });

  it('given one buffer refilled between pushes, then a line carried over is not overwritten', () => {
    const splitter = new LineSplitter();
    const lines: string[] = [];
    const buffer = Buffer.alloc(4);
    for (const part of ['abcd', 'ef\ng', 'h\n']) {
      const n = buffer.write(part);
      splitter.push(buffer.subarray(0, n), (line) => lines.push(line));
    }
    splitter.end('events.ndjson');
    expect(lines).toEqual(['abcdef', 'gh']);
  });

  it('given bytes that stop in the middle of a line, when they end, then it says so', () => {
    const splitter = new LineSplitter();
    splitter.push(Buffer.from('{"a":1}\n{"b"'), () => undefined);
    expect(() => splitter.end('events.ndjson')).toThrow('events.ndjson ends in the middle of a line');
  });
});
