// The behaviour every EventStore adapter must have, written once and run against each adapter
// (in-memory, SQLite, EventStoreDB through its test double or a real server). Each `it`
// sentence is the specification.
//
// Two optional settings (additive: without them every original assertion holds as before):
// - `densePositions: false` for stores whose global positions grow but are not 1, 2, 3…
//   (EventStoreDB: byte offsets in its log). Position checks then compare with the positions the
//   store itself reported, in order, instead of literals.
// - `sharedStore: true` for a store that is not empty and not ours alone (a real EventStoreDB
//   server): every test writes to streams of its own (a fresh prefix per test), and checks about
//   the whole log look only at what comes after the head position read before the test. Nobody
//   else should append to that server while the suite runs.

import { randomUUID } from 'node:crypto';
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

export interface EventStoreContractOptions {
  /** Positions are 1, 2, 3… from an empty store (default true). */
  readonly densePositions?: boolean;
  /** The store is shared and may hold other events (default false). */
  readonly sharedStore?: boolean;
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

async function readEverything(store: EventStore, pageSize = 1000, from = 0n, prefix = ''): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  let after = from;
  for (;;) {
    const page = await store.readAll({ after, limit: pageSize });
    if (page.length === 0) return all;
    all.push(...page.filter((e) => e.streamId.startsWith(prefix)));
    after = page.at(-1)!.position;
  }
}

export function describeEventStoreContract(
  name: string,
  create: () => Promise<EventStoreUnderTest>,
  options: EventStoreContractOptions = {},
): void {
  const dense = options.densePositions ?? true;
  const shared = options.sharedStore ?? false;
  describe(`EventStore contract: ${name}`, () => {
    let store: EventStore;
    let cleanup: () => Promise<void>;
    /** Head position before the test: 0n for a fresh store. */
    let baseline: bigint;
    /** Prefix of this test's stream ids: '' unless the store is shared. */
    let prefix: string;
    /** This test's name for a stream. */
    const s = (streamId: string): string => `${prefix}${streamId}`;
    /** Everything this test appended, in global order. */
    const testLog = (pageSize = 1000): Promise<RecordedEvent[]> => readEverything(store, pageSize, baseline, prefix);
    /**
     * The global position of the n-th event (1-based) this test appended: n on a dense store,
     * else what the store reports, which the tests below check is increasing and consistent.
     */
    const P = async (n: number): Promise<bigint> => {
      if (dense) return baseline + BigInt(n);
      const e = (await testLog())[n - 1];
      if (!e) throw new Error(`the log holds fewer than ${n} events of this test`);
      return e.position;
    };

    beforeEach(async () => {
      ({ store, cleanup } = await create());
      prefix = shared ? `t${randomUUID().replace(/-/g, '').slice(0, 12)}-` : '';
      baseline = shared ? await store.headPosition() : 0n;
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('appendToStream', () => {
      it("given a stream that does not exist, when events are appended with 'no_stream', then they get revisions 0..n-1 and the result names the last revision and position", async () => {
        const result = await store.appendToStream(s('user-a'), 'no_stream', events(3));

        expect(result).toEqual({ nextExpectedRevision: 2n, position: await P(3) });
        const stream = await store.readStream(s('user-a'));
        expect(stream.map((e) => e.revision)).toEqual([0n, 1n, 2n]);
        expect(stream.map((e) => e.type)).toEqual(['E0', 'E1', 'E2']);
        expect(stream.map((e) => e.streamId)).toEqual([s('user-a'), s('user-a'), s('user-a')]);
      });

      it("given a stream whose last revision is 1, when appending with expectedRevision 1n, then the new events continue at revision 2", async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(2));

        const result = await store.appendToStream(s('user-a'), 1n, [event('Next')]);

        expect(result.nextExpectedRevision).toBe(2n);
        const stream = await store.readStream(s('user-a'));
        expect(stream.map((e) => [e.revision, e.type])).toEqual([
          [0n, 'E0'],
          [1n, 'E1'],
          [2n, 'Next'],
        ]);
      });

      it('given a stream at revision 2, when appending with the stale expectedRevision 1n, then it rejects with WrongExpectedRevisionError carrying actual 2n and writes nothing', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(3));
        const headBefore = await store.headPosition();

        await expectConflict(store.appendToStream(s('user-a'), 1n, [event('Late')]), s('user-a'), 1n, 2n);

        expect((await store.readStream(s('user-a'))).map((e) => e.type)).toEqual(['E0', 'E1', 'E2']);
        expect(await store.headPosition()).toBe(headBefore);
      });

      it("given a stream that exists, when appending with 'no_stream', then it rejects with WrongExpectedRevisionError carrying the stream's last revision and writes nothing", async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(1));

        await expectConflict(store.appendToStream(s('user-a'), 'no_stream', [event('Dup')]), s('user-a'), 'no_stream', 0n);

        expect((await store.readStream(s('user-a'))).map((e) => e.type)).toEqual(['E0']);
        expect(await store.headPosition()).toBe(await P(1));
      });

      it("given a stream that does not exist, when appending with a numeric expectedRevision, then it rejects with actual 'no_stream' and the stream stays missing", async () => {
        await expectConflict(store.appendToStream(s('user-a'), 0n, [event('Orphan')]), s('user-a'), 0n, 'no_stream');

        expect(await store.readStream(s('user-a'))).toEqual([]);
        expect(await store.headPosition()).toBe(baseline);
      });

      it("given a stream ahead of the expected revision, when appending with an expectedRevision greater than the actual one, then it rejects too (the check is equality, not 'at least')", async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(1));

        await expectConflict(store.appendToStream(s('user-a'), 5n, [event('Future')]), s('user-a'), 5n, 0n);
      });

      it("given expectedRevision 'any', when appending to a missing and then to an existing stream, then both succeed without a check", async () => {
        const first = await store.appendToStream(s('user-a'), 'any', [event('A')]);
        const second = await store.appendToStream(s('user-a'), 'any', [event('B'), event('C')]);

        expect(first.nextExpectedRevision).toBe(0n);
        expect(second.nextExpectedRevision).toBe(2n);
        expect((await store.readStream(s('user-a'))).map((e) => e.type)).toEqual(['A', 'B', 'C']);
      });

      it('given a multi-event append that conflicts, when it is rejected, then none of its events are written, in the stream or in the global log', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(2));
        await store.appendToStream(s('user-b'), 'no_stream', events(1));

        await expectConflict(store.appendToStream(s('user-a'), 0n, events(5, 'X')), s('user-a'), 0n, 1n);

        expect((await store.readStream(s('user-a'))).map((e) => e.type)).toEqual(['E0', 'E1']);
        const all = await testLog();
        expect(all.map((e) => e.type)).toEqual(['E0', 'E1', 'E0']);
        expect(await store.headPosition()).toBe(await P(3));
      });

      it('given an empty list of events, when appending, then it rejects and writes nothing (an empty append has no last event to report)', async () => {
        await expect(store.appendToStream(s('user-a'), 'no_stream', [])).rejects.toThrow();

        expect(await store.readStream(s('user-a'))).toEqual([]);
        expect(await store.headPosition()).toBe(baseline);
      });

      it('given an event whose data is not a JSON value, when appending it with valid events, then the whole append rejects and writes nothing', async () => {
        await expect(
          store.appendToStream(s('user-a'), 'no_stream', [
            event('Ok'),
            { type: 'Bad', schemaVersion: 1, data: undefined, metadata: {} },
          ]),
        ).rejects.toThrow(TypeError);

        expect(await store.readStream(s('user-a'))).toEqual([]);
        expect(await store.headPosition()).toBe(baseline);
      });

      it('given several appends over time, when reading the stream, then its revisions are 0..n-1 with no gap or repeat', async () => {
        let expected: ExpectedRevision = 'no_stream';
        for (const size of [1, 3, 2, 4]) {
          const result = await store.appendToStream(s('user-a'), expected, events(size));
          expected = result.nextExpectedRevision;
        }

        const stream = await store.readStream(s('user-a'));
        expect(stream.map((e) => e.revision)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i)));
        expect(expected).toBe(9n);
      });

      it('given two streams, when appending to one, then the other keeps its own revisions (revisions are per stream, positions are global)', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(2));
        const b = await store.appendToStream(s('user-b'), 'no_stream', events(1));
        const a = await store.appendToStream(s('user-a'), 1n, events(1));

        expect(b).toEqual({ nextExpectedRevision: 0n, position: await P(3) });
        expect(a).toEqual({ nextExpectedRevision: 2n, position: await P(4) });
      });

      it('given stream ids that differ only in letter case, when appending to both, then they are two different streams', async () => {
        await store.appendToStream(s('user-Alice'), 'no_stream', [event('Upper')]);
        await store.appendToStream(s('user-alice'), 'no_stream', [event('Lower')]);

        expect((await store.readStream(s('user-Alice'))).map((e) => e.type)).toEqual(['Upper']);
        expect((await store.readStream(s('user-alice'))).map((e) => e.type)).toEqual(['Lower']);
      });
    });

    describe('concurrency', () => {
      it("given ten appends racing with 'no_stream' on the same new stream (Promise.all), when they settle, then exactly one wins and the others reject with WrongExpectedRevisionError", async () => {
        const attempts = Array.from({ length: 10 }, (_, i) =>
          store.appendToStream(s('user-a'), 'no_stream', [event(`Attempt${i}`), event(`Attempt${i}b`)]),
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
        const stream = await store.readStream(s('user-a'));
        expect(stream).toHaveLength(2);
        expect(stream[0]!.type).toMatch(/^Attempt\d$/);
        expect(stream[1]!.type).toBe(`${stream[0]!.type}b`);
      });

      it('given ten appends racing with the same numeric expectedRevision, when they settle, then exactly one wins and the stream grows by one append', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(1));

        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) => store.appendToStream(s('user-a'), 0n, [event(`Attempt${i}`)])),
        );

        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(WrongExpectedRevisionError);
        }
        expect(await store.readStream(s('user-a'))).toHaveLength(2);
      });
    });

    describe('readStream', () => {
      it('given a stream that does not exist, when reading it, then the result is an empty array', async () => {
        await store.appendToStream(s('user-b'), 'no_stream', events(1));

        expect(await store.readStream(s('user-a'))).toEqual([]);
      });

      it('given interleaved appends to two streams, when reading one stream, then only its events come back, in revision order', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', [event('A0')]);
        await store.appendToStream(s('user-b'), 'no_stream', [event('B0')]);
        await store.appendToStream(s('user-a'), 0n, [event('A1'), event('A2')]);
        await store.appendToStream(s('user-b'), 0n, [event('B1')]);

        const a = await store.readStream(s('user-a'));
        expect(a.map((e) => e.type)).toEqual(['A0', 'A1', 'A2']);
        expect(a.map((e) => e.position)).toEqual([await P(1), await P(3), await P(4)]);
      });
    });

    describe('readAll and headPosition', () => {
      it(
        shared
          ? 'given a shared store, when asking for the head position and reading after it, then there are no events after the head'
          : 'given an empty store, when asking for the head position and reading from 0, then the head is 0n and there are no events',
        async () => {
          expect(await store.headPosition()).toBe(baseline);
          expect(await store.readAll({ after: baseline, limit: 100 })).toEqual([]);
        },
      );

      it(
        dense
          ? 'given appends to several streams, when reading all from 0n, then events come in append order with positions 1, 2, 3… strictly increasing across streams'
          : 'given appends to several streams, when reading all from the head before them, then events come in append order with positions strictly increasing across streams, the ones the appends reported',
        async () => {
          await store.appendToStream(s('user-a'), 'no_stream', [event('A0'), event('A1')]);
          await store.appendToStream(s('cert-1'), 'no_stream', [event('C0')]);
          await store.appendToStream(s('user-a'), 1n, [event('A2')]);
          await store.appendToStream(s('user-b'), 'no_stream', [event('B0')]);

          const all = (await store.readAll({ after: baseline, limit: 100 })).filter((e) => e.streamId.startsWith(prefix));

          expect(all.map((e) => [e.streamId, e.type])).toEqual([
            [s('user-a'), 'A0'],
            [s('user-a'), 'A1'],
            [s('cert-1'), 'C0'],
            [s('user-a'), 'A2'],
            [s('user-b'), 'B0'],
          ]);
          const positions = all.map((e) => e.position);
          if (dense) expect(positions).toEqual([1n, 2n, 3n, 4n, 5n]);
          for (let i = 1; i < positions.length; i++) expect(positions[i]! > positions[i - 1]!).toBe(true);
          expect(positions[0]! > baseline).toBe(true);
          expect(await store.headPosition()).toBe(positions[4]);
          const aRead = await store.readStream(s('user-a'));
          expect(aRead.map((e) => e.position)).toEqual([positions[0], positions[1], positions[3]]);
        },
      );

      it('given positions 1..5, when reading after position 2, then the result starts strictly after it, at position 3', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(5));

        const page = await store.readAll({ after: await P(2), limit: 100 });

        expect(page.map((e) => e.position)).toEqual([await P(3), await P(4), await P(5)]);
      });

      it('given 5 events, when reading with limit 2, then at most 2 come back and paging with after = last position visits every event exactly once', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(3));
        await store.appendToStream(s('user-b'), 'no_stream', events(2));

        expect(await store.readAll({ after: baseline, limit: 2 })).toHaveLength(2);
        const pages: bigint[][] = [];
        let after = baseline;
        for (;;) {
          const page = await store.readAll({ after, limit: 2 });
          if (page.length === 0) break;
          pages.push(page.map((e) => e.position));
          after = page.at(-1)!.position;
        }
        expect(pages).toEqual([[await P(1), await P(2)], [await P(3), await P(4)], [await P(5)]]);
      });

      it('given a store whose head is 5, when reading after 5 or beyond, then the result is empty', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(5));

        expect(await store.readAll({ after: await P(5), limit: 10 })).toEqual([]);
        expect(await store.readAll({ after: (await P(5)) * 100n, limit: 10 })).toEqual([]);
      });

      it('given an append, when it resolves, then headPosition equals the position it reported', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(2));
        const result = await store.appendToStream(s('user-b'), 'no_stream', events(3));

        expect(await store.headPosition()).toBe(result.position);
        expect(result.position).toBe(await P(5));
      });

      it('given a limit that is not a positive integer or a negative after, when reading all, then it rejects instead of returning an unbounded page', async () => {
        await store.appendToStream(s('user-a'), 'no_stream', events(3));

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
        await store.appendToStream(s('user-a'), 'no_stream', [event('UserAdded', data, metadata, 3)]);

        for (const e of [...(await store.readStream(s('user-a'))), ...(await store.readAll({ after: baseline, limit: 10 }))]) {
          expect(e.type).toBe('UserAdded');
          expect(e.schemaVersion).toBe(3);
          expect(e.data).toStrictEqual(data);
          expect(e.metadata).toStrictEqual(metadata);
        }
      });

      it('given data that is a top-level array, string, number or null, when read back, then it is the same JSON value', async () => {
        const values: unknown[] = [[1, 'two'], 'plain string', 42, null, true];
        await store.appendToStream(
          s('user-a'),
          'no_stream',
          values.map((v) => event('Value', v, v)),
        );

        const stream = await store.readStream(s('user-a'));
        expect(stream.map((e) => e.data)).toStrictEqual(values);
        expect(stream.map((e) => e.metadata)).toStrictEqual(values);
      });

      it('given data holding a Date and an undefined property, when read back, then it is the JSON form (ISO string, property absent), as with any JSON-backed store', async () => {
        const at = new Date('2025-03-04T05:06:07.089Z');
        await store.appendToStream(s('user-a'), 'no_stream', [event('Dated', { at, gone: undefined, kept: 1 })]);

        const [stored] = await store.readStream(s('user-a'));
        expect(stored!.data).toStrictEqual({ at: '2025-03-04T05:06:07.089Z', kept: 1 });
      });

      it('given a stored event, when the caller mutates the object it appended or one it read, then the stored event does not change', async () => {
        const appended = { roles: ['user'], profile: { name: 'Ann' } };
        await store.appendToStream(s('user-a'), 'no_stream', [event('UserAdded', appended)]);
        appended.roles.push('admin');
        appended.profile.name = 'Mallory';

        const [firstRead] = await store.readStream(s('user-a'));
        (firstRead!.data as { roles: string[] }).roles.push('root');

        const [secondRead] = await store.readStream(s('user-a'));
        expect(secondRead!.data).toStrictEqual({ roles: ['user'], profile: { name: 'Ann' } });
        const [fromLog] = await store.readAll({ after: baseline, limit: 1 });
        expect(fromLog!.data).toStrictEqual({ roles: ['user'], profile: { name: 'Ann' } });
      });

      it('given any append or read, then revisions, positions and results are bigint and schemaVersion is a number', async () => {
        const result = await store.appendToStream(s('user-a'), 'no_stream', events(2));

        expect(typeof result.nextExpectedRevision).toBe('bigint');
        expect(typeof result.position).toBe('bigint');
        expect(typeof (await store.headPosition())).toBe('bigint');
        for (const e of [...(await store.readStream(s('user-a'))), ...(await store.readAll({ after: baseline, limit: 10 }))]) {
          expect(typeof e.revision).toBe('bigint');
          expect(typeof e.position).toBe('bigint');
          expect(typeof e.schemaVersion).toBe('number');
        }
      });
    });
  });
}
