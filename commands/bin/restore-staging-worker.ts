// Not a command: the worker thread in which ov_restore fills its staging store (see
// commands/use-cases/staging-log.ts). It sits beside the commands so that ov_restore finds it,
// built or bundled, at ./restore-staging-worker.js.
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { EventLineParser } from '../../adapters/archive/backup-archive.js';
import { syncToDisk } from '../../adapters/fs/atomic-file.js';
import { stateLayout } from '../../adapters/fs/state-layout.js';
import { openFreshState } from '../../infra/composition-root.js';
import type { BulkLoader, LoadedEvent } from '../../adapters/eventstore/sqlite-event-store.js';
import type { RowPage } from '../../projections/projected-rows.js';
import type { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
import type { StagingWorkerData, StagingWorkerMessage, StagingWorkerRequest } from '../use-cases/staging-log.js';

const port = parentPort;
if (!port) throw new Error('restore-staging-worker.js is a worker thread of ov_restore, not a command');
const data = workerData as StagingWorkerData;
const send = (m: StagingWorkerMessage) => port.postMessage(m);
const fresh = openFreshState(stateLayout(data.stagingDir));
// The parser copies what it keeps of a chunk, so one buffer serves every read.
const buffer = Buffer.allocUnsafe(1024 * 1024);
let spool: number | undefined;
let offset = 0;
let log: BulkLoader | undefined;
let readModels: ReturnType<SqliteProjectionStore['projectRowsAsWritten']> | undefined;
let parser: EventLineParser | undefined;
/** Lines read from the spool whose rows have not come yet. */
let pending: LoadedEvent[] = [];
let stored = 0n;
/** Events stored in one transaction (and their rows in another): the messages of rows are smaller. */
const STORE_BATCH = 8_192;

const stop = (failure?: unknown) => {
  log = undefined;
  if (spool !== undefined) closeSync(spool);
  spool = undefined;
  if (failure !== undefined) send({ kind: 'failed', message: failure instanceof Error ? failure.message : String(failure) });
  fresh.close();
  port.close();
};

try {
  spool = openSync(data.spoolPath, 'r');
  // The main thread parsed and checked every line: here they are only cut apart for their text.
  parser = new EventLineParser(data.formatVersion, { cut: true });
  log = fresh.store.bulkLoader();
  readModels = fresh.projections.projectRowsAsWritten();
} catch (error) {
  stop(error);
}

/** Reads the spool up to `size` bytes, its lines into `pending`. */
function readTo(size: number, into: EventLineParser, fd: number): void {
  while (offset < size) {
    const n = readSync(fd, buffer, 0, Math.min(buffer.length, size - offset), offset);
    if (n === 0) throw new Error(`the spool of events.ndjson ends at ${offset} bytes, not ${size}`);
    offset += n;
    into.push(buffer.subarray(0, n), (e) => pending.push(e));
  }
}

/** Rows taken on and not stored yet, with how many events they cover. */
let taken: { readonly page: RowPage; readonly userFacts: readonly unknown[] }[] = [];
let takenEvents = 0;

/** Appends the events of the rows taken on, and inserts the rows, in one transaction each. */
function storeTaken(into: BulkLoader, models: NonNullable<typeof readModels>): void {
  if (takenEvents === 0) return;
  if (pending.length < takenEvents) throw new Error(`rows of ${takenEvents} events came for ${pending.length} lines`);
  const events = pending.length === takenEvents ? pending : pending.slice(0, takenEvents);
  pending = pending.length === takenEvents ? [] : pending.slice(takenEvents);
  const positions = into.append(events);
  // The rows were made for the positions the store gives: from 1, without gaps.
  let next = stored + 1n;
  for (const { page } of taken) {
    if (page.count > 0 && page.first !== next) throw new Error(`rows of events ${page.first} to ${page.last} came where event ${next} was due`);
    next += BigInt(page.count);
  }
  if (positions[0] !== stored + 1n || positions.at(-1) !== next - 1n) {
    throw new Error(`events ${stored + 1n} to ${next - 1n} were stored at ${String(positions[0])} to ${String(positions.at(-1))}`);
  }
  stored = next - 1n;
  models.apply(taken);
  taken = [];
  takenEvents = 0;
}

port.on('message', (m: StagingWorkerRequest) => {
  if (!log || !readModels || !parser || spool === undefined) return;
  try {
    readTo(m.size, parser, spool);
    if (m.kind === 'rows') {
      taken.push({ page: m.page, userFacts: m.users });
      takenEvents += m.page.count;
      send({ kind: 'taken' });
      if (takenEvents >= STORE_BATCH) storeTaken(log, readModels);
      return;
    }
    parser.end();
    storeTaken(log, readModels);
    if (pending.length > 0) throw new Error(`${pending.length} events came without their rows`);
    log.finish();
    const events = readModels.finish();
    fresh.close();
    // The store's file is most of what ov_restore flushes before it swaps the staging directory
    // in; flushed here, while the main thread still checks keys and profiles, that last flush has
    // little left to write.
    syncToDisk(stateLayout(data.stagingDir).database);
    send({ kind: 'done', events });
    stop();
  } catch (error) {
    stop(error);
  }
});
