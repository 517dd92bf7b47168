// EsdbEventStore's fast reads of $all (its own decoding of the server's answers over the client's
// channel, esdb-read-decoder.ts) against the client's public readAll, on the EventStoreDB TEST
// DOUBLE (see test/support/esdb-test-double.ts): the same events, the same errors, the same retries.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventStoreUnavailableError, type NewEvent, type RecordedEvent } from '../../adapters/eventstore/event-store.js';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
import { EsdbTestDouble } from '../support/esdb-test-double.js';

function ev(type: string, data: unknown = {}, schemaVersion = 1, metadata: unknown = { actor: 'test', at: '2026-01-01T00:00:00.000Z' }): NewEvent {
  return { type, schemaVersion, data, metadata };
}

async function readAllOf(store: EsdbEventStore, limit: number): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let after = 0n;
  for (;;) {
    const page = await store.readAll({ after, limit });
    if (page.length === 0) return out;
    expect(page.length).toBeLessThanOrEqual(limit);
    out.push(...page);
    after = page.at(-1)!.position;
  }
}

describe('EsdbEventStore fast reads of $all (test double)', () => {
  let double: EsdbTestDouble;
  const opened: EsdbEventStore[] = [];
  const open = (options: Parameters<typeof EsdbEventStore.connect>[1] = {}): EsdbEventStore => {
    const s = EsdbEventStore.connect(double.connectionString, { retryDelayMs: 10, ...options });
    opened.push(s);
    return s;
  };

  beforeEach(async () => {
    double = await EsdbTestDouble.start({ systemEventsPerAppend: 2 });
  });

  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await double.stop();
  });

  it('given the client package this project ships, then readAll decodes the answers itself (the fast path is not silently lost)', () => {
    expect(open().decodesReads).toBe(true);
    expect(open({ fastReads: false }).decodesReads).toBe(false);
  });

  it('given varied events among system events, then every page is the one the client\'s readAll gives, for small and large limits', async () => {
    const writer = open();
    const big = 'Z'.repeat(30_000);
    for (let i = 0; i < 60; i++) {
      await writer.appendToStream(`profile-é-${i}`, 'no_stream', [
        ev('ProfileIssued', { i, pem: i % 7 === 0 ? big : 'short', note: 'ünïcødé 😀' }, 2),
        ev('Révoqué', null, 1, i % 2 === 0 ? null : ['a', 1]),
        ev('Plain', i % 3 === 0 ? 'a string' : [i, { deep: { x: i } }], 3, 'text metadata'),
      ]);
    }
    const fast = open();
    const slow = open({ fastReads: false, readAhead: false });
    for (const limit of [1, 7, 64, 1000, 5000]) {
      const expected = await readAllOf(slow, limit);
      expect(expected).toHaveLength(180);
      expect(await readAllOf(fast, limit)).toEqual(expected);
    }
    // From a position in the middle, as a checkpointed catch-up starts.
    const all = await readAllOf(slow, 1000);
    for (const at of [0, 1, 89, 178, 179]) {
      const after = all[at]!.position;
      expect(await fast.readAll({ after, limit: 50 })).toEqual(await slow.readAll({ after, limit: 50 }));
    }
  });

  it('given more events than one batch of the double\'s writes, then a read stops exactly at its count and the next page goes on from there', async () => {
    const writer = open();
    const events = Array.from({ length: 400 }, (_, i) => ev('Bulk', { i, pad: 'p'.repeat(900) }));
    for (let i = 0; i < events.length; i += 100) await writer.appendToStream(`bulk-${i}`, 'no_stream', events.slice(i, i + 100));
    const got = await readAllOf(open(), 1_000);
    expect(got.map((e) => (e.data as { i: number }).i)).toEqual(events.map((_, i) => i));
    const paged = await readAllOf(open(), 33);
    expect(paged).toEqual(got);
  });

  it('given a read that fails with unavailable, not-leader or a deadline, then it is retried (on a fresh connection) and the page comes back whole', async () => {
    const writer = open();
    await writer.appendToStream('s-1', 'no_stream', [ev('A'), ev('B')]);
    const store = open();
    for (const kind of ['unavailable', 'not-leader', 'deadline-exceeded'] as const) {
      double.failNext('read', kind);
      const page = await store.readAll({ after: 0n, limit: 10 });
      expect(page.map((e) => e.type), kind).toEqual(['A', 'B']);
    }
  });

  it('given a server that keeps failing reads, then readAll gives up with EventStoreUnavailableError saying what to check', async () => {
    const store = open({ attempts: 2 });
    await open().appendToStream('s-1', 'no_stream', [ev('A')]);
    double.failNext('read', 'unavailable');
    double.failNext('read', 'unavailable');
    await expect(store.readAll({ after: 0n, limit: 10 })).rejects.toThrow(EventStoreUnavailableError);
    await expect(store.readAll({ after: 0n, limit: 10 })).resolves.toHaveLength(1);
  });

  it('given a stopped server, then readAll fails as unavailable; once it is back, reads work again', async () => {
    const store = open({ attempts: 1 });
    await open().appendToStream('s-1', 'no_stream', [ev('A')]);
    await double.stop();
    await expect(store.readAll({ after: 0n, limit: 10 })).rejects.toThrow(EventStoreUnavailableError);
    await double.start();
    const again = open({ attempts: 3 });
    await expect(again.readAll({ after: 0n, limit: 10 })).resolves.toHaveLength(1);
  });
});
