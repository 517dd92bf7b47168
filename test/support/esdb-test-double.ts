// A TEST DOUBLE of EventStoreDB's gRPC interface. It is NOT an EventStoreDB and must never be
// mistaken for one: it keeps events in process memory, has no cluster, no authentication, no
// persistence, no projections and no scavenging. It exists so that CI, where no EventStoreDB can
// run, still exercises the real `@eventstore/db-client` end to end over the real protocol: it is
// built from the gRPC service definitions and protobuf messages the client package ships
// (`@eventstore/db-client/generated/*`), served by `@grpc/grpc-js` on 127.0.0.1, insecure.
// The authority is a run of the contract suite against a real server (OVL_TEST_ESDB, see README).
//
// What it implements, following the server's documented behaviour:
// - ServerFeatures.GetSupportedMethods: what the client asks first, to choose between
//   Streams.BatchAppend (advertised by servers since 21.10, so what production uses) and the older
//   client-streaming Streams.Append. Both are implemented; `batchAppend: false` hides BatchAppend.
// - Gossip.Read: one member, the leader, so `esdb+discover://` connection strings work too.
// - Streams.Append / Streams.BatchAppend: expected revision (a revision, no_stream, any,
//   stream_exists); revisions are 0-based per stream; a wrong expectation answers
//   WrongExpectedVersion with the stream's current revision or "no stream" and writes nothing;
//   an append is atomic; the "type" and "content-type" metadata are required; appends larger than
//   the maximum append size (1 MiB by default, as on the server) are refused; retrying an append
//   with the same event ids at the same expected revision is idempotent (as on the server).
// - Streams.Read: one stream forwards or backwards from start, end or a revision, with a count;
//   a missing stream answers `stream_not_found`. `$all` forwards or backwards from start, end or a
//   position, with a count and an optional event-type or stream-name filter (regex or prefixes).
//   Subscriptions (to a stream or to `$all`, filtered or not): confirmation, catch-up, caught_up,
//   then live events; checkpoints for filtered `$all` subscriptions.
// - Positions: every event has a `$all` position that is the byte offset of its record in a
//   (simulated) transaction log, so positions grow but are NOT dense and never start at 1: a
//   client that assumes 1, 2, 3… fails here as it would against a real server. Each append is an
//   implicit transaction, so commit position == prepare position for every event, as gRPC appends
//   produce on servers since 20.6. A read of `$all` from a position includes the event AT that
//   position; reading backwards from a position returns the events before it; a subscription
//   from a position starts strictly after it. Stream reads carry positions too (servers >= 22.10).
// - System events: on start it writes a few `$`-typed events to `$`-streams, as a fresh server
//   does (users, settings), and `systemEventsPerAppend` interleaves more, like `$stats` writes.
//
// Fault injection for the adapter's error handling: `failNext` makes the next call of a method
// fail with UNAVAILABLE, DEADLINE_EXCEEDED or the server's NotLeader answer, or commits an append
// and then loses its answer; `stop()` drops every connection like a killed server and `start()`
// brings it back on the same port with the same events.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { GossipService } from '@eventstore/db-client/generated/gossip_grpc_pb.js';
import gossipPb from '@eventstore/db-client/generated/gossip_pb.js';
import { ServerFeaturesService } from '@eventstore/db-client/generated/serverfeatures_grpc_pb.js';
import serverFeaturesPb from '@eventstore/db-client/generated/serverfeatures_pb.js';
import sharedPb from '@eventstore/db-client/generated/shared_pb.js';
import statusPb from '@eventstore/db-client/generated/status_pb.js';
import { StreamsService } from '@eventstore/db-client/generated/streams_grpc_pb.js';
import streamsPb from '@eventstore/db-client/generated/streams_pb.js';
import type {
  AppendReq,
  AppendResp,
  BatchAppendReq,
  BatchAppendResp,
  ReadReq,
  ReadResp,
} from '@eventstore/db-client/generated/streams_pb.js';
import * as grpc from '@grpc/grpc-js';
import anyPb from 'google-protobuf/google/protobuf/any_pb.js';
import emptyPb from 'google-protobuf/google/protobuf/empty_pb.js';

const { ReadResp: ReadRespMsg, AppendResp: AppendRespMsg, BatchAppendResp: BatchAppendRespMsg, ReadReq: ReadReqMsg } = streamsPb;

/** What the double is: reported as the server version, so nobody reads its logs as a real server's. */
export const TEST_DOUBLE_VERSION = '0.0.0-ovpn-ledger-test-double';

/** The server's default maximum append size (`--max-append-size`), 1 MiB. */
const DEFAULT_MAX_APPEND_SIZE = 1024 * 1024;

/** Size of the epoch record that begins every transaction log: no event can sit at position 0. */
const EPOCH_RECORD_SIZE = 128n;

export interface EsdbTestDoubleOptions {
  /** Port to listen on (127.0.0.1); 0, the default, picks a free one. */
  readonly port?: number;
  /** Advertise and serve Streams.BatchAppend (default true, as servers since 21.10 do). */
  readonly batchAppend?: boolean;
  /** Write the system events a fresh server writes before any user event (default true). */
  readonly seedSystemEvents?: boolean;
  /** After each user append, write this many `$statsCollected` events (default 0). */
  readonly systemEventsPerAppend?: number;
  readonly maxAppendSize?: number;
  /**
   * Answer a repeated append (same ids, same expected revision) with the first one's result, as
   * the server does (default true). Off, the repeat gets a wrong expected version: the server's
   * idempotency is best effort (its cache of recent ids is bounded), and a client must cope.
   */
  readonly idempotentAppends?: boolean;
}

export type FaultKind = 'unavailable' | 'deadline-exceeded' | 'not-leader' | 'lose-append-response';
export type FaultMethod = 'read' | 'append' | 'batchAppend';

/** One event as the double stores it: the bytes the client sent, and where the log put them. */
export interface DoubleRecord {
  readonly streamName: string;
  readonly revision: bigint;
  /** Commit position == prepare position (implicit transaction). */
  readonly position: bigint;
  readonly id: string;
  readonly type: string;
  readonly contentType: string;
  /** Ticks of 100 ns since the Unix epoch, as the server's "created" metadata. */
  readonly created: bigint;
  readonly data: Uint8Array;
  readonly customMetadata: Uint8Array;
  /**
   * The Streams.Read answer carrying this event (string ids), serialised once when it is
   * written: a read then only copies bytes, as a server serving from its cache would.
   */
  readonly wire: Buffer;
  /** `wire` with the gRPC message prefix (compressed flag 0, 4-byte big-endian length) before it. */
  readonly framed: Buffer;
}

/** An event to append through the double's in-process API (seeding benchmarks): no gRPC involved. */
export interface ProposedEvent {
  readonly id: string;
  readonly type: string;
  readonly contentType: string;
  readonly data: Uint8Array;
  readonly customMetadata: Uint8Array;
}

export type ExpectedState =
  | { readonly kind: 'revision'; readonly revision: bigint }
  | { readonly kind: 'no_stream' }
  | { readonly kind: 'any' }
  | { readonly kind: 'stream_exists' };

export type CommitOutcome =
  | { readonly ok: true; readonly currentRevision: bigint | undefined; readonly position: bigint | undefined }
  | { readonly ok: false; readonly current: bigint | 'no_stream' };

export interface AppendedNotice {
  readonly streamName: string;
  readonly records: readonly DoubleRecord[];
  /** performance.timeOrigin + performance.now() when the append was committed. */
  readonly atMs: number;
}

/** A gRPC error as the server would raise it (status code, message, and EventStoreDB's trailers). */
class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly trailers: Record<string, string> = {},
  ) {
    super(message);
  }

  toServiceError(): Partial<grpc.StatusObject> & { code: grpc.status; details: string; metadata: grpc.Metadata } {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.trailers)) metadata.set(k, v);
    return { code: this.code, details: this.message, metadata };
  }
}

const utf8 = new TextEncoder();
const fromUtf8 = (bytes: Uint8Array | string): string =>
  typeof bytes === 'string' ? Buffer.from(bytes, 'base64').toString('utf8') : Buffer.from(bytes).toString('utf8');
const bytesOf = (value: Uint8Array | string): Uint8Array => (typeof value === 'string' ? Buffer.from(value, 'base64') : value);
const nowMs = (): number => performance.timeOrigin + performance.now();

export class EsdbTestDouble extends EventEmitter<{ appended: [AppendedNotice] }> {
  /** The whole log in position order: what `$all` reads. */
  private readonly log: DoubleRecord[] = [];
  private readonly streams = new Map<string, DoubleRecord[]>();
  private readonly liveListeners = new Set<() => void>();
  private readonly faults: { method: FaultMethod; kind: FaultKind }[] = [];
  private nextPosition = EPOCH_RECORD_SIZE;
  private server: grpc.Server | undefined;
  private boundPort: number;
  private readonly options: Required<EsdbTestDoubleOptions>;
  /** Counters, for tests that check what the client really did. */
  readonly calls = { read: 0, append: 0, batchAppend: 0, serverFeatures: 0, gossip: 0 };

  private constructor(options: EsdbTestDoubleOptions) {
    super();
    this.options = {
      port: options.port ?? 0,
      batchAppend: options.batchAppend ?? true,
      seedSystemEvents: options.seedSystemEvents ?? true,
      systemEventsPerAppend: options.systemEventsPerAppend ?? 0,
      maxAppendSize: options.maxAppendSize ?? DEFAULT_MAX_APPEND_SIZE,
      idempotentAppends: options.idempotentAppends ?? true,
    };
    this.boundPort = this.options.port;
    if (this.options.seedSystemEvents) {
      this.writeSystemEvent('$users', '$User');
      this.writeSystemEvent('$user-admin', '$UserCreated');
      this.writeSystemEvent('$user-ops', '$UserCreated');
      this.writeSystemEvent('$settings', '$settings');
    }
  }

  /** Creates a double and starts listening on 127.0.0.1. */
  static async start(options: EsdbTestDoubleOptions = {}): Promise<EsdbTestDouble> {
    const double = new EsdbTestDouble(options);
    await double.start();
    return double;
  }

  get port(): number {
    return this.boundPort;
  }

  /** `esdb://127.0.0.1:PORT?tls=false`, what OVL_EVENT_STORE holds to reach the double. */
  get connectionString(): string {
    return `esdb://127.0.0.1:${this.boundPort}?tls=false`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Every record in `$all` order, system events included (for assertions). */
  records(): readonly DoubleRecord[] {
    return this.log;
  }

  /** Listens again (on the same port after a stop), with every event kept. */
  async start(): Promise<void> {
    if (this.server) return;
    const server = new grpc.Server();
    server.addService(this.streamsDefinition(), {
      read: (call: grpc.ServerWritableStream<ReadReq, ReadResp | Buffer>) => void this.read(call),
      append: (call: grpc.ServerReadableStream<AppendReq, AppendResp>, cb: grpc.sendUnaryData<AppendResp>) =>
        this.append(call, cb),
      batchAppend: (call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>) => this.batchAppend(call),
      delete: (_call: unknown, cb: grpc.sendUnaryData<never>) => cb(unimplemented('Streams.Delete')),
      tombstone: (_call: unknown, cb: grpc.sendUnaryData<never>) => cb(unimplemented('Streams.Tombstone')),
    });
    server.addService(ServerFeaturesService, {
      getSupportedMethods: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        this.calls.serverFeatures++;
        cb(null, this.supportedMethods());
      },
    });
    server.addService(GossipService, {
      read: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        this.calls.gossip++;
        cb(null, this.clusterInfo());
      },
    });
    this.boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${this.boundPort}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      );
    });
    this.server = server;
  }

  /**
   * Drops every connection and call at once, like a killed server process (clients see
   * UNAVAILABLE or a broken stream). The events stay: `start()` serves them again.
   */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.liveListeners.clear();
    server?.forceShutdown();
  }

  /** Makes the next call of `method` fail in the given way (queued: several can be armed). */
  failNext(method: FaultMethod, kind: FaultKind): void {
    this.faults.push({ method, kind });
  }

  /** Appends a system event (`$`-type in a `$`-stream), as the server's own subsystems do. */
  writeSystemEvent(streamName = '$stats-127.0.0.1:2113', type = '$statsCollected'): DoubleRecord {
    const outcome = this.commit(streamName, { kind: 'any' }, [
      {
        id: randomUUID(),
        type,
        contentType: 'application/json',
        data: utf8.encode(JSON.stringify({ proc: { mem: 1 }, at: new Date().toISOString() })),
        customMetadata: new Uint8Array(),
      },
    ]);
    if (!outcome.ok) throw new Error('unreachable: an append with expected "any" cannot conflict');
    return this.log.at(-1)!;
  }

  /**
   * Appends through the same code path as Streams.Append without gRPC: for seeding a benchmark
   * with a million events quickly. The bytes must be what the client would have sent.
   */
  appendDirect(streamName: string, expected: ExpectedState, events: readonly ProposedEvent[]): CommitOutcome {
    return this.commit(streamName, expected, events);
  }

  // ---- the store -----------------------------------------------------------------------------

  private commit(streamName: string, expected: ExpectedState, events: readonly ProposedEvent[]): CommitOutcome {
    if (streamName.length === 0) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'stream name is empty');
    let size = 0;
    for (const e of events) {
      const missing = [e.type === '' ? 'type' : undefined, e.contentType === '' ? 'content-type' : undefined].filter(
        (m): m is string => m !== undefined,
      );
      if (missing.length > 0) {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, `Required Metadata Properties Missing: ${missing.join(', ')}`, {
          exception: 'missing-required-metadata-property',
          'required-metadata-properties': missing.join(','),
        });
      }
      size += e.data.length + e.customMetadata.length;
    }
    if (size > this.options.maxAppendSize) {
      throw new RpcError(grpc.status.INVALID_ARGUMENT, `Maximum Append Size of ${this.options.maxAppendSize} Exceeded.`, {
        exception: 'maximum-append-size-exceeded',
        'maximum-append-size': String(this.options.maxAppendSize),
      });
    }

    const stream = this.streams.get(streamName);
    const last = stream === undefined ? undefined : BigInt(stream.length - 1);

    // Idempotency, as the server does it: the same event ids at the same expected revision are
    // the same write, answered with the revision and position they got the first time.
    const replayed = this.idempotentReplay(stream, expected, events);
    if (replayed) return replayed;

    const current: bigint | 'no_stream' = last ?? 'no_stream';
    const matches =
      expected.kind === 'any' ||
      (expected.kind === 'no_stream' && current === 'no_stream') ||
      (expected.kind === 'stream_exists' && current !== 'no_stream') ||
      (expected.kind === 'revision' && current === expected.revision);
    if (!matches) return { ok: false, current };
    if (events.length === 0) return { ok: true, currentRevision: last, position: undefined };

    const target = stream ?? [];
    const created = BigInt(Date.now()) * 10_000n;
    const written: DoubleRecord[] = [];
    for (const e of events) {
      const fields = {
        streamName,
        revision: BigInt(target.length),
        position: this.nextPosition,
        id: e.id,
        type: e.type,
        contentType: e.contentType,
        created,
        data: e.data,
        customMetadata: e.customMetadata,
      };
      const framed = frame(readEvent(fields, false).serializeBinary());
      const record: DoubleRecord = { ...fields, wire: framed.subarray(5), framed };
      // A prepare record: header, ids, stream name, type, data and metadata.
      this.nextPosition += BigInt(88 + Buffer.byteLength(streamName) + Buffer.byteLength(e.type) + e.data.length + e.customMetadata.length);
      target.push(record);
      this.log.push(record);
      written.push(record);
    }
    if (!stream) this.streams.set(streamName, target);
    const lastRecord = written.at(-1)!;

    if (!streamName.startsWith('$')) {
      this.emit('appended', { streamName, records: written, atMs: nowMs() });
      for (let i = 0; i < this.options.systemEventsPerAppend; i++) this.writeSystemEvent();
    }
    for (const listener of [...this.liveListeners]) listener();
    return { ok: true, currentRevision: lastRecord.revision, position: lastRecord.position };
  }

  private idempotentReplay(
    stream: DoubleRecord[] | undefined,
    expected: ExpectedState,
    events: readonly ProposedEvent[],
  ): CommitOutcome | undefined {
    if (!stream || events.length === 0 || !this.options.idempotentAppends) return undefined;
    let start: number;
    if (expected.kind === 'revision') start = Number(expected.revision) + 1;
    else if (expected.kind === 'no_stream') start = 0;
    else if (expected.kind === 'any') start = stream.findIndex((r) => r.id === events[0]!.id);
    else return undefined;
    if (start < 0 || start + events.length > stream.length) return undefined;
    for (let i = 0; i < events.length; i++) if (stream[start + i]!.id !== events[i]!.id) return undefined;
    const lastRecord = stream[start + events.length - 1]!;
    return { ok: true, currentRevision: lastRecord.revision, position: lastRecord.position };
  }

  // ---- Streams.Read -------------------------------------------------------------------------

  private async read(call: grpc.ServerWritableStream<ReadReq, ReadResp | Buffer>): Promise<void> {
    this.calls.read++;
    let cancelled = false;
    call.on('cancelled', () => (cancelled = true));
    try {
      this.injectFault('read');
      const options = call.request.getOptions();
      if (!options) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'ReadReq without options');
      const structuredIds = options.getUuidOption()?.hasStructured() ?? false;
      const filter = compileFilter(options);
      const write = async (message: ReadResp | Buffer): Promise<boolean> => {
        if (cancelled) return false;
        if (!call.write(message)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              call.off('drain', done);
              call.off('cancelled', done);
              call.off('close', done);
              resolve();
            };
            call.on('drain', done);
            call.on('cancelled', done);
            call.on('close', done);
          });
        }
        return !cancelled;
      };

      if (options.hasSubscription()) {
        await this.subscription(call, options, filter, structuredIds, write, () => cancelled);
        return;
      }

      const count = BigInt(options.getCount() || '0');
      const forwards = options.getReadDirection() === ReadReqMsg.Options.ReadDirection.FORWARDS;
      let source: DoubleRecord[];
      let from: number;
      if (options.hasStream()) {
        const streamOptions = options.getStream()!;
        const name = fromUtf8(streamOptions.getStreamIdentifier()?.getStreamName() ?? '');
        const stream = this.streams.get(name);
        if (!stream) {
          const notFound = new ReadRespMsg.StreamNotFound();
          notFound.setStreamIdentifier(streamIdentifier(name));
          await write(new ReadRespMsg().setStreamNotFound(notFound));
          call.end();
          return;
        }
        source = stream;
        if (streamOptions.hasStart()) from = forwards ? 0 : -1;
        else if (streamOptions.hasEnd()) from = forwards ? stream.length : stream.length - 1;
        else {
          const revision = BigInt(streamOptions.getRevision());
          from = forwards ? clampIndex(revision, stream.length) : Math.min(Number(revision), stream.length - 1);
        }
      } else if (options.hasAll()) {
        const allOptions = options.getAll()!;
        source = this.log;
        if (allOptions.hasStart()) from = forwards ? 0 : -1;
        else if (allOptions.hasEnd()) from = forwards ? this.log.length : this.log.length - 1;
        else {
          const p = allOptions.getPosition()!;
          const at = comparablePosition(p.getCommitPosition(), p.getPreparePosition());
          // Forwards: the first record at or after the position. Backwards: the last one before it.
          const firstAtOrAfter = this.firstIndexAtOrAfter(at);
          from = forwards ? firstAtOrAfter : firstAtOrAfter - 1;
        }
      } else {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, 'ReadReq names neither a stream nor $all');
      }

      let sent = 0n;
      const step = forwards ? 1 : -1;
      // Answers as one gRPC message per event, as the server sends them; several messages per
      // HTTP/2 write where grpc-js lets us (see acceptPreframed), as the server's writes coalesce.
      const batched = !structuredIds && acceptPreframed(call);
      const parts: Buffer[] = [];
      let size = 0;
      const flush = async (): Promise<boolean> => {
        if (parts.length === 0) return true;
        const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
        parts.length = 0;
        size = 0;
        return write(new Preframed(bytes) as unknown as Buffer);
      };
      for (let i = from; i >= 0 && i < source.length && sent < count; i += step) {
        const record = source[i]!;
        if (filter && !filter(record)) continue;
        sent++;
        if (batched) {
          parts.push(record.framed);
          size += record.framed.length;
          if (size >= WRITE_BATCH_BYTES && !(await flush())) return;
        } else if (!(await write(structuredIds ? readEvent(record, true) : record.wire))) return;
      }
      if (!(await flush())) return;
      call.end();
    } catch (error) {
      failCall(call, error);
    }
  }

  private async subscription(
    call: grpc.ServerWritableStream<ReadReq, ReadResp | Buffer>,
    options: ReadReq.Options,
    filter: RecordFilter | undefined,
    structuredIds: boolean,
    write: (message: ReadResp | Buffer) => Promise<boolean>,
    isCancelled: () => boolean,
  ): Promise<void> {
    const confirmation = new ReadRespMsg.SubscriptionConfirmation().setSubscriptionId(randomUUID());
    if (!(await write(new ReadRespMsg().setConfirmation(confirmation)))) return;

    // Where the catch-up starts: a subscription from a revision or position starts AFTER it.
    let sourceOf: () => readonly DoubleRecord[];
    let next: number;
    if (options.hasStream()) {
      const streamOptions = options.getStream()!;
      const name = fromUtf8(streamOptions.getStreamIdentifier()?.getStreamName() ?? '');
      sourceOf = () => this.streams.get(name) ?? [];
      if (streamOptions.hasStart()) next = 0;
      else if (streamOptions.hasEnd()) next = sourceOf().length;
      else next = clampIndex(BigInt(streamOptions.getRevision()) + 1n, Number.MAX_SAFE_INTEGER);
    } else {
      const allOptions = options.getAll();
      sourceOf = () => this.log;
      if (!allOptions || allOptions.hasStart()) next = 0;
      else if (allOptions.hasEnd()) next = this.log.length;
      else {
        const p = allOptions.getPosition()!;
        const at = comparablePosition(p.getCommitPosition(), p.getPreparePosition());
        const i = this.firstIndexAtOrAfter(at);
        next = i < this.log.length && this.log[i]!.position === at.commit ? i + 1 : i;
      }
    }

    const filterOptions = options.hasFilter() ? options.getFilter() : undefined;
    const window = filterOptions?.hasMax() ? filterOptions.getMax() : 32;
    const checkpointEvery = filter && options.hasAll() ? Math.max(1, window * Math.max(1, filterOptions?.getCheckpointintervalmultiplier() ?? 1)) : 0;
    let scannedSinceCheckpoint = 0;
    let caughtUp = false;
    let pumping = false;
    let again = false;

    const pump = async (): Promise<void> => {
      if (pumping) {
        again = true;
        return;
      }
      pumping = true;
      try {
        do {
          again = false;
          const source = sourceOf();
          while (next < source.length) {
            if (isCancelled()) return;
            const record = source[next++]!;
            if (!filter || filter(record)) {
              if (!(await write(structuredIds ? readEvent(record, true) : record.wire))) return;
            }
            if (checkpointEvery > 0 && ++scannedSinceCheckpoint >= checkpointEvery) {
              scannedSinceCheckpoint = 0;
              const checkpoint = new ReadRespMsg.Checkpoint()
                .setCommitPosition(record.position.toString())
                .setPreparePosition(record.position.toString());
              if (!(await write(new ReadRespMsg().setCheckpoint(checkpoint)))) return;
            }
          }
          if (!caughtUp) {
            caughtUp = true;
            if (!(await write(new ReadRespMsg().setCaughtUp(new ReadRespMsg.CaughtUp())))) return;
          }
        } while (again);
      } finally {
        pumping = false;
      }
    };

    const listener = () => void pump();
    this.liveListeners.add(listener);
    const stopListening = () => this.liveListeners.delete(listener);
    call.on('cancelled', stopListening);
    call.on('close', stopListening);
    await pump();
    // The call stays open: live events arrive through the listener until the client cancels or
    // the server stops.
  }

  /** Index of the first record whose position is >= `at` (records are in position order). */
  private firstIndexAtOrAfter(at: { commit: bigint; prepare: bigint }): number {
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const p = this.log[mid]!.position;
      if (p < at.commit || (p === at.commit && p < at.prepare)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // ---- Streams.Append (client streaming) ----------------------------------------------------

  private append(call: grpc.ServerReadableStream<AppendReq, AppendResp>, callback: grpc.sendUnaryData<AppendResp>): void {
    this.calls.append++;
    let options: AppendReq.Options | undefined;
    const proposed: ProposedEvent[] = [];
    let failed = false;
    call.on('data', (req: AppendReq) => {
      if (req.hasOptions()) options = req.getOptions();
      else if (req.hasProposedMessage()) proposed.push(proposedEvent(req.getProposedMessage()!));
    });
    call.on('error', () => (failed = true));
    call.on('end', () => {
      if (failed) return;
      try {
        const fault = this.injectFault('append');
        if (!options) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'AppendReq without options');
        const name = fromUtf8(options.getStreamIdentifier()?.getStreamName() ?? '');
        const expected = expectedOfAppend(options);
        const outcome = this.commit(name, expected, proposed);
        if (fault === 'lose-append-response') throw new RpcError(grpc.status.UNAVAILABLE, 'connection lost after the write');
        const resp = new AppendRespMsg();
        if (outcome.ok) {
          const success = new AppendRespMsg.Success();
          if (outcome.currentRevision === undefined) success.setNoStream(new sharedPb.Empty());
          else success.setCurrentRevision(outcome.currentRevision.toString());
          if (outcome.position === undefined) success.setNoPosition(new sharedPb.Empty());
          else success.setPosition(new AppendRespMsg.Position().setCommitPosition(outcome.position.toString()).setPreparePosition(outcome.position.toString()));
          resp.setSuccess(success);
        } else {
          const wrong = new AppendRespMsg.WrongExpectedVersion();
          if (outcome.current === 'no_stream') wrong.setCurrentNoStream(new sharedPb.Empty());
          else wrong.setCurrentRevision(outcome.current.toString());
          if (expected.kind === 'revision') wrong.setExpectedRevision(expected.revision.toString());
          else if (expected.kind === 'no_stream') wrong.setExpectedNoStream(new sharedPb.Empty());
          else if (expected.kind === 'stream_exists') wrong.setExpectedStreamExists(new sharedPb.Empty());
          else wrong.setExpectedAny(new sharedPb.Empty());
          resp.setWrongExpectedVersion(wrong);
        }
        callback(null, resp);
      } catch (error) {
        callback(asServiceError(error));
      }
    });
  }

  // ---- Streams.BatchAppend (bidirectional) --------------------------------------------------

  private batchAppend(call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>): void {
    this.calls.batchAppend++;
    const pending = new Map<string, { options: BatchAppendReq.Options | undefined; events: ProposedEvent[] }>();
    call.on('data', (req: BatchAppendReq) => {
      const correlation = req.getCorrelationId();
      const key = correlation?.hasString() ? correlation.getString() : JSON.stringify(correlation?.toObject());
      let entry = pending.get(key);
      if (!entry) {
        entry = { options: req.getOptions(), events: [] };
        pending.set(key, entry);
      }
      for (const m of req.getProposedMessagesList()) entry.events.push(proposedEvent(m));
      if (!req.getIsFinal()) return;
      pending.delete(key);

      const resp = new BatchAppendRespMsg();
      if (correlation) resp.setCorrelationId(correlation);
      const options = entry.options;
      const name = fromUtf8(options?.getStreamIdentifier()?.getStreamName() ?? '');
      resp.setStreamIdentifier(streamIdentifier(name));
      try {
        const fault = this.injectFault('batchAppend');
        if (!options) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'BatchAppendReq without options');
        const expected = expectedOfBatch(options);
        if (expected.kind === 'revision') resp.setStreamPosition(expected.revision.toString());
        else if (expected.kind === 'no_stream') resp.setNoStream(new emptyPb.Empty());
        else if (expected.kind === 'stream_exists') resp.setStreamExists(new emptyPb.Empty());
        else resp.setAny(new emptyPb.Empty());
        const outcome = this.commit(name, expected, entry.events);
        if (fault === 'lose-append-response') {
          // The write is committed, but the call dies before the answer leaves.
          call.emit('error', asServiceError(new RpcError(grpc.status.UNAVAILABLE, 'connection lost after the write')));
          return;
        }
        if (outcome.ok) {
          const success = new BatchAppendRespMsg.Success();
          if (outcome.currentRevision === undefined) success.setNoStream(new emptyPb.Empty());
          else success.setCurrentRevision(outcome.currentRevision.toString());
          if (outcome.position === undefined) success.setNoPosition(new emptyPb.Empty());
          else success.setPosition(new sharedPb.AllStreamPosition().setCommitPosition(outcome.position.toString()).setPreparePosition(outcome.position.toString()));
          resp.setSuccess(success);
        } else {
          const details = new sharedPb.WrongExpectedVersion();
          if (outcome.current === 'no_stream') details.setCurrentNoStream(new emptyPb.Empty());
          else details.setCurrentStreamRevision(outcome.current.toString());
          if (expected.kind === 'revision') details.setExpectedStreamPosition(expected.revision.toString());
          else if (expected.kind === 'no_stream') details.setExpectedNoStream(new emptyPb.Empty());
          else if (expected.kind === 'stream_exists') details.setExpectedStreamExists(new emptyPb.Empty());
          else details.setExpectedAny(new emptyPb.Empty());
          resp.setError(statusWithDetails(grpc.status.FAILED_PRECONDITION, 'WrongExpectedVersion', details.serializeBinary(), 'event_store.client.WrongExpectedVersion'));
        }
      } catch (error) {
        if (error instanceof RpcError && (error.code === grpc.status.UNAVAILABLE || error.trailers['exception'] === 'not-leader')) {
          call.emit('error', asServiceError(error));
          return;
        }
        if (error instanceof RpcError && error.trailers['exception'] === 'maximum-append-size-exceeded') {
          const max = new sharedPb.MaximumAppendSizeExceeded().setMaxappendsize(this.options.maxAppendSize);
          resp.setError(statusWithDetails(grpc.status.INVALID_ARGUMENT, error.message, max.serializeBinary(), 'event_store.client.MaximumAppendSizeExceeded'));
        } else {
          const unknown = new sharedPb.Unknown();
          resp.setError(statusWithDetails(grpc.status.UNKNOWN, (error as Error).message, unknown.serializeBinary(), 'event_store.client.Unknown'));
        }
      }
      call.write(resp);
    });
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  }

  // ---- features, gossip, faults ---------------------------------------------------------------

  private supportedMethods(): InstanceType<typeof serverFeaturesPb.SupportedMethods> {
    const methods = new serverFeaturesPb.SupportedMethods().setEventStoreServerVersion(TEST_DOUBLE_VERSION);
    const add = (service: string, method: string, features: string[] = []) =>
      methods.addMethods(new serverFeaturesPb.SupportedMethod().setServiceName(service).setMethodName(method).setFeaturesList(features));
    add('event_store.client.streams.streams', 'read', ['position', 'events']);
    add('event_store.client.streams.streams', 'append');
    if (this.options.batchAppend) add('event_store.client.streams.streams', 'batchappend');
    add('event_store.client.server_features.serverfeatures', 'getsupportedmethods');
    add('event_store.client.gossip.gossip', 'read');
    return methods;
  }

  private clusterInfo(): InstanceType<typeof gossipPb.ClusterInfo> {
    const member = new gossipPb.MemberInfo()
      .setInstanceId(new sharedPb.UUID().setString('00000000-0000-4000-8000-000000000001'))
      .setTimeStamp(String(BigInt(Date.now()) * 10_000n))
      .setState(gossipPb.MemberInfo.VNodeState.LEADER)
      .setIsAlive(true)
      .setHttpEndPoint(new gossipPb.EndPoint().setAddress('127.0.0.1').setPort(this.boundPort));
    return new gossipPb.ClusterInfo().setMembersList([member]);
  }

  /** Throws the armed fault for `method`, if any; returns 'lose-append-response' for the caller to act on. */
  private injectFault(method: FaultMethod): FaultKind | undefined {
    const i = this.faults.findIndex((f) => f.method === method);
    if (i < 0) return undefined;
    const [fault] = this.faults.splice(i, 1);
    switch (fault!.kind) {
      case 'unavailable':
        throw new RpcError(grpc.status.UNAVAILABLE, 'Server Is Not Ready');
      case 'deadline-exceeded':
        throw new RpcError(grpc.status.DEADLINE_EXCEEDED, 'Deadline Exceeded');
      case 'not-leader':
        throw new RpcError(grpc.status.NOT_FOUND, 'Leader info available', {
          exception: 'not-leader',
          'leader-endpoint-host': '127.0.0.1',
          'leader-endpoint-port': String(this.boundPort),
        });
      case 'lose-append-response':
        return 'lose-append-response';
    }
  }

  /**
   * The Streams service as the client package defines it, except that a Read response may also
   * be handed over already serialised (a Buffer): the bytes on the wire are the same.
   */
  private streamsDefinition(): grpc.ServiceDefinition {
    return {
      ...StreamsService,
      read: {
        ...StreamsService.read,
        responseSerialize: (value: ReadResp | Buffer) => (Buffer.isBuffer(value) ? value : Buffer.from(value.serializeBinary())),
      },
    } as unknown as grpc.ServiceDefinition;
  }
}

// ---- helpers ---------------------------------------------------------------------------------

/** How many bytes of answers a plain read hands to one HTTP/2 write (when grpc-js lets it). */
const WRITE_BATCH_BYTES = 64 * 1024;

/** Complete gRPC messages (each with its 5-byte prefix), written to the HTTP/2 stream as they are. */
class Preframed {
  constructor(readonly bytes: Buffer) {}
}

/** A serialised message with the gRPC length prefix: not compressed, 4-byte big-endian length. */
function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(message.length + 5);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/**
 * Lets this call send Preframed chunks: several whole messages in one write. grpc-js frames each
 * message it is handed (serializeMessage: prefix + bytes) and writes it to the HTTP/2 stream,
 * waiting for that write to complete before taking the next one — about 10 µs of its machinery per
 * message, which at a million events made the double slower than the client it serves. The bytes
 * on the wire are the same (a gRPC response body is a sequence of length-prefixed messages, and
 * HTTP/2 DATA frame boundaries carry no meaning), so the client sees exactly the same messages.
 * This reaches into grpc-js (the call's BaseServerInterceptingCall, no interceptors registered):
 * when that is not there, it returns false and the read sends one message per write.
 */
function acceptPreframed(call: grpc.ServerWritableStream<ReadReq, ReadResp | Buffer>): boolean {
  const inner = (call as unknown as { call?: { serializeMessage?: (value: unknown) => Buffer; sendMessage?: unknown } }).call;
  if (!inner || typeof inner.serializeMessage !== 'function' || typeof inner.sendMessage !== 'function') return false;
  const serialize = inner.serializeMessage.bind(inner);
  inner.serializeMessage = (value: unknown) => (value instanceof Preframed ? value.bytes : serialize(value));
  return true;
}

type RecordFilter = (record: DoubleRecord) => boolean;

function compileFilter(options: ReadReq.Options): RecordFilter | undefined {
  if (!options.hasFilter()) return undefined;
  const f = options.getFilter()!;
  const onStream = f.hasStreamIdentifier();
  const expression = onStream ? f.getStreamIdentifier() : f.getEventType();
  if (!expression) return undefined;
  const prefixes = expression.getPrefixList();
  const regex = expression.getRegex();
  const matchText = (text: string): boolean => {
    if (prefixes.length > 0) return prefixes.some((p) => text.startsWith(p));
    if (regex !== '') return new RegExp(regex).test(text);
    return true;
  };
  return (record) => matchText(onStream ? record.streamName : record.type);
}

function comparablePosition(commit: string, prepare: string): { commit: bigint; prepare: bigint } {
  return { commit: BigInt(commit || '0'), prepare: BigInt(prepare || '0') };
}

function clampIndex(revision: bigint, length: number): number {
  return revision > BigInt(length) ? length : Number(revision);
}

function streamIdentifier(name: string): InstanceType<typeof sharedPb.StreamIdentifier> {
  return new sharedPb.StreamIdentifier().setStreamName(utf8.encode(name));
}

function readEvent(record: Omit<DoubleRecord, 'wire' | 'framed'>, structuredIds: boolean): ReadResp {
  const recorded = new ReadRespMsg.ReadEvent.RecordedEvent()
    .setId(uuidMessage(record.id, structuredIds))
    .setStreamIdentifier(streamIdentifier(record.streamName))
    .setStreamRevision(record.revision.toString())
    .setCommitPosition(record.position.toString())
    .setPreparePosition(record.position.toString())
    .setData(record.data)
    .setCustomMetadata(record.customMetadata);
  recorded.getMetadataMap().set('type', record.type).set('content-type', record.contentType).set('created', record.created.toString());
  const event = new ReadRespMsg.ReadEvent().setEvent(recorded).setCommitPosition(record.position.toString());
  return new ReadRespMsg().setEvent(event);
}

function uuidMessage(id: string, structured: boolean): InstanceType<typeof sharedPb.UUID> {
  const uuid = new sharedPb.UUID();
  if (!structured) return uuid.setString(id);
  const hex = id.replace(/-/g, '');
  const signed = (h: string) => BigInt.asIntN(64, BigInt(`0x${h}`)).toString();
  return uuid.setStructured(
    new sharedPb.UUID.Structured().setMostSignificantBits(signed(hex.slice(0, 16))).setLeastSignificantBits(signed(hex.slice(16))),
  );
}

function proposedEvent(m: AppendReq.ProposedMessage | BatchAppendReq.ProposedMessage): ProposedEvent {
  const metadata = m.getMetadataMap();
  const id = m.getId();
  return {
    id: id?.hasString() ? id.getString() : randomUUID(),
    type: metadata.get('type') ?? '',
    contentType: metadata.get('content-type') ?? '',
    data: bytesOf(m.getData()),
    customMetadata: bytesOf(m.getCustomMetadata()),
  };
}

function expectedOfAppend(options: AppendReq.Options): ExpectedState {
  if (options.hasRevision()) return { kind: 'revision', revision: BigInt(options.getRevision()) };
  if (options.hasNoStream()) return { kind: 'no_stream' };
  if (options.hasStreamExists()) return { kind: 'stream_exists' };
  return { kind: 'any' };
}

function expectedOfBatch(options: BatchAppendReq.Options): ExpectedState {
  if (options.hasStreamPosition()) return { kind: 'revision', revision: BigInt(options.getStreamPosition()) };
  if (options.hasNoStream()) return { kind: 'no_stream' };
  if (options.hasStreamExists()) return { kind: 'stream_exists' };
  return { kind: 'any' };
}

function statusWithDetails(code: grpc.status, message: string, details: Uint8Array, typeName: string): InstanceType<typeof statusPb.Status> {
  const any = new anyPb.Any();
  any.pack(details, typeName);
  return new statusPb.Status().setCode(code as number).setMessage(message).setDetails(any);
}

function unimplemented(what: string): grpc.ServiceError {
  return Object.assign(new Error(`${what} is not implemented by the ovpn-ledger EventStoreDB test double`), {
    code: grpc.status.UNIMPLEMENTED,
    details: `${what} is not implemented by the ovpn-ledger EventStoreDB test double`,
    metadata: new grpc.Metadata(),
  });
}

function asServiceError(error: unknown): grpc.ServiceError {
  const rpc = error instanceof RpcError ? error : new RpcError(grpc.status.INTERNAL, (error as Error).message ?? String(error));
  return Object.assign(new Error(rpc.message), rpc.toServiceError()) as grpc.ServiceError;
}

function failCall(call: grpc.ServerWritableStream<ReadReq, ReadResp | Buffer>, error: unknown): void {
  // grpc-js turns an 'error' on a server stream into the call's final status (with trailers).
  call.emit('error', asServiceError(error));
}
