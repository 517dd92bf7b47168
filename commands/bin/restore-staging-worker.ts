// Not a command: the worker thread in which ov_restore fills its staging store (see
// commands/use-cases/staging-log.ts). It sits beside the commands so that ov_restore finds it,
// built or bundled, at ./restore-staging-worker.js.
import { parentPort, workerData } from 'node:worker_threads';
import { stateLayout } from '../../adapters/fs/state-layout.js';
import { openFreshState } from '../../infra/composition-root.js';
import { StagingLogLoader, type StagingWorkerData, type StagingWorkerMessage } from '../use-cases/staging-log.js';

const port = parentPort;
if (!port) throw new Error('restore-staging-worker.js is a worker thread of ov_restore, not a command');
const data = workerData as StagingWorkerData;
const send = (m: StagingWorkerMessage) => port.postMessage(m);
const fresh = openFreshState(stateLayout(data.stagingDir));
let loader: StagingLogLoader | undefined;
try {
  loader = new StagingLogLoader(fresh, data.formatVersion);
} catch (error) {
  send({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
  fresh.close();
  port.close();
}

port.on('message', (m: { readonly kind: 'bytes'; readonly buffer: ArrayBuffer } | { readonly kind: 'end' }) => {
  if (!loader) return;
  try {
    if (m.kind === 'bytes') {
      loader.bytes(Buffer.from(m.buffer));
      send({ kind: 'ack', bytes: m.buffer.byteLength });
      return;
    }
    const events = loader.end();
    fresh.close();
    send({ kind: 'done', events });
    port.close();
  } catch (error) {
    loader = undefined;
    send({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
    fresh.close();
    port.close();
  }
});
