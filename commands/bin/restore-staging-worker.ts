// Not a command: the worker thread in which ov_restore fills its staging store (see
// commands/use-cases/staging-log.ts). It sits beside the commands so that ov_restore finds it,
// built or bundled, at ./restore-staging-worker.js.
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import * as E from 'fp-ts/lib/Either.js';
import { EventLineParser } from '../../adapters/archive/backup-archive.js';
import { syncToDisk } from '../../adapters/fs/atomic-file.js';
import { stateLayout } from '../../adapters/fs/state-layout.js';
import { decodeStoredEvent, describeDecodeError } from '../../domain/upcasters.js';
import { openFreshState } from '../../infra/composition-root.js';
import { StagingLogLoader, type StagingWorkerData, type StagingWorkerMessage, type StagingWorkerRequest } from '../use-cases/staging-log.js';

const port = parentPort;
if (!port) throw new Error('restore-staging-worker.js is a worker thread of ov_restore, not a command');
const data = workerData as StagingWorkerData;
const send = (m: StagingWorkerMessage) => port.postMessage(m);
const fresh = openFreshState(stateLayout(data.stagingDir));
// The parser copies what it keeps of a chunk, so one buffer serves every read.
const buffer = Buffer.allocUnsafe(1024 * 1024);
let spool: number | undefined;
let offset = 0;
let loader: StagingLogLoader | undefined;
let parser: EventLineParser | undefined;

const stop = (failure?: unknown) => {
  loader = undefined;
  if (spool !== undefined) closeSync(spool);
  spool = undefined;
  if (failure !== undefined) send({ kind: 'failed', message: failure instanceof Error ? failure.message : String(failure) });
  fresh.close();
  port.close();
};

try {
  spool = openSync(data.spoolPath, 'r');
  parser = new EventLineParser(data.formatVersion, { keepJson: true });
  loader = new StagingLogLoader(fresh);
} catch (error) {
  stop(error);
}

port.on('message', (m: StagingWorkerRequest) => {
  if (!loader || !parser || spool === undefined) return;
  const into = loader;
  try {
    while (offset < m.size) {
      const n = readSync(spool, buffer, 0, Math.min(buffer.length, m.size - offset), offset);
      if (n === 0) throw new Error(`the spool of events.ndjson ends at ${offset} bytes, not ${m.size}`);
      offset += n;
      // The main thread checks every line; a line that fails here is this worker's fault, not the archive's.
      parser.push(buffer.subarray(0, n), (e) => {
        const decoded = decodeStoredEvent(e);
        if (E.isLeft(decoded)) throw new Error(`event at position ${e.position}: ${describeDecodeError(decoded.left)}`);
        into.add(e, decoded.right);
      });
    }
    if (m.kind === 'grown') return;
    parser.end();
    const events = into.end();
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
