// Durability and cross-process concurrency of SqliteEventStore, with real OS processes: what an
// in-process test cannot show (a writer killed mid-transaction, two commands started at the
// same moment by two operators). The workers run the compiled adapter from dist/.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../adapters/eventstore/event-store.js';
import { SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const workerScript = fileURLToPath(new URL('./fixtures/append-worker.mjs', import.meta.url));

// The workers import these from dist/; a missing or stale build would test the wrong code.
const compiled = [
  ['adapters/eventstore/sqlite-event-store.ts', 'dist/adapters/eventstore/sqlite-event-store.js'],
  ['adapters/eventstore/event-store.ts', 'dist/adapters/eventstore/event-store.js'],
  ['adapters/sqlite/open-database.ts', 'dist/adapters/sqlite/open-database.js'],
] as const;

function assertDistIsBuilt(): void {
  for (const [source, output] of compiled) {
    const out = join(root, output);
    if (!existsSync(out)) {
      throw new Error(`${output} is missing: run npm run build first (these tests run the compiled adapter in child processes)`);
    }
    if (statSync(out).mtimeMs < statSync(join(root, source)).mtimeMs) {
      throw new Error(`${output} is older than ${source}: run npm run build first`);
    }
  }
}

type WorkerMessage = Record<string, unknown>;

/** A worker process whose stdout is parsed line by line as it arrives. */
class Worker {
  readonly messages: WorkerMessage[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcessWithoutNullStreams;
  private pending = '';
  private waiters: Array<() => void> = [];

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [workerScript, ...args], { stdio: 'pipe' });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => {
      this.pending += chunk;
      const lines = this.pending.split('\n');
      // A last line without its newline may have been cut by SIGKILL: it is not an ack yet.
      this.pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) this.messages.push(JSON.parse(line) as WorkerMessage);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      // 'close' rather than 'exit': it fires after stdout has been drained.
      this.child.on('close', (code, signal) => {
        for (const wake of this.waiters.splice(0)) wake();
        resolve({ code, signal });
      });
    });
  }

  get exitCode(): number | null {
    return this.child.exitCode;
  }

  async waitFor(predicate: (m: WorkerMessage[]) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.messages)) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`worker exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}; stderr:\n${this.stderr}`);
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

function readEverything(store: SqliteEventStore): RecordedEvent[] {
  const all: RecordedEvent[] = [];
  let after = 0n;
  for (;;) {
    const page = store.readAllSync({ after, limit: 5000 });
    if (page.length === 0) return all;
    all.push(...page);
    after = page.at(-1)!.position;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('SqliteEventStore across real processes', () => {
  let dir: string;
  let dbPath: string;
  const workers: Worker[] = [];

  beforeAll(() => {
    assertDistIsBuilt();
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ovpn-ledger-crash-'));
    dbPath = join(dir, 'ledger.db');
    // Created up front, as ov_init would, so the workers only ever open an existing store.
    const db = openSqliteDatabase(dbPath);
    new SqliteEventStore(db);
    db.close();
  });

  afterEach(async () => {
    for (const w of workers) w.kill();
    await Promise.all(workers.splice(0).map((w) => w.exited));
    rmSync(dir, { recursive: true, force: true });
  });

  it('given writers SIGKILLed at random moments, when the file is reopened, then every acknowledged append is there, revisions are contiguous and no append is half written', async () => {
    const rounds = 6;
    const acked: Array<{ streamId: string; revision: bigint; position: bigint }> = [];

    for (let round = 0; round < rounds; round++) {
      // Two writers on one file, so a kill also lands while the other one holds or waits for
      // the lock; the same worker ids every round, so streams keep growing across crashes.
      const pair = ['w0', 'w1'].map((id) => new Worker(['loop', dbPath, id, '4']));
      workers.push(...pair);
      await Promise.all(
        pair.map(async (w) => {
          await w.waitFor((m) => m.some((x) => 'ack' in x), 'a first ack');
          await sleep(Math.floor(Math.random() * 300));
          w.kill();
          const { signal } = await w.exited;
          // Killed by us while running, not died on its own (e.g. a conflict or a BUSY error).
          expect(signal, w.stderr).toBe('SIGKILL');
        }),
      );
      for (const w of pair) {
        for (const m of w.messages) {
          if (!('ack' in m)) continue;
          const ack = m.ack as { streamId: string; revision: string; position: string };
          acked.push({ streamId: ack.streamId, revision: BigInt(ack.revision), position: BigInt(ack.position) });
        }
      }

      const db = openSqliteDatabase(dbPath);
      try {
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        const store = new SqliteEventStore(db);
        const all = readEverything(store);
        const byPosition = new Map(all.map((e) => [e.position, e]));

        // Every acknowledged append survived, at the position and revision it was acked with.
        for (const ack of acked) {
          const e = byPosition.get(ack.position);
          expect(e, `acked position ${ack.position} is missing after round ${round}`).toBeDefined();
          expect([e!.streamId, e!.revision]).toEqual([ack.streamId, ack.revision]);
        }

        for (let i = 1; i < all.length; i++) expect(all[i]!.position).toBeGreaterThan(all[i - 1]!.position);

        const streams = new Map<string, RecordedEvent[]>();
        for (const e of all) streams.set(e.streamId, [...(streams.get(e.streamId) ?? []), e]);
        for (const [streamId, events] of streams) {
          expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => BigInt(i)));
          expect(events.length % 3, `${streamId} holds a partial append`).toBe(0);
          for (let i = 0; i < events.length; i += 3) {
            const group = events.slice(i, i + 3);
            const data = group.map((e) => e.data as { batch: number; part: number });
            // One append = one transaction: its 3 events are adjacent in the global log too.
            expect(data.map((d) => d.part)).toEqual([0, 1, 2]);
            expect(new Set(data.map((d) => d.batch)).size).toBe(1);
            expect(group[2]!.position - group[0]!.position).toBe(2n);
          }
        }
        expect(store.headPositionSync()).toBe(all.at(-1)?.position ?? 0n);
      } finally {
        db.close();
      }
    }

    expect(acked.length).toBeGreaterThan(rounds);
  });

  it("given two processes that create the same new stream with 'no_stream' at the same instant, round after round, then exactly one succeeds and the other gets WrongExpectedRevisionError, never SQLITE_BUSY", async () => {
    const rounds = 40;
    const spacingMs = 60;
    const pair = ['A', 'B'].map((id) => new Worker(['race', dbPath, id, String(rounds), String(spacingMs)]));
    workers.push(...pair);
    await Promise.all(pair.map((w) => w.waitFor((m) => m.some((x) => x.ready === true), 'ready')));

    // Both already have the database open, so the start line is the same wall-clock instant.
    const epoch = Date.now() + 300;
    for (const w of pair) w.send(`go ${epoch}`);
    const exits = await Promise.all(pair.map((w) => w.exited));
    for (const [i, exit] of exits.entries()) expect(exit, pair[i]!.stderr).toEqual({ code: 0, signal: null });

    type Outcome = { round: number; outcome: string; actual?: string; startedAt: number; endedAt: number } & WorkerMessage;
    const [a, b] = pair.map((w) => w.messages.filter((m) => 'round' in m) as Outcome[]);
    expect(a).toHaveLength(rounds);
    expect(b).toHaveLength(rounds);

    const db = openSqliteDatabase(dbPath);
    const store = new SqliteEventStore(db);
    let overlapping = 0;
    try {
      for (let k = 0; k < rounds; k++) {
        const pairOutcomes = [a![k]!, b![k]!];
        const errors = pairOutcomes.filter((o) => o.outcome === 'error');
        expect(errors, `round ${k}: ${JSON.stringify(errors)}`).toEqual([]);
        expect(pairOutcomes.map((o) => o.outcome).sort(), `round ${k}`).toEqual(['conflict', 'ok']);
        const loser = pairOutcomes.find((o) => o.outcome === 'conflict')!;
        expect(loser.actual).toBe('1');

        const winnerId = a![k]!.outcome === 'ok' ? 'A' : 'B';
        const stream = store.readStreamSync(`race-${k}`);
        expect(stream.map((e) => [e.revision, (e.data as { by: string }).by])).toEqual([
          [0n, winnerId],
          [1n, winnerId],
        ]);

        if (a![k]!.startedAt < b![k]!.endedAt && b![k]!.startedAt < a![k]!.endedAt) overlapping++;
      }
    } finally {
      db.close();
    }
    // Guards the test itself: if the two calls never overlapped in time, it proved nothing.
    // (Typically ~80% of rounds overlap; the bar is low so a loaded CI machine does not flake.)
    expect(overlapping, 'rounds in which the two appends overlapped in time').toBeGreaterThanOrEqual(rounds / 4);
  });
});
