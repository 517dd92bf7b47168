// The behaviour every EventStore adapter must have, written once and run against each adapter
// (in-memory, SQLite, and any later one). Each `it` sentence is the specification.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  WrongExpectedRevisionError,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type RecordedEvent,
} from '../../adapters/eventstore/event-store.js';

export interface EventStoreUnderTest {
  readonly store: EventStore;
  readonly cleanup: () => Promise<void>;
}

function event(type: string, data: unknown = {}, metadata: unknown = {}, schemaVersion = 1): NewEvent {
  return { type, schemaVersion, data, metadata };
}

function events(n: number, prefix = 'E'): NewEvent[] {
  return Array.from({ length: n }, (_, i) => event(`${prefix}${i}`, { i }));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

async function expectConflict(
  promise: Promise<unknown>,
  streamId: string,
  expected: ExpectedRevision,
  actual: bigint | 'no_stream',
): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(WrongExpectedRevisionError);
  const conflict = error as WrongExpectedRevisionError;
  expect(conflict.streamId).toBe(streamId);
  expect(conflict.expected).toBe(expected);
  expect(conflict.actual).toBe(actual);
}

async function readEverything(store: EventStore, pageSize = 1000): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  let after = 0n;
  for (;;) {
    const page = await store.readAll({ after, limit: pageSize });
    if (page.length === 0) return all;
    all.push(...page);
    after = page.at(-1)!.position;
  }
}

export function describeEventStoreContract(name: string, create: () => Promise<EventStoreUnderTest>): void {
  describe(`EventStore contract: ${name}`, () => {
    let store: EventStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await create());
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('appendToStream', () => {
      it("given a stream that does not exist, when events are appended with 'no_stream', then they get revisions 0..n-1 and the result names the last revision and position", async () => {
        const result = await store.appendToStream('user-a', 'no_stream', events(3));

        expect(result).toEqual({ nextExpectedRevision: 2n, position: 3n });
        const stream = await store.readStream('user-a');
        expect(stream.map((e) => e.revision)).toEqual([0n, 1n, 2n]);
        expect(stream.map((e) => e.type)).toEqual(['E0', 'E1', 'E2']);
        expect(stream.map((e) => e.streamId)).toEqual(['user-a', 'user-a', 'user-a']);
      });

      it("given a stream whose last revision is 1, when appending with expectedRevision 1n, then the new events continue at revision 2", async () => {
        await store.appendToStream('user-a', 'no_stream', events(2));

        const result = await store.appendToStream('user-a', 1n, [event('Next')]);

        expect(result.nextExpectedRevision).toBe(2n);
        const stream = await store.readStream('user-a');
        expect(stream.map((e) => [e.revision, e.type])).toEqual([
          [0n, 'E0'],
          [1n, 'E1'],
          [2n, 'Next'],
        ]);
      });

      it('given a stream at revision 2, when appending with the stale expectedRevision 1n, then it rejects with WrongExpectedRevisionError carrying actual 2n and writes nothing', async () => {
        await store.appendToStream('user-a', 'no_stream', events(3));
        const headBefore = await store.headPosition();

        await expectConflict(store.appendToStream('user-a', 1n, [event('Late')]), 'user-a', 1n, 2n);

        expect((await store.readStream('user-a')).map((e) => e.type)).toEqual(['E0', 'E1', 'E2']);
        expect(await store.headPosition()).toBe(headBefore);
      });

      it("given a stream that exists, when appending with 'no_stream', then it rejects with WrongExpectedRevisionError carrying the stream's last revision and writes nothing", async () => {
        await store.appendToStream('user-a', 'no_stream', events(1));

        await expectConflict(store.appendToStream('user-a', 'no_stream', [event('Dup')]), 'user-a', 'no_stream', 0n);

        expect((await store.readStream('user-a')).map((e) => e.type)).toEqual(['E0']);
        expect(await store.headPosition()).toBe(1n);
      });

      it("given a stream that does not exist, when appending with a numeric expectedRevision, then it rejects with actual 'no_stream' and the stream stays missing", async () => {
        await expectConflict(store.appendToStream('user-a', 0n, [event('Orphan')]), 'user-a', 0n, 'no_stream');

        expect(await store.readStream('user-a')).toEqual([]);
        expect(await store.headPosition()).toBe(0n);
      });

      it("given a stream ahead of the expected revision, when appending with an expectedRevision greater than the actual one, then it rejects too (the check is equality, not 'at least')", async () => {
        await store.appendToStream('user-a', 'no_stream', events(1));

        await expectConflict(store.appendToStream('user-a', 5n, [event('Future')]), 'user-a', 5n, 0n);
      });

      it("given expectedRevision 'any', when appending to a missing and then to an existing stream, then both succeed without a check", async () => {
        const first = await store.appendToStream('user-a', 'any', [event('A')]);
        const second = await store.appendToStream('user-a', 'any', [event('B'), event('C')]);

        expect(first.nextExpectedRevision).toBe(0n);
        expect(second.nextExpectedRevision).toBe(2n);
        expect((await store.readStream('user-a')).map((e) => e.type)).toEqual(['A', 'B', 'C']);
      });

      it('given a multi-event append that conflicts, when it is rejected, then none of its events are written, in the stream or in the global log', async () => {
        await store.appendToStream('user-a', 'no_stream', events(2));
        await store.appendToStream('user-b', 'no_stream', events(1));

        await expectConflict(store.appendToStream('user-a', 0n, events(5, 'X')), 'user-a', 0n, 1n);

        expect((await store.readStream('user-a')).map((e) => e.type)).toEqual(['E0', 'E1']);
        const all = await readEverything(store);
        expect(all.map((e) => e.type)).toEqual(['E0', 'E1', 'E0']);
        expect(await store.headPosition()).toBe(3n);
      });

      it('given an empty list of events, when appending, then it rejects and writes nothing (an empty append has no last event to report)', async () => {
        await expect(store.appendToStream('user-a', 'no_stream', [])).rejects.toThrow();

        expect(await store.readStream('user-a')).toEqual([]);
        expect(await store.headPosition()).toBe(0n);
      });

      it('given an event whose data is not a JSON value, when appending it with valid events, then the whole append rejects and writes nothing', async () => {
        await expect(
          store.appendToStream('user-a', 'no_stream', [
            event('Ok'),
            { type: 'Bad', schemaVersion: 1, data: undefined, metadata: {} },
          ]),
        ).rejects.toThrow(TypeError);

        expect(await store.readStream('user-a')).toEqual([]);
        expect(await store.headPosition()).toBe(0n);
      });

      it('given several appends over time, when reading the stream, then its revisions are 0..n-1 with no gap or repeat', async () => {
        let expected: ExpectedRevision = 'no_stream';
        for (const size of [1, 3, 2, 4]) {
          const result = await store.appendToStream('user-a', expected, events(size));
          expected = result.nextExpectedRevision;
        }

        const stream = await store.readStream('user-a');
        expect(stream.map((e) => e.revision)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i)));
        expect(expected).toBe(9n);
      });

      it('given two streams, when appending to one, then the other keeps its own revisions (revisions are per stream, positions are global)', async () => {
        await store.appendToStream('user-a', 'no_stream', events(2));
        const b = await store.appendToStream('user-b', 'no_stream', events(1));
        const a = await store.appendToStream('user-a', 1n, events(1));

        expect(b).toEqual({ nextExpectedRevision: 0n, position: 3n });
        expect(a).toEqual({ nextExpectedRevision: 2n, position: 4n });
      });

      it('given stream ids that differ only in letter case, when appending to both, then they are two different streams', async () => {
        await store.appendToStream('user-Alice', 'no_stream', [event('Upper')]);
        await store.appendToStream('user-alice', 'no_stream', [event('Lower')]);

        expect((await store.readStream('user-Alice')).map((e) => e.type)).toEqual(['Upper']);
        expect((await store.readStream('user-alice')).map((e) => e.type)).toEqual(['Lower']);
      });
    });

    describe('concurrency', () => {
      it("given ten appends racing with 'no_stream' on the same new stream (Promise.all), when they settle, then exactly one wins and the others reject with WrongExpectedRevisionError", async () => {
        const attempts = Array.from({ length: 10 }, (_, i) =>
          store.appendToStream('user-a', 'no_stream', [event(`Attempt${i}`), event(`Attempt${i}b`)]),
        );

        const results = await Promise.allSettled(attempts);

        const winners = results.filter((r) => r.status === 'fulfilled');
        const losers = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(winners).toHaveLength(1);
        expect(losers).toHaveLength(9);
        for (const loser of losers) {
          expect(loser.reason).toBeInstanceOf(WrongExpectedRevisionError);
          expect((loser.reason as WrongExpectedRevisionError).actual).toBe(1n);
        }
        const stream = await store.readStream('user-a');
        expect(stream).toHaveLength(2);
        expect(stream[0]!.type).toMatch(/^Attempt\d$/);
        expect(stream[1]!.type).toBe(`${stream[0]!.type}b`);
      });

      it('given ten appends racing with the same numeric expectedRevision, when they settle, then exactly one wins and the stream grows by one append', async () => {
        await store.appendToStream('user-a', 'no_stream', events(1));

        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) => store.appendToStream('user-a', 0n, [event(`Attempt${i}`)])),
        );

        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(WrongExpectedRevisionError);
        }
        expect(await store.readStream('user-a')).toHaveLength(2);
      });
    });

    describe('readStream', () => {
      it('given a stream that does not exist, when reading it, then the result is an empty array', async () => {
        await store.appendToStream('user-b', 'no_stream', events(1));

        expect(await store.readStream('user-a')).toEqual([]);
      });

      it('given interleaved appends to two streams, when reading one stream, then only its events come back, in revision order', async () => {
        await store.appendToStream('user-a', 'no_stream', [event('A0')]);
        await store.appendToStream('user-b', 'no_stream', [event('B0')]);
        await store.appendToStream('user-a', 0n, [event('A1'), event('A2')]);
        await store.appendToStream('user-b', 0n, [event('B1')]);

        const a = await store.readStream('user-a');
        expect(a.map((e) => e.type)).toEqual(['A0', 'A1', 'A2']);
        expect(a.map((e) => e.position)).toEqual([1n, 3n, 4n]);
      });
    });

    describe('readAll and headPosition', () => {
      it('given an empty store, when asking for the head position and reading from 0, then the head is 0n and there are no events', async () => {
        expect(await store.headPosition()).toBe(0n);
        expect(await store.readAll({ after: 0n, limit: 100 })).toEqual([]);
      });

      it('given appends to several streams, when reading all from 0n, then events come in append order with positions 1, 2, 3… strictly increasing across streams', async () => {
        await store.appendToStream('user-a', 'no_stream', [event('A0'), event('A1')]);
        await store.appendToStream('cert-1', 'no_stream', [event('C0')]);
        await store.appendToStream('user-a', 1n, [event('A2')]);
        await store.appendToStream('user-b', 'no_stream', [event('B0')]);

        const all = await store.readAll({ after: 0n, limit: 100 });

        expect(all.map((e) => [e.streamId, e.type])).toEqual([
          ['user-a', 'A0'],
          ['user-a', 'A1'],
          ['cert-1', 'C0'],
          ['user-a', 'A2'],
          ['user-b', 'B0'],
        ]);
        expect(all.map((e) => e.position)).toEqual([1n, 2n, 3n, 4n, 5n]);
        expect(await store.headPosition()).toBe(5n);
      });

      it('given positions 1..5, when reading after position 2, then the result starts strictly after it, at position 3', async () => {
        await store.appendToStream('user-a', 'no_stream', events(5));

        const page = await store.readAll({ after: 2n, limit: 100 });

        expect(page.map((e) => e.position)).toEqual([3n, 4n, 5n]);
      });

      it('given 5 events, when reading with limit 2, then at most 2 come back and paging with after = last position visits every event exactly once', async () => {
        await store.appendToStream('user-a', 'no_stream', events(3));
        await store.appendToStream('user-b', 'no_stream', events(2));

        expect(await store.readAll({ after: 0n, limit: 2 })).toHaveLength(2);
        const pages: bigint[][] = [];
        let after = 0n;
        for (;;) {
          const page = await store.readAll({ after, limit: 2 });
          if (page.length === 0) break;
          pages.push(page.map((e) => e.position));
          after = page.at(-1)!.position;
        }
        expect(pages).toEqual([[1n, 2n], [3n, 4n], [5n]]);
      });

      it('given a store whose head is 5, when reading after 5 or beyond, then the result is empty', async () => {
        await store.appendToStream('user-a', 'no_stream', events(5));

        expect(await store.readAll({ after: 5n, limit: 10 })).toEqual([]);
        expect(await store.readAll({ after: 500n, limit: 10 })).toEqual([]);
      });

      it('given an append, when it resolves, then headPosition equals the position it reported', async () => {
        await store.appendToStream('user-a', 'no_stream', events(2));
        const result = await store.appendToStream('user-b', 'no_stream', events(3));

        expect(await store.headPosition()).toBe(result.position);
        expect(result.position).toBe(5n);
      });

      it('given a limit that is not a positive integer or a negative after, when reading all, then it rejects instead of returning an unbounded page', async () => {
        await store.appendToStream('user-a', 'no_stream', events(3));

        await expect(store.readAll({ after: 0n, limit: 0 })).rejects.toThrow(RangeError);
        await expect(store.readAll({ after: 0n, limit: -1 })).rejects.toThrow(RangeError);
        await expect(store.readAll({ after: 0n, limit: 1.5 })).rejects.toThrow(RangeError);
        await expect(store.readAll({ after: -1n, limit: 10 })).rejects.toThrow(RangeError);
      });
    });

    describe('what is stored', () => {
      const data = {
        email: 'zoë.ñandú@example.org',
        displayName: 'Łukasz 王小明 🚀 "quoted" \\ back\\slash',
        nested: { level: { deeper: [1, 2.5, -3, { x: null }], flag: true, off: false } },
        emptyString: '',
        emptyArray: [],
        emptyObject: {},
        bigButSafe: Number.MAX_SAFE_INTEGER,
        lineBreaks: 'a\nb\r\nc\t\u0000d',
        // JSON.stringify escapes a lone surrogate, so it survives even a UTF-8 column.
        loneSurrogate: '\uD800x',
      };
      const metadata = { correlationId: 'c0ffee', causationId: null, actor: 'ops@example.org', at: '2025-01-01T00:00:00.000Z' };

      it('given an event with unicode text, nested objects, arrays and null, when read back by stream and from the log, then type, schemaVersion, data and metadata are exactly equal', async () => {
        await store.appendToStream('user-a', 'no_stream', [event('UserAdded', data, metadata, 3)]);

        for (const e of [...(await store.readStream('user-a')), ...(await store.readAll({ after: 0n, limit: 10 }))]) {
          expect(e.type).toBe('UserAdded');
          expect(e.schemaVersion).toBe(3);
          expect(e.data).toStrictEqual(data);
          expect(e.metadata).toStrictEqual(metadata);
        }
      });

      it('given data that is a top-level array, string, number or null, when read back, then it is the same JSON value', async () => {
        const values: unknown[] = [[1, 'two'], 'plain string', 42, null, true];
        await store.appendToStream(
          'user-a',
          'no_stream',
          values.map((v) => event('Value', v, v)),
        );

        const stream = await store.readStream('user-a');
        expect(stream.map((e) => e.data)).toStrictEqual(values);
        expect(stream.map((e) => e.metadata)).toStrictEqual(values);
      });

      it('given data holding a Date and an undefined property, when read back, then it is the JSON form (ISO string, property absent), as with any JSON-backed store', async () => {
        const at = new Date('2025-03-04T05:06:07.089Z');
        await store.appendToStream('user-a', 'no_stream', [event('Dated', { at, gone: undefined, kept: 1 })]);

        const [stored] = await store.readStream('user-a');
        expect(stored!.data).toStrictEqual({ at: '2025-03-04T05:06:07.089Z', kept: 1 });
      });

      it('given a stored event, when the caller mutates the object it appended or one it read, then the stored event does not change', async () => {
        const appended = { roles: ['user'], profile: { name: 'Ann' } };
        await store.appendToStream('user-a', 'no_stream', [event('UserAdded', appended)]);
        appended.roles.push('admin');
        appended.profile.name = 'Mallory';

        const [firstRead] = await store.readStream('user-a');
        (firstRead!.data as { roles: string[] }).roles.push('root');

        const [secondRead] = await store.readStream('user-a');
        expect(secondRead!.data).toStrictEqual({ roles: ['user'], profile: { name: 'Ann' } });
        const [fromLog] = await store.readAll({ after: 0n, limit: 1 });
        expect(fromLog!.data).toStrictEqual({ roles: ['user'], profile: { name: 'Ann' } });
      });

      it('given any append or read, then revisions, positions and results are bigint and schemaVersion is a number', async () => {
        const result = await store.appendToStream('user-a', 'no_stream', events(2));

        expect(typeof result.nextExpectedRevision).toBe('bigint');
        expect(typeof result.position).toBe('bigint');
        expect(typeof (await store.headPosition())).toBe('bigint');
        for (const e of [...(await store.readStream('user-a')), ...(await store.readAll({ after: 0n, limit: 10 }))]) {
          expect(typeof e.revision).toBe('bigint');
          expect(typeof e.position).toBe('bigint');
          expect(typeof e.schemaVersion).toBe('number');
        }
      });
    });
  });
}
