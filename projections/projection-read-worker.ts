// Not a command: the worker thread of a whole-log projection pass (see projection-read-pipeline.ts).
// It reads the embedded log after a position through a read-only connection of its own, decodes
// each event exactly as the single-thread pass does (zod and upcasters), projects it with the same
// projectEvent into flat rows, and sends them a page at a time, never more than `window` pages
// ahead of what the main thread inserted. The user rows it keeps, and sends once at the end, as
// the table's columns in key order, after saying that the pages are all sent.
import { parentPort, workerData } from 'node:worker_threads';
import * as E from 'fp-ts/lib/Either.js';
import { SqliteLogReader } from '../adapters/eventstore/sqlite-event-store.js';
import { decodeStoredEvent, describeDecodeError } from '../domain/upcasters.js';
import { emptyRowPage, projectEvent, rowPageSink, sortedUserColumns } from './projected-rows.js';
import type { MainMessage, ReadWorkerData, ReadWorkerMessage } from './projection-read-pipeline.js';
import type { UserRow } from './user-list.js';

if (!parentPort) throw new Error('projection-read-worker.js is a worker thread of the projection store, not a command');
const port = parentPort;
const data = workerData as ReadWorkerData;
const send = (m: ReadWorkerMessage): void => port.postMessage(m);
const users = new Map<string, UserRow | undefined>(data.users);
const none = (): undefined => undefined;

let reader: SqliteLogReader | undefined;
let after = data.after;
let unacknowledged = 0;
let done = false;

function finish(m: ReadWorkerMessage): void {
  done = true;
  send(m);
  reader?.close();
  port.close();
}

/** Reads, decodes and projects pages until `window` are in flight or the log ends. */
function fill(): void {
  try {
    reader ??= new SqliteLogReader(data.file);
    while (!done && unacknowledged < data.window) {
      const stored = reader.readAll({ after, limit: data.pageSize });
      if (stored.length === 0) {
        send({ kind: 'drained' });
        return finish({ kind: 'end', userColumns: sortedUserColumns(users) });
      }
      const page = emptyRowPage();
      page.first = stored[0]!.position;
      const sink = rowPageSink(page);
      for (const s of stored) {
        const decoded = decodeStoredEvent(s);
        if (E.isLeft(decoded)) {
          if (page.count > 0) send({ kind: 'page', ...page });
          return finish({ kind: 'invalid', position: s.position, streamId: s.streamId, message: describeDecodeError(decoded.left) });
        }
        projectEvent(decoded.right, sink, users, none);
        page.count++;
        page.last = s.position;
      }
      after = page.last;
      unacknowledged++;
      send({ kind: 'page', ...page });
    }
  } catch (error) {
    finish({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
  }
}

port.on('message', (m: MainMessage) => {
  if (m.kind !== 'ack' || done) return;
  unacknowledged--;
  fill();
});
fill();
