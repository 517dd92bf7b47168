// Not a command: the worker thread in which ov_restore fills its staging store (see
// commands/use-cases/staging-log.ts). It sits beside the commands so that ov_restore finds it,
// built or bundled, at ./restore-staging-worker.js.
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { stateLayout } from '../../adapters/fs/state-layout.js';
import { openFreshState } from '../../infra/composition-root.js';
import { StagingLogLoader, type StagingWorkerData, type StagingWorkerMessage, type StagingWorkerRequest } from '../use-cases/staging-log.js';

const port = parentPort;
if (!port) throw new Error('restore-staging-worker.js is a worker thread of ov_restore, not a command');
const data = workerData as StagingWorkerData;
const send = (m: StagingWorkerMessage) => port.postMessage(m);
const fresh = openFreshState(stateLayout(data.stagingDir));
// The loader copies what it keeps of a chunk, so one buffer serves every read.
const buffer = Buffer.allocUnsafe(1024 * 1024);
let spool: number | undefined;
let offset = 0;
let loader: StagingLogLoader | undefined;

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
  loader = new StagingLogLoader(fresh, data.formatVersion);
} catch (error) {
  stop(error);
}

port.on('message', (m: StagingWorkerRequest) => {
  if (!loader || spool === undefined) return;
  try {
    while (offset < m.size) {
      const n = readSync(spool, buffer, 0, Math.min(buffer.length, m.size - offset), offset);
      if (n === 0) throw new Error(`the spool of events.ndjson ends at ${offset} bytes, not ${m.size}`);
      loader.bytes(buffer.subarray(0, n));
      offset += n;
    }
    if (m.kind === 'grown') return;
    const events = loader.end();
    send({ kind: 'done', events });
    stop();
  } catch (error) {
    stop(error);
  }
});
