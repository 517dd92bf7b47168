// Event store on EventStoreDB (KurrentDB) through `@eventstore/db-client` 6.x, for fleets of
// gateways sharing one user base. Same streams, event types, schema versions and metadata as
// the embedded SQLite store; it passes the same contract suite (test/eventstore).
//
// How the port maps onto EventStoreDB:
// - Revisions: ESDB stream revisions are already 0-based bigints, the port's numbering. The
//   expected revision is passed through: a bigint, 'no_stream' or 'any'.
// - Events: JSON events (content type application/json) with our event type as the ESDB event
//   type and the data as it is. The schema version has no place of its own in ESDB, so the custom
//   metadata is a wrapper: `{"schemaVersion": 2, "metadata": {"actor": …, "at": …, "tool": …}}`.
//   A wrapper rather than a key mixed into our metadata: the port lets metadata be any JSON value
//   (the contract stores arrays, strings and null), a mixed-in key could collide with a caller's
//   key, and the client drops falsy metadata altogether. The metadata keeps no `$`-prefixed key:
//   ESDB reserves those ($correlationId, …). Every event gets a fresh UUID as its ESDB event id.
// - Positions: an ESDB `$all` position is a (commit, prepare) pair of byte offsets in the
//   transaction log. The port wants one bigint that only grows; we use the COMMIT position. That
//   is exact for everything we write: every gRPC append is an implicit transaction, and the
//   server gives each event of such a transaction its own log record with commit == prepare, so
//   no two events share a commit position and "strictly after" is well defined. Only events
//   written by explicit transactions of the legacy TCP API can share a commit position; readAll
//   refuses such events (with a message) rather than skip or repeat some. Positions are never 0
//   (the log starts with an epoch record), so 0n keeps meaning "from the start". They are not
//   dense: the port never promised 1, 2, 3, and checkpoints are stored as decimal strings.
//   ESDB reads `$all` from a position INCLUSIVELY; we ask from `after` and drop what is <= after.
// - System events (`$`-typed, or in `$`-streams: users, settings, stats, projections) are not
//   ours: readAll, headPosition and subscribeAll leave them out. The 6.x client cannot filter a
//   read of `$all` on the server, so readAll filters here and keeps reading until it has a page
//   of our events or reaches the end of `$all` (a page of only system events must not look like
//   the end). Subscriptions filter on the server (excludeSystemEvents) and here again.
// - Bulk reads of `$all` (readAll) go through the client's own channel, credentials and
//   reconnection, but decode the server's answers with esdb-read-decoder.ts instead of the
//   client's google-protobuf objects and ResolvedEvents: that decoding was most of a catch-up's
//   time, and it also parsed the JSON of events we then drop. The request is the one the client's
//   readAll sends. This leans on two members the client declares protected (see ClientInternals);
//   with a client that lacks them readAll falls back to the public API (and a test says so).
// - Stream reads carry `$all` positions on servers 22.6 and newer; older ones send none, and
//   readStream then reports position -1n (no caller of readStream uses positions).
//
// Errors: the client's WrongExpectedVersionError becomes WrongExpectedRevisionError (its
// actualVersion is a bigint or the string "no_stream"); StreamNotFoundError, which the client
// throws while ITERATING a read (not when calling readStream), means an empty stream; not leader,
// unavailable, deadline exceeded, cancelled by the server and access denied become
// EventStoreUnavailableError with what to check.
//
// Retries: bounded (3 attempts, short backoff), only where a retry cannot write twice:
// - reads, always;
// - appends with an expected revision or 'no_stream': the retry sends the SAME event ids with the
//   SAME expected revision. If the first attempt never landed, the retry is the write. If it did
//   land, the stream is no longer at the expected revision, so the server either recognises the
//   ids (ESDB's idempotent append) or refuses with a wrong expected version; in that case we read
//   the stream at the expected place and, if our ids are there, report the first write's result.
//   Either way the events exist once.
// - never for 'any': nothing stops a second copy, and ESDB's idempotency for 'any' is best effort.
//   Such a failure is reported as "may or may not have been written".
// The client reconnects by itself after an unavailable or not-leader error (to the leader it
// names): a retry runs on a fresh connection.

import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AccessDeniedError,
  BACKWARDS,
  CancelledError,
  DeadlineExceededError,
  END,
  EventStoreDBClient,
  excludeSystemEvents,
  FORWARDS,
  jsonEvent,
  MaxAppendSizeExceededError,
  NotLeaderError,
  START,
  StreamDeletedError,
  StreamNotFoundError,
  TimeoutError,
  UnavailableError,
  WrongExpectedVersionError,
  convertToCommandError,
  type AllStreamResolvedEvent,
  type AppendExpectedRevision,
  type JSONType,
  type Position,
  type ReadPosition,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { StreamsClient } from '@eventstore/db-client/generated/streams_grpc_pb.js';
import sharedPb from '@eventstore/db-client/generated/shared_pb.js';
import streamsPb from '@eventstore/db-client/generated/streams_pb.js';
import type { ReadReq } from '@eventstore/db-client/generated/streams_pb.js';
import { dataText, decodeReadResp, metadataText, OTHER, type DecodedReadResp, type WireEvent } from './esdb-read-decoder.js';
import {
  EventStoreUnavailableError,
  WrongExpectedRevisionError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadAllOptions,
  type RecordedEvent,
} from './event-store.js';
import type { LiveEventSource, LiveListener, LiveSubscription } from './live-subscription.js';

export interface EsdbEventStoreOptions {
  /** Attempts of a retryable call, the first included (default 3). */
  readonly attempts?: number;
  /** Backoff before the second attempt; doubles each time, capped at 2 s (default 150 ms). */
  readonly retryDelayMs?: number;
  /**
   * After returning a full page of 1,000 events or more from readAll (a bulk catch-up), start
   * reading the next page at once, so the server streams it while the caller projects this one
   * (default true).
   */
  readonly readAhead?: boolean;
  /**
   * Read `$all` forwards through the client's own gRPC channel with our decoder of the answers
   * (esdb-read-decoder.ts) rather than through the client's readAll (default true). Off, or with
   * a client that lacks the internals it needs, readAll goes through the client's public API.
   */
  readonly fastReads?: boolean;
}

/**
 * The members of the 6.x client that its own read methods are built from (declared protected in
 * its types). readAll is `Client.prototype.readAll = function () { … this.GRPCStreamCreator(
 * StreamsClient, 'readAll', (c) => c.read(req, ...this.callArguments(options, { deadline:
 * Infinity }))) … }`; the fast path makes the same call with its own decoder of the answers, so it
 * shares the client's channel, credentials, connection name and reconnection (GRPCStreamCreator
 * hands a failed call's error to the client, which reconnects, to the leader it names if any).
 */
interface ClientInternals {
  GRPCStreamCreator<C, T>(Client: new (...args: never[]) => C, debugName: string, creator: (client: C) => T): () => Promise<T>;
  callArguments(options: object, callOptions?: { deadline?: number }): [unknown, unknown];
}

/** The part of a grpc-js server-streaming call we use. */
interface ReadCall {
  on(event: 'data', listener: (message: DecodedReadResp) => void): unknown;
  once(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'end', listener: () => void): unknown;
}

type MakeServerStreamRequest = (
  method: string,
  serialize: (request: ReadReq) => Buffer,
  deserialize: (bytes: Buffer) => DecodedReadResp,
  request: ReadReq,
  metadata: unknown,
  options: unknown,
) => ReadCall;

const READ_METHOD = '/event_store.client.streams.Streams/Read';

function clientInternals(client: EventStoreDBClient): ClientInternals | undefined {
  const c = client as unknown as Partial<ClientInternals>;
  const proto = StreamsClient.prototype as unknown as { makeServerStreamRequest?: unknown };
  return typeof c.GRPCStreamCreator === 'function' && typeof c.callArguments === 'function' && typeof proto.makeServerStreamRequest === 'function'
    ? (c as ClientInternals)
    : undefined;
}

/** The page read ahead: the one after `after`, for a caller asking with `limit`. */
interface PageAhead {
  readonly after: bigint;
  readonly limit: number;
  readonly page: Promise<RecordedEvent[]>;
}

/** The custom metadata of every event we write. */
interface MetadataWrapper {
  readonly schemaVersion: number;
  readonly metadata: unknown;
}

/** Thrown for a connection string the client cannot parse; the caller says which setting holds it. */
export class InvalidConnectionStringError extends Error {
  override readonly name = 'InvalidConnectionStringError';
}

/** Reading backwards for headPosition: how many records per step past trailing system events. */
const HEAD_PAGE = 64;
/** Smallest read of $all forwards, in records. */
const MIN_READ = 64;
/** What readStream reports as the position when the server sends none (before 22.6). */
const UNKNOWN_POSITION = -1n;
/** The largest unsigned 64-bit value: what old servers send as the position of a stream read. */
const NO_POSITION = 0xffff_ffff_ffff_ffffn;

export class EsdbEventStore implements EventStore, LiveEventSource {
  private readonly attempts: number;
  private readonly retryDelayMs: number;
  private readonly readAhead: boolean;
  private readonly internals: ClientInternals | undefined;
  private ahead: PageAhead | undefined;

  private constructor(
    private readonly client: EventStoreDBClient,
    /** The connection string without credentials, for messages and logs. */
    readonly target: string,
    options: EsdbEventStoreOptions,
  ) {
    this.attempts = Math.max(1, options.attempts ?? 3);
    this.retryDelayMs = options.retryDelayMs ?? 150;
    this.readAhead = options.readAhead ?? true;
    this.internals = (options.fastReads ?? true) ? clientInternals(client) : undefined;
  }

  /** Whether readAll decodes the server's answers itself (see EsdbEventStoreOptions.fastReads). */
  get decodesReads(): boolean {
    return this.internals !== undefined;
  }

  /**
   * A store on the server(s) named by the connection string (`esdb://host:2113?tls=false`,
   * `esdb+discover://host:2113` for a cluster). Nothing is sent until the first call.
   */
  static connect(connectionString: string, options: EsdbEventStoreOptions = {}): EsdbEventStore {
    const target = redactCredentials(connectionString);
    let client: EventStoreDBClient;
    try {
      client = EventStoreDBClient.connectionString(connectionString);
    } catch (error) {
      throw new InvalidConnectionStringError(
        `${target} is not an EventStoreDB connection string (${redactCredentials((error as Error).message)}); ` +
          `expected e.g. esdb://host:2113?tls=false, or esdb+discover://host:2113 for a cluster`,
      );
    }
    return new EsdbEventStore(client, target, options);
  }

  async appendToStream(
    streamId: string,
    expectedRevision: ExpectedRevision,
    events: readonly NewEvent[],
  ): Promise<AppendResult> {
    validateAppend(streamId, expectedRevision, events);
    // Ids, data and metadata fixed once: a retry must send exactly the same write.
    const prepared = events.map((e) => {
      const data = jsonCopy(e.data, 'data', e.type);
      const metadata: MetadataWrapper = { schemaVersion: e.schemaVersion, metadata: jsonCopy(e.metadata, 'metadata', e.type) };
      return jsonEvent({ id: randomUUID(), type: e.type, data: data as JSONType, metadata });
    });
    const ids = prepared.map((e) => e.id);
    const retryable = expectedRevision !== 'any';
    const expected: AppendExpectedRevision = expectedRevision;

    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.client.appendToStream(streamId, prepared, { expectedRevision: expected });
        const position = result.position?.commit;
        if (position === undefined) {
          // Only an empty append has no position, and we never send one.
          throw new Error(`EventStoreDB confirmed the append to ${streamId} without a position`);
        }
        return { nextExpectedRevision: result.nextExpectedRevision, position };
      } catch (raw) {
        const error = normalise(raw);
        if (error instanceof WrongExpectedVersionError) {
          if (attempt > 1) {
            const landed = await this.findLandedAppend(streamId, expectedRevision, ids);
            if (landed) return landed;
          }
          throw new WrongExpectedRevisionError(streamId, expectedRevision, actualOf(error.actualVersion));
        }
        if (!isTransient(error)) throw this.translate(error, `append to ${streamId}`);
        if (!retryable) {
          throw new EventStoreUnavailableError(
            `${this.describeTransient(error)}; the append to ${streamId} (expected revision 'any') was not retried because ` +
              `that could write it twice, and it may or may not have been written: check the stream before running the command again`,
            { cause: error },
          );
        }
        if (attempt >= this.attempts) {
          throw new EventStoreUnavailableError(
            `${this.describeTransient(error)}; the append to ${streamId} was not confirmed after ${attempt} attempts and may or may not ` +
              `have been written: once the server answers, check (ov_user_list, ov_user_audit) and run the command again if nothing ` +
              `changed — it re-reads the stream and checks its revision, so nothing can be applied twice`,
            { cause: error },
          );
        }
        await this.backoff(attempt);
      }
    }
  }

  async readStream(streamId: string): Promise<RecordedEvent[]> {
    return this.withReadRetry(`read of ${streamId}`, async () => {
      const out: RecordedEvent[] = [];
      try {
        for await (const resolved of this.client.readStream(streamId, { direction: FORWARDS, fromRevision: START })) {
          out.push(toRecordedEvent(resolved, 'stream'));
        }
      } catch (error) {
        // Thrown while iterating, not by readStream(): the stream has never been written.
        if (error instanceof StreamNotFoundError) return [];
        throw error;
      }
      return out;
    });
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    validateReadAll(options);
    const { after, limit } = options;
    const ahead = this.ahead;
    this.ahead = undefined;
    let page: RecordedEvent[] | undefined;
    if (ahead && ahead.after === after && ahead.limit === limit) {
      // A failed read-ahead is not an answer: read again directly, with the retries.
      page = await ahead.page.catch(() => undefined);
    }
    page ??= await this.readAllDirect(after, limit);
    // $all only grows, so a page read a moment early is still exactly the page after `after`.
    if (this.readAhead && limit >= 1_000 && page.length === limit) {
      const next = page.at(-1)!.position;
      const read = this.readAllDirect(next, limit);
      read.catch(() => undefined);
      this.ahead = { after: next, limit, page: read };
    }
    return page;
  }

  private async readAllDirect(after: bigint, limit: number): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    let from: ReadPosition = after === 0n ? START : { commit: after, prepare: after };
    let floor = after;
    for (;;) {
      // One more than needed: the read includes the record AT `from`, which we drop. At least a
      // few dozen, so that a run of system events costs few round trips.
      const want = Math.max(limit - out.length + 1, MIN_READ);
      let last: Position | undefined;
      let received: number;
      if (this.internals) {
        const internals = this.internals;
        const start = from;
        const page = await this.withReadRetry('read of $all', () => readAllForwards(internals, start, want));
        received = page.length;
        for (const event of page) {
          if (event.commit <= floor) continue;
          last = { commit: event.commit, prepare: event.prepare };
          if (isSystemEvent(event.streamId, event.type)) continue;
          out.push(wireToRecordedEvent(event));
          if (out.length === limit) return out;
        }
      } else {
        const page = await this.withReadRetry('read of $all', () =>
          collect<AllStreamResolvedEvent>(this.client.readAll({ direction: FORWARDS, fromPosition: from, maxCount: want })),
        );
        received = page.length;
        for (const resolved of page) {
          const event = resolved.event;
          if (!event) continue;
          if (event.position.commit <= floor) continue;
          last = event.position;
          if (isSystemEvent(event.streamId, event.type)) continue;
          out.push(toRecordedEvent(resolved, 'all'));
          if (out.length === limit) return out;
        }
      }
      if (received < want || last === undefined) return out;
      // The page was all (or mostly) system events: go on from the last record seen.
      from = last;
      floor = last.commit;
    }
  }

  async headPosition(): Promise<bigint> {
    let from: ReadPosition = END;
    for (;;) {
      const page = await this.withReadRetry('read of $all', () =>
        collect<AllStreamResolvedEvent>(this.client.readAll({ direction: BACKWARDS, fromPosition: from, maxCount: HEAD_PAGE })),
      );
      let last: Position | undefined;
      for (const { event } of page) {
        if (!event) continue;
        if (from !== END && event.position.commit >= from.commit) continue;
        last = event.position;
        if (!isSystemEvent(event.streamId, event.type)) return event.position.commit;
      }
      if (page.length < HEAD_PAGE || last === undefined) return 0n;
      from = last;
    }
  }

  subscribeAll(after: bigint, listener: LiveListener): LiveSubscription {
    const subscription = this.client.subscribeToAll({
      fromPosition: after === 0n ? START : { commit: after, prepare: after },
      filter: excludeSystemEvents(),
    });
    let ended = false;
    const end = (error: Error): void => {
      if (ended) return;
      ended = true;
      void subscription.unsubscribe().catch(() => undefined);
      listener.onError(error);
    };
    subscription.on('data', (resolved: AllStreamResolvedEvent) => {
      if (ended) return;
      const event = resolved.event;
      if (!event || isSystemEvent(event.streamId, event.type)) return;
      // A subscription starts strictly after its position; this guards the port's promise anyway.
      if (event.position.commit <= after) return;
      try {
        listener.onEvent(toRecordedEvent(resolved, 'all'));
      } catch (error) {
        end(error as Error);
      }
    });
    subscription.on('caughtUp', () => {
      if (!ended) listener.onCaughtUp?.();
    });
    subscription.on('error', (error: Error) => end(this.translate(normalise(error), 'subscription to $all')));
    subscription.on('end', () =>
      end(new EventStoreUnavailableError(`EventStoreDB at ${this.target} ended the subscription to $all; resubscribing from the checkpoint`)),
    );
    return {
      pause: () => void subscription.pause(),
      resume: () => void subscription.resume(),
      stop: async () => {
        ended = true;
        await subscription.unsubscribe().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    const ahead = this.ahead;
    this.ahead = undefined;
    await ahead?.page.catch(() => undefined);
    await this.client.dispose();
  }

  // ---- internals ------------------------------------------------------------------------------

  /**
   * After a retried append was refused: are our events (by id) at the revisions the first attempt
   * would have given them? Then the first attempt landed and its answer was lost.
   */
  private async findLandedAppend(streamId: string, expected: ExpectedRevision, ids: readonly string[]): Promise<AppendResult | undefined> {
    const fromRevision = expected === 'no_stream' ? 0n : (expected as bigint) + 1n;
    const found = await this.withReadRetry(`read of ${streamId}`, async () => {
      const out: ResolvedEvent[] = [];
      try {
        for await (const resolved of this.client.readStream(streamId, { direction: FORWARDS, fromRevision, maxCount: ids.length })) {
          out.push(resolved);
        }
      } catch (error) {
        if (error instanceof StreamNotFoundError) return [];
        throw error;
      }
      return out;
    });
    if (found.length !== ids.length || found.some((r, i) => r.event?.id !== ids[i])) return undefined;
    const last = found.at(-1)!.event!;
    const position = positionOf(last.position);
    if (position === UNKNOWN_POSITION) return undefined;
    return { nextExpectedRevision: last.revision, position };
  }

  private async withReadRetry<T>(what: string, read: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await read();
      } catch (raw) {
        const error = normalise(raw);
        if (!isTransient(error) || attempt >= this.attempts) throw this.translate(error, what);
        await this.backoff(attempt);
      }
    }
  }

  private async backoff(attempt: number): Promise<void> {
    const base = Math.min(2_000, this.retryDelayMs * 2 ** (attempt - 1));
    const ms = base / 2 + Math.random() * (base / 2);
    await new Promise((resolve) => setTimeout(resolve, ms));
  }

  private describeTransient(error: unknown): string {
    const detail = (error as Error).message || String(error);
    if (error instanceof NotLeaderError) {
      return `the EventStoreDB node at ${this.target} is not the cluster leader and the leader (${error.leader.address}:${error.leader.port}) did not take the request (${detail})`;
    }
    if (error instanceof DeadlineExceededError || error instanceof TimeoutError) {
      return `EventStoreDB at ${this.target} did not answer in time (${detail})`;
    }
    return `EventStoreDB at ${this.target} is unavailable (${detail})`;
  }

  /** The client's errors as the port's, with what an operator can do about them. */
  private translate(error: unknown, what: string): Error {
    if (error instanceof WrongExpectedRevisionError || error instanceof EventStoreUnavailableError) return error;
    if (error instanceof NotLeaderError) {
      return new EventStoreUnavailableError(
        `${this.describeTransient(error)}; the ${what} failed: check the cluster's health, or connect with esdb+discover://… ` +
          `(with nodePreference=leader) so the client finds the leader itself`,
        { cause: error },
      );
    }
    if (error instanceof DeadlineExceededError || error instanceof TimeoutError) {
      return new EventStoreUnavailableError(
        `${this.describeTransient(error)}; the ${what} failed: the server may be overloaded or the network slow — retry, ` +
          `or raise defaultDeadline (milliseconds) in the connection string`,
        { cause: error },
      );
    }
    if (isTransient(error)) {
      return new EventStoreUnavailableError(
        `${this.describeTransient(error)}; the ${what} failed: check that the server runs and that this host reaches it ` +
          `(address, port, firewall, and tls=false/true in the connection string matching the server's --insecure setting)`,
        { cause: error },
      );
    }
    if (error instanceof AccessDeniedError) {
      return new EventStoreUnavailableError(
        `EventStoreDB at ${this.target} denied the ${what}: give the connection string a user allowed to read and write ` +
          `these streams and $all (esdb://user:password@host:2113)`,
        { cause: error },
      );
    }
    if (error instanceof StreamDeletedError) {
      return new Error(
        `the ${what} failed: stream ${error.streamName ?? ''} was deleted in EventStoreDB; ovpn-ledger never deletes streams, ` +
          `so restore the store from a backup (ov_backup/ov_restore)`,
        { cause: error },
      );
    }
    if (error instanceof MaxAppendSizeExceededError) {
      return new Error(`the ${what} is larger than the server's maximum append size (${error.maxAppendSize} bytes)`, { cause: error });
    }
    if (error instanceof Error && /^Failed to discover/.test(error.message)) {
      return new EventStoreUnavailableError(
        `no EventStoreDB cluster member at ${this.target} answered gossip (${error.message}); the ${what} failed: check the seed ` +
          `addresses and that the nodes run`,
        { cause: error },
      );
    }
    return error instanceof Error ? error : new Error(String(error));
  }
}

// ---- pure helpers --------------------------------------------------------------------------------

/**
 * Most of the client's failures arrive as its CommandErrors, but some (the server-features call
 * made before the first append, connection failures) arrive as raw gRPC errors: classify both alike.
 */
function normalise(error: unknown): unknown {
  return error instanceof Error ? convertToCommandError(error) : error;
}

function isTransient(error: unknown): boolean {
  return (
    error instanceof UnavailableError ||
    error instanceof NotLeaderError ||
    error instanceof DeadlineExceededError ||
    error instanceof TimeoutError ||
    error instanceof CancelledError ||
    (error instanceof Error && /^Failed to discover/.test(error.message))
  );
}

export function isSystemEvent(streamId: string, type: string): boolean {
  return streamId.startsWith('$') || type.startsWith('$');
}

function actualOf(actual: unknown): bigint | 'no_stream' {
  if (typeof actual === 'bigint') return actual;
  if (actual === 'no_stream' || actual === undefined || actual === null) return 'no_stream';
  return BigInt(actual as number | string);
}

function positionOf(position: Position | undefined): bigint {
  if (!position || position.commit === NO_POSITION) return UNKNOWN_POSITION;
  return position.commit;
}

/**
 * Every item of a client read, through 'data' events: async iteration would cost a promise per
 * event, which shows at a million events.
 */
function collect<T>(read: Readable): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = [];
    read.on('data', (item: T) => out.push(item));
    read.once('error', reject);
    read.once('end', () => resolve(out));
  });
}

/**
 * One read of `$all` forwards, as the client's readAll sends it (string ids, no filter, links not
 * resolved, no deadline), with the answers decoded by esdb-read-decoder.ts. Errors are the
 * client's CommandErrors, as from its readAll.
 */
function readAllForwards(internals: ClientInternals, from: ReadPosition, maxCount: number): Promise<WireEvent[]> {
  const all = new streamsPb.ReadReq.Options.AllOptions();
  if (from === START) all.setStart(new sharedPb.Empty());
  else if (from === END) all.setEnd(new sharedPb.Empty());
  else all.setPosition(new streamsPb.ReadReq.Options.Position().setCommitPosition(from.commit.toString()).setPreparePosition(from.prepare.toString()));
  const options = new streamsPb.ReadReq.Options()
    .setAll(all)
    .setResolveLinks(false)
    .setCount(String(maxCount))
    .setUuidOption(new streamsPb.ReadReq.Options.UUIDOption().setString(new sharedPb.Empty()))
    .setNoFilter(new sharedPb.Empty())
    .setReadDirection(streamsPb.ReadReq.Options.ReadDirection.FORWARDS);
  const request = new streamsPb.ReadReq().setOptions(options);
  const [metadata, callOptions] = internals.callArguments({}, { deadline: Infinity });
  const open = internals.GRPCStreamCreator(StreamsClient, 'readAll', (grpcClient) =>
    (grpcClient as unknown as { makeServerStreamRequest: MakeServerStreamRequest }).makeServerStreamRequest(
      READ_METHOD,
      serializeReadReq,
      decodeReadResp,
      request,
      metadata,
      callOptions,
    ),
  );
  return new Promise((resolve, reject) => {
    open().then((call) => {
      const out: WireEvent[] = [];
      call.on('data', (message) => {
        if (message !== OTHER) out.push(message);
      });
      call.once('error', (error) => reject(convertToCommandError(error)));
      call.once('end', () => resolve(out));
    }, reject);
  });
}

function serializeReadReq(request: ReadReq): Buffer {
  return Buffer.from(request.serializeBinary());
}

/** As toRecordedEvent does for the client's events, with the same checks and messages. */
function wireToRecordedEvent(event: WireEvent): RecordedEvent {
  // Only for messages: building it for every event would cost a bigint to string each.
  const where = (): string => `${event.streamId}@${event.revision}`;
  if (event.contentType !== 'application/json') throw new Error(`event ${event.type} at ${where()} is not JSON: it was not written by ovpn-ledger`);
  let wrapper: Partial<MetadataWrapper> | null | undefined;
  try {
    wrapper = event.metadataEnd > event.metadataStart ? (JSON.parse(metadataText(event)) as Partial<MetadataWrapper> | null) : undefined;
  } catch {
    wrapper = undefined;
  }
  if (wrapper === null || typeof wrapper !== 'object' || !Number.isSafeInteger(wrapper.schemaVersion) || !('metadata' in wrapper)) {
    throw new Error(
      `event ${event.type} at ${where()} has no ovpn-ledger metadata (schemaVersion): it was not written by ovpn-ledger; ` +
        `the EventStoreDB database of a fleet must hold only ovpn-ledger streams (and the server's own $-streams)`,
    );
  }
  if (event.commit !== event.prepare) {
    throw new Error(
      `event ${event.type} at ${where()} was written in an explicit transaction (commit ${event.commit} != prepare ${event.prepare}); ` +
        `ovpn-ledger orders events by commit position and cannot follow such events: remove the foreign writer`,
    );
  }
  // Data that is not JSON stays text, as the client leaves it.
  const text = dataText(event);
  let data: unknown;
  try {
    data = JSON.parse(text) as unknown;
  } catch {
    data = text;
  }
  return {
    streamId: event.streamId,
    revision: event.revision,
    position: event.commit,
    type: event.type,
    schemaVersion: wrapper.schemaVersion as number,
    data,
    metadata: wrapper.metadata,
  };
}

function toRecordedEvent(resolved: ResolvedEvent | AllStreamResolvedEvent, source: 'stream' | 'all'): RecordedEvent {
  const event = resolved.event;
  if (!event) throw new Error('EventStoreDB returned a link whose event is gone; ovpn-ledger writes no links');
  // Only for messages: building it for every event would cost a bigint to string each.
  const where = (): string => `${event.streamId}@${event.revision}`;
  if (!event.isJson) throw new Error(`event ${event.type} at ${where()} is not JSON: it was not written by ovpn-ledger`);
  const wrapper = event.metadata as Partial<MetadataWrapper> | undefined;
  if (
    wrapper === null ||
    typeof wrapper !== 'object' ||
    wrapper instanceof Uint8Array ||
    !Number.isSafeInteger(wrapper.schemaVersion) ||
    !('metadata' in wrapper)
  ) {
    throw new Error(
      `event ${event.type} at ${where()} has no ovpn-ledger metadata (schemaVersion): it was not written by ovpn-ledger; ` +
        `the EventStoreDB database of a fleet must hold only ovpn-ledger streams (and the server's own $-streams)`,
    );
  }
  let position: bigint;
  if (source === 'all') {
    const p = event.position as Position;
    if (p.commit !== p.prepare) {
      throw new Error(
        `event ${event.type} at ${where()} was written in an explicit transaction (commit ${p.commit} != prepare ${p.prepare}); ` +
          `ovpn-ledger orders events by commit position and cannot follow such events: remove the foreign writer`,
      );
    }
    position = p.commit;
  } else {
    position = positionOf(event.position);
  }
  return {
    streamId: event.streamId,
    revision: event.revision,
    position,
    type: event.type,
    schemaVersion: wrapper.schemaVersion as number,
    data: event.data as unknown,
    metadata: wrapper.metadata,
  };
}

// A JSON round trip, as the other adapters do: the stored value is exactly what JSON can carry,
// the caller's object can change afterwards without reaching the store, and a value that is not
// JSON fails here, before anything is sent.
function jsonCopy(value: unknown, field: string, type: string): unknown {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`event ${type}: ${field} is not a JSON value`);
  return JSON.parse(json) as unknown;
}

function redactCredentials(text: string): string {
  return text.replace(/(esdb(?:\+discover)?:\/\/)[^@/\s]*@/gi, '$1***@');
}

function validateAppend(streamId: string, expectedRevision: ExpectedRevision, events: readonly NewEvent[]): void {
  if (typeof streamId !== 'string' || streamId.length === 0) throw new TypeError('streamId must be a non-empty string');
  if (typeof expectedRevision !== 'bigint' && expectedRevision !== 'no_stream' && expectedRevision !== 'any') {
    throw new TypeError(`expectedRevision must be a bigint, 'no_stream' or 'any', not ${String(expectedRevision)}`);
  }
  if (typeof expectedRevision === 'bigint' && expectedRevision < 0n) {
    throw new RangeError(`expectedRevision must be >= 0n, not ${expectedRevision}`);
  }
  // An empty append has no "last event written" to report (ESDB would accept it and write nothing).
  if (events.length === 0) throw new RangeError(`append to ${streamId} has no events`);
  for (const e of events) {
    if (typeof e.type !== 'string' || e.type.length === 0) throw new TypeError(`event type must be a non-empty string`);
    if (e.type.startsWith('$')) throw new TypeError(`event type ${e.type}: types starting with $ are EventStoreDB's own`);
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
