// Event store held in process memory, for unit tests and dry runs. It follows the same contract
// as the SQLite store (test/eventstore/event-store-contract.ts), so a test that passes against
// it says something about production.

import {
  WrongExpectedRevisionError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadAllOptions,
  type RecordedEvent,
} from './event-store.js';

export class InMemoryEventStore implements EventStore {
  // log[i] has position i + 1: positions are dense here, which makes readAll a slice.
  private readonly log: RecordedEvent[] = [];
  private readonly streams = new Map<string, RecordedEvent[]>();

  // No method awaits before it has finished its work, so concurrent calls cannot interleave
  // between the revision check and the write, just as with SQLite's write lock.
  async appendToStream(
    streamId: string,
    expectedRevision: ExpectedRevision,
    events: readonly NewEvent[],
  ): Promise<AppendResult> {
    validateAppend(streamId, expectedRevision, events);
    const stream = this.streams.get(streamId);
    const last = stream?.at(-1)?.revision;
    const actual: bigint | 'no_stream' = last ?? 'no_stream';
    if (expectedRevision !== 'any' && expectedRevision !== actual) {
      throw new WrongExpectedRevisionError(streamId, expectedRevision, actual);
    }

    // Copy every event before storing any, so that a value that cannot be stored leaves the
    // log as it was (append is all or nothing), and later mutation by the caller cannot reach it.
    const copies = events.map((e) => ({
      type: e.type,
      schemaVersion: e.schemaVersion,
      data: jsonCopy(e.data, 'data', e.type),
      metadata: jsonCopy(e.metadata, 'metadata', e.type),
    }));
    const target = stream ?? [];
    let revision = last ?? -1n;
    let position = 0n;
    for (const copy of copies) {
      revision += 1n;
      position = BigInt(this.log.length) + 1n;
      const stored: RecordedEvent = { streamId, revision, position, ...copy };
      this.log.push(stored);
      target.push(stored);
    }
    if (!stream) this.streams.set(streamId, target);
    return { nextExpectedRevision: revision, position };
  }

  async readStream(streamId: string): Promise<RecordedEvent[]> {
    return (this.streams.get(streamId) ?? []).map(copyOut);
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    validateReadAll(options);
    if (options.after >= BigInt(this.log.length)) return [];
    const start = Number(options.after);
    return this.log.slice(start, start + options.limit).map(copyOut);
  }

  async headPosition(): Promise<bigint> {
    return BigInt(this.log.length);
  }

  async close(): Promise<void> {}
}

// A JSON round trip rather than structuredClone on the way in: the SQLite store keeps JSON text,
// so a Date comes back as a string, undefined properties vanish and a bigint is refused. Doing
// the same here keeps a unit test from passing on an event that production would store
// differently. On the way out structuredClone is enough (the stored value is plain JSON).
function jsonCopy(value: unknown, field: string, type: string): unknown {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`event ${type}: ${field} is not a JSON value`);
  return JSON.parse(json) as unknown;
}

function copyOut(e: RecordedEvent): RecordedEvent {
  return { ...e, data: structuredClone(e.data), metadata: structuredClone(e.metadata) };
}

// Same argument checks as SqliteEventStore, so misuse fails the same way in unit tests.
function validateAppend(streamId: string, expectedRevision: ExpectedRevision, events: readonly NewEvent[]): void {
  if (typeof streamId !== 'string' || streamId.length === 0) throw new TypeError('streamId must be a non-empty string');
  if (typeof expectedRevision !== 'bigint' && expectedRevision !== 'no_stream' && expectedRevision !== 'any') {
    throw new TypeError(`expectedRevision must be a bigint, 'no_stream' or 'any', not ${String(expectedRevision)}`);
  }
  if (events.length === 0) throw new RangeError(`append to ${streamId} has no events`);
  for (const e of events) {
    if (typeof e.type !== 'string' || e.type.length === 0) throw new TypeError(`event type must be a non-empty string`);
    if (!Number.isSafeInteger(e.schemaVersion)) throw new TypeError(`event ${e.type}: schemaVersion must be an integer`);
  }
}

function validateReadAll(options: ReadAllOptions): void {
  if (!Number.isSafeInteger(options.limit) || options.limit < 1) {
    throw new RangeError(`limit must be a positive integer, not ${String(options.limit)}`);
  }
  if (typeof options.after !== 'bigint' || options.after < 0n) {
    throw new RangeError(`after must be a bigint >= 0n, not ${String(options.after)}`);
  }
}
