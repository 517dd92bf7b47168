// The EventStoreDB adapter, with the real `@eventstore/db-client` speaking the real gRPC protocol
// to an in-process TEST DOUBLE of the server (test/support/esdb-test-double.ts). The double is
// not an EventStoreDB: the authority is the same contract run against a real server
// (esdb-real-server.int.spec.ts, with OVL_TEST_ESDB set).

import { EventStoreDBClient, jsonEvent } from '@eventstore/db-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EventStoreUnavailableError, WrongExpectedRevisionError, type NewEvent, type RecordedEvent } from '../../adapters/eventstore/event-store.js';
import { EsdbEventStore, InvalidConnectionStringError } from '../../adapters/eventstore/esdb-event-store.js';
import { EsdbTestDouble, type EsdbTestDoubleOptions } from '../support/esdb-test-double.js';
import { describeEventStoreContract } from './event-store-contract.js';

function contractOn(options: EsdbTestDoubleOptions) {
  return async () => {
    const double = await EsdbTestDouble.start(options);
    const store = EsdbEventStore.connect(double.connectionString);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await double.stop();
      },
    };
  };
}

// Servers since 21.10 advertise BatchAppend, so that is the client's path in production.
describeEventStoreContract('EsdbEventStore on the EventStoreDB test double (BatchAppend)', contractOn({}), {
  densePositions: false,
});

// The older client-streaming Append, with system events written between our appends (as a
// server's $stats writes are) so that every read of $all has to skip some.
describeEventStoreContract(
  'EsdbEventStore on the EventStoreDB test double (Append, system events interleaved)',
  contractOn({ batchAppend: false, systemEventsPerAppend: 3 }),
  { densePositions: false },
);

// The mode the real-server run uses (a shared, non-empty store, a stream prefix per test),
// exercised here on one double that lives for the whole suite.
describe('shared-store mode of the contract, as run against a real server', () => {
  let double: EsdbTestDouble;
  beforeAll(async () => {
    double = await EsdbTestDouble.start({ systemEventsPerAppend: 1 });
    // Someone else's history before the suite starts.
    const other = EsdbEventStore.connect(double.connectionString);
    await other.appendToStream('profile-elsewhere', 'no_stream', [ev('Old', { n: 1 }), ev('Old', { n: 2 })]);
    await other.close();
  });
  afterAll(async () => {
    await double.stop();
  });
  describeEventStoreContract(
    'EsdbEventStore on one shared EventStoreDB test double',
    async () => {
      const store = EsdbEventStore.connect(double.connectionString);
      return { store, cleanup: () => store.close() };
    },
    { densePositions: false, sharedStore: true },
  );
});

function ev(type: string, data: unknown = {}, schemaVersion = 1): NewEvent {
  return { type, schemaVersion, data, metadata: { actor: 'test', at: '2026-01-01T00:00:00.000Z', tool: 'spec' } };
}

async function readAllOf(store: EsdbEventStore, limit = 1000): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let after = 0n;
  for (;;) {
    const page = await store.readAll({ after, limit });
    if (page.length === 0) return out;
    out.push(...page);
    after = page.at(-1)!.position;
  }
}

describe('EsdbEventStore against the test double', () => {
  let double: EsdbTestDouble;
  let store: EsdbEventStore;
  const opened: EsdbEventStore[] = [];
  const open = (connectionString = double.connectionString, attempts?: number): EsdbEventStore => {
    const s = EsdbEventStore.connect(connectionString, { attempts, retryDelayMs: 20 });
    opened.push(s);
    return s;
  };

  beforeEach(async () => {
    double = await EsdbTestDouble.start();
    store = open();
  });

  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await double.stop();
  });

  describe('what goes over the wire', () => {
    it('given an append, then the server holds a JSON event with our type, our data as is, a fresh UUID, and metadata {schemaVersion, metadata}', async () => {
      await store.appendToStream('profile-p1', 'no_stream', [ev('ProfileIssued', { email: 'a@example.org' }, 2)]);

      const [record] = double.records().filter((r) => r.streamName === 'profile-p1');
      expect(record!.type).toBe('ProfileIssued');
      expect(record!.contentType).toBe('application/json');
      expect(record!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(JSON.parse(Buffer.from(record!.data).toString('utf8'))).toEqual({ email: 'a@example.org' });
      expect(JSON.parse(Buffer.from(record!.customMetadata).toString('utf8'))).toEqual({
        schemaVersion: 2,
        metadata: { actor: 'test', at: '2026-01-01T00:00:00.000Z', tool: 'spec' },
      });
    });

    it('given servers that advertise BatchAppend, then appends use it; without it they use Append', async () => {
      await store.appendToStream('s-1', 'no_stream', [ev('A')]);
      expect(double.calls.batchAppend).toBe(1);
      expect(double.calls.append).toBe(0);

      const old = await EsdbTestDouble.start({ batchAppend: false });
      const oldStore = open(old.connectionString);
      await oldStore.appendToStream('s-1', 'no_stream', [ev('A')]);
      expect(old.calls.append).toBe(1);
      expect(old.calls.batchAppend).toBe(0);
      await oldStore.close();
      await old.stop();
    });

    it('given positions, then they are the commit positions of the log: never 0, growing, not dense, the same from stream and $all reads', async () => {
      const a = await store.appendToStream('s-a', 'no_stream', [ev('A0'), ev('A1')]);
      await store.appendToStream('s-b', 'no_stream', [ev('B0')]);

      const log = await readAllOf(store);
      const fromDouble = double.records().filter((r) => !r.streamName.startsWith('$')).map((r) => r.position);
      expect(log.map((e) => e.position)).toEqual(fromDouble);
      expect(log[0]!.position > 1n).toBe(true);
      expect(log[1]!.position - log[0]!.position > 1n).toBe(true);
      expect(a.position).toBe(log[1]!.position);
      expect((await store.readStream('s-a')).map((e) => e.position)).toEqual([log[0]!.position, log[1]!.position]);
    });

    it('given an event type starting with $, when appending, then it is refused before anything is sent (those are the server\'s)', async () => {
      await expect(store.appendToStream('s-a', 'any', [ev('$Mine')])).rejects.toThrow(TypeError);
      expect(double.calls.batchAppend + double.calls.append).toBe(0);
    });
  });

  describe('system events', () => {
    it('given pages of $all made only of system events, when reading all with a small limit, then every one of our events comes back once, in order, and none of theirs', async () => {
      const busy = await EsdbTestDouble.start({ systemEventsPerAppend: 40 });
      const busyStore = open(busy.connectionString);
      for (let i = 0; i < 5; i++) await busyStore.appendToStream(`s-${i}`, 'no_stream', [ev(`E${i}`)]);

      const got = await readAllOf(busyStore, 1);

      expect(got.map((e) => e.type)).toEqual(['E0', 'E1', 'E2', 'E3', 'E4']);
      expect(busy.records().length).toBeGreaterThan(200);
      expect(await busyStore.headPosition()).toBe(got.at(-1)!.position);
      await busy.stop();
    });

    it('given a store with only the server\'s own events, then the head position is 0n and readAll is empty', async () => {
      double.writeSystemEvent();
      expect(double.records().length).toBeGreaterThan(0);

      expect(await store.headPosition()).toBe(0n);
      expect(await store.readAll({ after: 0n, limit: 10 })).toEqual([]);
    });

    it('given a foreign non-system event without our metadata, when reading all, then it fails naming the event and the rule, instead of guessing a schema version', async () => {
      const raw = EventStoreDBClient.connectionString(double.connectionString);
      await raw.appendToStream('orders-1', jsonEvent({ type: 'OrderPlaced', data: { id: 1 } }));
      await raw.dispose();

      await expect(store.readAll({ after: 0n, limit: 10 })).rejects.toThrow(/OrderPlaced at orders-1@0 has no ovpn-ledger metadata.*only ovpn-ledger streams/);
    });
  });

  describe('retries that cannot write twice', () => {
    for (const method of ['batchAppend', 'append'] as const) {
      it(`given an append with an expected revision whose answer is lost (${method}), when the adapter retries, then the events exist once and the result is the first write's`, async () => {
        const d = await EsdbTestDouble.start({ batchAppend: method === 'batchAppend' });
        const s = open(d.connectionString);
        d.failNext(method, 'lose-append-response');

        const result = await s.appendToStream('s-a', 'no_stream', [ev('A0'), ev('A1')]);

        const stream = await s.readStream('s-a');
        expect(stream.map((e) => e.type)).toEqual(['A0', 'A1']);
        expect(result).toEqual({ nextExpectedRevision: 1n, position: stream[1]!.position });
        await d.stop();
      });
    }

    it('given a server whose idempotency cache has forgotten the ids, when a retried append is refused, then the adapter finds its own events by id and reports success, not a conflict', async () => {
      const d = await EsdbTestDouble.start({ idempotentAppends: false });
      const s = open(d.connectionString);
      await s.appendToStream('s-a', 'no_stream', [ev('A0')]);
      d.failNext('batchAppend', 'lose-append-response');

      const result = await s.appendToStream('s-a', 0n, [ev('A1'), ev('A2')]);

      const stream = await s.readStream('s-a');
      expect(stream.map((e) => e.type)).toEqual(['A0', 'A1', 'A2']);
      expect(result).toEqual({ nextExpectedRevision: 2n, position: stream[2]!.position });
      await d.stop();
    });

    it('given a retried append refused because someone else wrote in between, then it is a WrongExpectedRevisionError (the events are not ours)', async () => {
      const d = await EsdbTestDouble.start({ idempotentAppends: false });
      const s = open(d.connectionString);
      await s.appendToStream('s-a', 'no_stream', [ev('A0')]);
      // Another writer takes revision 1; then our first attempt fails and is retried.
      const other = open(d.connectionString);
      await other.appendToStream('s-a', 0n, [ev('Theirs')]);
      d.failNext('batchAppend', 'unavailable');

      const error = await s.appendToStream('s-a', 0n, [ev('Mine')]).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(WrongExpectedRevisionError);
      expect((error as WrongExpectedRevisionError).actual).toBe(1n);
      expect((await s.readStream('s-a')).map((e) => e.type)).toEqual(['A0', 'Theirs']);
      await d.stop();
    });

    it("given an append with expectedRevision 'any' whose answer is lost, then it is NOT retried: it rejects saying it may or may not have been written, and the event exists once", async () => {
      double.failNext('batchAppend', 'lose-append-response');

      const error = await store.appendToStream('s-a', 'any', [ev('A0')]).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(EventStoreUnavailableError);
      expect((error as Error).message).toMatch(/'any'.*not retried.*may or may not have been written/);
      expect((await store.readStream('s-a')).map((e) => e.type)).toEqual(['A0']);
    });

    it('given a read that fails once with UNAVAILABLE, then it is retried on a fresh connection and succeeds', async () => {
      await store.appendToStream('s-a', 'no_stream', [ev('A0')]);
      const readsBefore = double.calls.read;
      double.failNext('read', 'unavailable');

      expect((await store.readStream('s-a')).map((e) => e.type)).toEqual(['A0']);
      expect(double.calls.read - readsBefore).toBe(2);
    });

    it('given a node that answers "not leader", then the client goes to the leader it names and the append succeeds', async () => {
      double.failNext('batchAppend', 'not-leader');

      const result = await store.appendToStream('s-a', 'no_stream', [ev('A0')]);

      expect(result.nextExpectedRevision).toBe(0n);
      expect(await store.readStream('s-a')).toHaveLength(1);
    });
  });

  describe('errors an operator can act on', () => {
    it('given a read that keeps exceeding its deadline, then after the bounded retries it is EventStoreUnavailableError saying the server did not answer in time', async () => {
      for (let i = 0; i < 3; i++) double.failNext('read', 'deadline-exceeded');

      const error = await store.readStream('s-a').catch((e: unknown) => e);

      expect(error).toBeInstanceOf(EventStoreUnavailableError);
      expect((error as Error).message).toMatch(/did not answer in time.*defaultDeadline/);
    });

    it('given a server that is down, then reads and appends reject with EventStoreUnavailableError naming the server (without credentials) and what to check', async () => {
      const s = open(`esdb://admin:changeit@127.0.0.1:${double.port}?tls=false`, 2);
      await double.stop();

      const readError = await s.readStream('s-a').catch((e: unknown) => e);
      const appendError = await s.appendToStream('s-a', 'no_stream', [ev('A0')]).catch((e: unknown) => e);

      expect(readError).toBeInstanceOf(EventStoreUnavailableError);
      expect((readError as Error).message).toMatch(/EventStoreDB at esdb:\/\/\*\*\*@127\.0\.0\.1:\d+\?tls=false is unavailable.*check that the server runs/);
      expect((readError as Error).message).not.toMatch(/changeit/);
      expect(appendError).toBeInstanceOf(EventStoreUnavailableError);
      expect((appendError as Error).message).toMatch(/not confirmed after 2 attempts.*run the command again if nothing changed/);
    });

    it('given the server goes away and comes back on the same address, then the same store object works again (the client reconnects)', async () => {
      await store.appendToStream('s-a', 'no_stream', [ev('A0')]);
      await double.stop();
      await expect(store.readStream('s-a')).rejects.toBeInstanceOf(EventStoreUnavailableError);

      await double.start();

      await store.appendToStream('s-a', 0n, [ev('A1')]);
      expect((await store.readStream('s-a')).map((e) => e.type)).toEqual(['A0', 'A1']);
    });

    it('given a connection string that does not parse, then InvalidConnectionStringError says what is expected, without the password', () => {
      expect(() => EsdbEventStore.connect('esdb://admin:s3cret@host:notaport')).toThrow(InvalidConnectionStringError);
      expect(() => EsdbEventStore.connect('esdb://admin:s3cret@host:notaport')).toThrow(/expected e\.g\. esdb:\/\/host:2113\?tls=false/);
      expect(() => EsdbEventStore.connect('esdb://admin:s3cret@host:notaport')).not.toThrow(/s3cret/);
    });

    it('given an esdb+discover:// connection string, then the client asks gossip for the leader and works', async () => {
      const s = open(`esdb+discover://127.0.0.1:${double.port}?tls=false`);

      await s.appendToStream('s-a', 'no_stream', [ev('A0')]);

      expect(double.calls.gossip).toBeGreaterThan(0);
      expect(await s.readStream('s-a')).toHaveLength(1);
    });
  });

  describe('reading ahead during a bulk catch-up', () => {
    it('given full pages of 1,000 or more, when paging through $all, then the pages read ahead are exactly the pages a direct read gives', async () => {
      for (let i = 0; i < 25; i++) await store.appendToStream(`bulk-${i}`, 'no_stream', Array.from({ length: 100 }, (_, j) => ev(`E${j}`, { i, j })));
      const direct = open(double.connectionString);
      const plain = EsdbEventStore.connect(double.connectionString, { readAhead: false });
      opened.push(plain);

      const ahead = await readAllOf(store, 1_000);
      const without = await readAllOf(plain, 1_000);

      expect(ahead).toHaveLength(2_500);
      expect(ahead).toEqual(without);
      expect(await readAllOf(direct, 700)).toEqual(without);
    });

    it('given a page read ahead that failed, when it is asked for, then it is read again directly and the caller never sees the failure', async () => {
      for (let i = 0; i < 3; i++) await store.appendToStream(`bulk-${i}`, 'no_stream', Array.from({ length: 500 }, (_, j) => ev(`E${j}`)));
      const first = await store.readAll({ after: 0n, limit: 1_000 });
      for (let i = 0; i < 3; i++) double.failNext('read', 'deadline-exceeded');

      const second = await store.readAll({ after: first.at(-1)!.position, limit: 1_000 });

      expect(first).toHaveLength(1_000);
      expect(second.map((e) => `${e.streamId}/${e.revision}`)).toEqual(Array.from({ length: 500 }, (_, j) => `bulk-2/${j}`));
    });
  });

  describe('subscribeAll', () => {
    it('given events before and after subscribing, then it delivers those strictly after the position, then live ones, never system events, in order', async () => {
      await store.appendToStream('s-a', 'no_stream', [ev('A0'), ev('A1')]);
      const [first] = await store.readAll({ after: 0n, limit: 1 });
      const got: RecordedEvent[] = [];
      let caughtUp = false;
      const errors: Error[] = [];
      const sub = store.subscribeAll(first!.position, {
        onEvent: (e) => got.push(e),
        onCaughtUp: () => (caughtUp = true),
        onError: (e) => errors.push(e),
      });
      await waitFor(() => caughtUp);
      double.writeSystemEvent();
      await store.appendToStream('s-b', 'no_stream', [ev('B0')]);
      await waitFor(() => got.length === 2);

      expect(got.map((e) => e.type)).toEqual(['A1', 'B0']);
      expect(got[0]!.schemaVersion).toBe(1);
      expect(got[1]!.position > got[0]!.position).toBe(true);
      await sub.stop();
      expect(errors).toEqual([]);
    });

    it('given the server goes away, then the subscriber hears of it once through onError', async () => {
      const errors: Error[] = [];
      let caughtUp = false;
      store.subscribeAll(0n, { onEvent: () => undefined, onCaughtUp: () => (caughtUp = true), onError: (e) => errors.push(e) });
      await waitFor(() => caughtUp);

      await double.stop();
      await waitFor(() => errors.length > 0);

      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(EventStoreUnavailableError);
    });
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
