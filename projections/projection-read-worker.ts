// Not a command: the worker thread of a whole-log projection pass (see projection-read-pipeline.ts).
// It claims pages of the embedded log from the counter it shares with the main thread, reads them
// through a read-only connection of its own, decodes each event exactly as the single-thread pass
// does (zod and upcasters), projects it with the same code into flat rows, and sends the rows a
// page at a time, never more than `window` pages ahead of what the main thread took. The user
// rows it folds itself, in log order: from its own pages, and from the user facts the main thread
// sends of the pages it projected. Once every page is folded it sends the rows, as the table's
// columns in key order.
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteLogReader } from '../adapters/eventstore/sqlite-event-store.js';
import { describeDecodeError } from '../domain/upcasters.js';
import { foldUserFacts, projectStoredPage, sortedUserColumns } from './projected-rows.js';
import { pageCount, pageRange, type MainMessage, type ReadWorkerData, type ReadWorkerMessage } from './projection-read-pipeline.js';
import type { UserRow } from './user-list.js';

if (!parentPort) throw new Error('projection-read-worker.js is a worker thread of the projection store, not a command');
const port = parentPort;
const data = workerData as ReadWorkerData;
const send = (m: ReadWorkerMessage): void => port.postMessage(m);
const claims = new Int32Array(data.claims);
const pages = pageCount(data.after, data.head, data.pageSize);
const users = new Map<string, UserRow | undefined>();
/** The user facts of pages projected but not yet folded (an earlier page is not folded yet). */
const unfolded = new Map<number, readonly unknown[]>();

let reader: SqliteLogReader | undefined;
/** The next page to fold into the user rows. */
let folded = 0;
let unacknowledged = 0;
let claimedAll = false;
let done = false;

function finish(m: ReadWorkerMessage): void {
  done = true;
  send(m);
  reader?.close();
  port.close();
}

/** Folds the pages whose facts are in, in order; when all are, sends the user rows. */
function foldInOrder(): void {
  for (let facts = unfolded.get(folded); facts !== undefined; facts = unfolded.get(folded)) {
    unfolded.delete(folded);
    foldUserFacts(facts, users);
    folded++;
  }
  if (folded === pages && !done) finish({ kind: 'end', userColumns: sortedUserColumns(users) });
}

/** Claims, reads, decodes and projects pages until `window` are in flight or all are claimed. */
function fill(): void {
  try {
    reader ??= new SqliteLogReader(data.file);
    while (!done && !claimedAll && unacknowledged < data.window) {
      const index = Atomics.add(claims, 0, 1);
      if (index >= pages) {
        claimedAll = true;
        break;
      }
      const range = pageRange(data, index);
      // A page next in line is folded as it is projected; a later one keeps its facts until the
      // pages before it (the main thread's) are folded.
      const inLine = index === folded;
      const { page, facts, invalid } = projectStoredPage(reader.readAll({ after: range.after, limit: data.pageSize }), range.upTo, inLine ? users : undefined);
      if (invalid) {
        const { position, streamId } = invalid.stored;
        return finish({ kind: 'invalid', index, position, streamId, message: describeDecodeError(invalid.error) });
      }
      unacknowledged++;
      send({ kind: 'page', index, ...page });
      if (inLine) folded++;
      else unfolded.set(index, facts);
      foldInOrder();
    }
  } catch (error) {
    finish({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
  }
}

port.on('message', (m: MainMessage) => {
  if (done) return;
  if (m.kind === 'facts') {
    unfolded.set(m.index, m.facts);
    foldInOrder();
  } else unacknowledged--;
  fill();
});
fill();
