// ov_follow: keeps this gateway's read models (user list, CRL entries, audit history) and its CRL
// file current with events appended by ANY gateway of a fleet sharing one EventStoreDB, so that a
// revocation on one gateway is enforced by all of them within seconds.
//
// How:
// - Catch up through readAll from the projection checkpoint, then subscribe to $all from the
//   checkpoint (EventStoreDB pushes each event as it is appended). A store without subscriptions
//   (the embedded one), or --poll-ms, polls readAll instead.
// - Events are applied through the projection store, page by page, each page in one transaction
//   with the checkpoint; an event at or before the checkpoint is skipped there. So nothing is
//   applied twice, whether this process restarts, the subscription replays, or a command on
//   this gateway caught up meanwhile. The subscription is gapless from the checkpoint it starts
//   at, and after any failure the follower starts again from its checkpoint: nothing is skipped.
// - After each page: if the CRL projection changed, the CRL file is signed and rewritten
//   (atomically; OpenVPN re-reads it before the next handshake); a revoked profile whose stream
//   still ends revoked has its live sessions on THIS gateway ended through the management socket.
// - When the store goes away: log it, wait (backoff from 0.25 s to 5 s), catch up, resubscribe.
// - On abort (SIGTERM): finish the page in hand, stop the subscription, return a summary.
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as E from 'fp-ts/lib/Either.js';
import { EventStoreUnavailableError, type RecordedEvent } from '../../adapters/eventstore/event-store.js';
import { isLiveEventSource, type LiveSubscription } from '../../adapters/eventstore/live-subscription.js';
import { endClientSessions } from '../../adapters/openvpn/management.js';
import { misconfigured, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { publishCrl } from './publish-crl.js';

export interface FollowOptions {
  /** Stops the follower (SIGTERM, SIGINT). */
  readonly signal: AbortSignal;
  /** One human line per thing done, for the journal. */
  readonly report: (line: string) => void;
  /** Poll readAll at this interval instead of subscribing. */
  readonly pollMs?: number;
  /** Reconnection backoff (defaults 250 ms doubling to 5 s). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Events applied per transaction (default 2,000). */
  readonly pageSize?: number;
}

export interface FollowSummary {
  readonly mode: 'subscription' | 'polling';
  readonly applied: number;
  readonly crlsWritten: number;
  readonly reconnects: number;
  readonly checkpoint: bigint;
}

/** Buffered events above which the subscription is paused until the follower catches up. */
const HIGH_WATER = 20_000;
const LOW_WATER = 2_000;
/** Longest a burst of events may hold back the CRL of a revocation already projected. */
const CRL_COALESCE_MS = 500;
/** Revocations older than this have no live session left to end (renegotiation checks the CRL). */
const SESSION_KILL_WINDOW_MS = 2 * 3_600_000;

/** When an event was recorded (its metadata's `at`), or 0 when it says nothing readable. */
function recordedAt(event: RecordedEvent): number {
  const at = (event.metadata as { at?: unknown } | null)?.at;
  const t = typeof at === 'string' ? Date.parse(at) : NaN;
  return Number.isFinite(t) ? t : 0;
}

export async function follow(ledger: Ledger, options: FollowOptions): Promise<E.Either<Failure, FollowSummary>> {
  const { signal, report } = options;
  if (!existsSync(ledger.layout.caKey) || !existsSync(ledger.layout.caCert)) {
    return E.left(
      misconfigured(
        `${ledger.layout.caKey} or ${ledger.layout.caCert} is missing: every gateway of a fleet signs the CRL with the fleet's CA; ` +
          `copy the keys/ and openvpn/ directories from the gateway that ran ov_init (or restore its ov_backup) first`,
      ),
    );
  }
  const store = ledger.store;
  const live = options.pollMs === undefined && isLiveEventSource(store) ? store : undefined;
  const mode = live ? 'subscription' : 'polling';
  const pageSize = options.pageSize ?? 2_000;
  const initialDelay = options.backoff?.initialMs ?? 250;
  const maxDelay = options.backoff?.maxMs ?? 5_000;
  let applied = 0;
  let crlsWritten = 0;
  let reconnects = 0;

  /** When the CRL file started to lag a projected revocation (undefined: it does not). */
  let crlLaggingSince: number | undefined;
  const publishIfStale = (): void => {
    if (!ledger.projections.gateway() || !ledger.crl.isStale()) {
      crlLaggingSince = undefined;
      return;
    }
    const crl = publishCrl(ledger);
    crlLaggingSince = undefined;
    crlsWritten++;
    report(`CRL #${crl.number} written with ${crl.entries} entries`);
  };

  /**
   * Applies `events` (in order) past the checkpoint; then CRL and sessions. With `moreComing`
   * (a burst still queued), the CRL is re-signed only once it lagged for CRL_COALESCE_MS: a burst
   * of revocations costs a few signatures, not one per event, and none waits much longer.
   */
  const apply = async (events: readonly RecordedEvent[], moreComing = false): Promise<void> => {
    const before = ledger.projections.checkpoint();
    let served = false;
    const count = await ledger.projections.catchUp(async (after) => {
      if (served) return [];
      served = true;
      return events.filter((e) => e.position > after);
    });
    if (count === 0) return;
    const now = ledger.projections.checkpoint();
    const done = events.filter((e) => e.position > before && e.position <= now);
    applied += count;
    reportApplied(done, count);
    if (ledger.crl.isStale()) crlLaggingSince ??= Date.now();
    if (crlLaggingSince !== undefined && (!moreComing || Date.now() - crlLaggingSince >= CRL_COALESCE_MS)) publishIfStale();
    // Only recent revocations: OpenVPN checks the CRL again at each renegotiation (hourly by
    // default), so an older revocation has no live session left, and a catch-up of a long
    // history must not read back thousands of streams.
    const recent = Date.now() - SESSION_KILL_WINDOW_MS;
    const revoked = new Set(done.filter((e) => e.type === 'ProfileRevoked' && recordedAt(e) > recent).map((e) => e.streamId));
    for (const streamId of revoked) {
      try {
        await endSessionsIfStillRevoked(ledger, streamId, report);
      } catch (error) {
        report(`warning: could not end the live sessions of ${streamId} (${(error as Error).message}); they end at the next renegotiation`);
      }
    }
  };

  const reportApplied = (done: readonly RecordedEvent[], count: number): void => {
    const first = done[0];
    const last = done.at(-1);
    if (count === 1 && first) {
      report(`applied ${first.type} of ${first.streamId} (position ${first.position})`);
    } else {
      const types = new Map<string, number>();
      for (const e of done) types.set(e.type, (types.get(e.type) ?? 0) + 1);
      report(
        `applied ${count} events (positions ${String(first?.position)}–${String(last?.position)}): ` +
          [...types].map(([t, n]) => `${t} ×${n}`).join(', '),
      );
    }
    ledger.log.info({ applied: count, from: String(first?.position), to: String(last?.position) }, 'events applied');
  };

  /** readAll from the checkpoint until nothing is left. */
  const catchUp = async (): Promise<void> => {
    for (;;) {
      if (signal.aborted) return;
      const page = await store.readAll({ after: ledger.projections.checkpoint(), limit: pageSize });
      if (page.length === 0) {
        publishIfStale();
        return;
      }
      await apply(page, page.length === pageSize);
    }
  };

  /** Resolves when aborted; rejects when the subscription fails. */
  const subscribeUntilFailure = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const queue: RecordedEvent[] = [];
      let draining = false;
      let failure: Error | undefined;
      let finished = false;
      const from = ledger.projections.checkpoint();
      const finish = async (): Promise<void> => {
        if (finished) return;
        finished = true;
        signal.removeEventListener('abort', schedule);
        await subscription.stop();
        if (failure && !signal.aborted) reject(failure);
        else resolve();
      };
      const drain = async (): Promise<void> => {
        draining = true;
        try {
          while (queue.length > 0 && !signal.aborted && !failure) {
            const page = queue.splice(0, pageSize);
            await apply(page, queue.length > 0);
            if (queue.length < LOW_WATER) subscription.resume();
          }
          if (!failure && !signal.aborted) publishIfStale();
        } catch (error) {
          failure ??= error as Error;
        } finally {
          draining = false;
        }
        if (failure || signal.aborted) await finish();
      };
      function schedule(): void {
        if (!draining && !finished) void drain();
      }
      const subscription: LiveSubscription = live!.subscribeAll(from, {
        onEvent: (event) => {
          queue.push(event);
          if (queue.length >= HIGH_WATER) subscription.pause();
          schedule();
        },
        onCaughtUp: () => report(`live: subscribed to $all after position ${from}, caught up`),
        onError: (error) => {
          failure ??= error;
          schedule();
        },
      });
      signal.addEventListener('abort', schedule);
      if (signal.aborted) schedule();
    });

  report(
    `following ${describeStore(ledger)} from position ${ledger.projections.checkpoint()} ` +
      (live ? '(subscription to $all)' : `(polling every ${options.pollMs ?? 1_000} ms)`),
  );
  // A checkpoint beyond the head means the store was replaced under us (a wiped or different
  // server at the same address): its positions are not ours, so rebuild from it.
  const checkpoint = ledger.projections.checkpoint();
  if (checkpoint > 0n && checkpoint > (await store.headPosition())) {
    report(`the read models are at position ${checkpoint}, past the end of the store: it was replaced; rebuilding them from it`);
    await ledger.projections.rebuild((after, limit) => store.readAll({ after, limit }));
  }
  if (ledger.projections.gateway() && ledger.crl.isStale()) {
    report('the CRL file lags the read models: rewriting it');
    publishIfStale();
  }

  let delay = initialDelay;
  while (!signal.aborted) {
    try {
      await catchUp();
      if (signal.aborted) break;
      delay = initialDelay;
      if (live) await subscribeUntilFailure();
      else await sleep(options.pollMs ?? 1_000, undefined, { signal }).catch(() => undefined);
    } catch (error) {
      if (signal.aborted) break;
      reconnects++;
      const unavailable = error instanceof EventStoreUnavailableError;
      const message = (error as Error).message ?? String(error);
      if (unavailable) ledger.log.warn({ err: error }, 'event store unavailable; will resume from the checkpoint');
      else ledger.log.error({ err: error }, 'following failed; will resume from the checkpoint');
      report(
        `${unavailable ? 'event store unavailable' : 'error'}: ${message}; resuming from position ` +
          `${ledger.projections.checkpoint()} in ${(delay / 1000).toFixed(2)} s`,
      );
      await sleep(delay * (0.75 + Math.random() * 0.5), undefined, { signal }).catch(() => undefined);
      delay = Math.min(maxDelay, delay * 2);
    }
  }
  const summary: FollowSummary = { mode, applied, crlsWritten, reconnects, checkpoint: ledger.projections.checkpoint() };
  ledger.log.info({ ...summary, checkpoint: summary.checkpoint.toString() }, 'ov_follow stopped');
  return E.right(summary);
}

/**
 * Ends the live sessions on this gateway of a profile revoked anywhere in the fleet, if its
 * stream still ends with the revocation (a profile issued again since keeps its new session:
 * the certificate's common name is the same for every generation of a pair).
 */
async function endSessionsIfStillRevoked(ledger: Ledger, streamId: string, report: (line: string) => void): Promise<void> {
  const socket = ledger.layout.managementSocket;
  if (!existsSync(socket)) return;
  const stream = await ledger.store.readStream(streamId);
  if (stream.at(-1)?.type !== 'ProfileRevoked') return;
  const profileId = streamId.replace(/^profile-/, '');
  const outcome = await endClientSessions(socket, profileId);
  if (outcome.kind === 'killed') report(`ended ${outcome.sessions} live session(s) of revoked profile ${profileId}`);
  if (outcome.kind === 'unreachable') {
    report(`warning: the OpenVPN management interface did not answer (${outcome.reason}); revoked profile ${profileId} keeps any live session until renegotiation`);
  }
}

function describeStore(ledger: Ledger): string {
  const target = (ledger.store as { target?: unknown }).target;
  return typeof target === 'string' ? `EventStoreDB at ${target}` : 'the embedded event store';
}
