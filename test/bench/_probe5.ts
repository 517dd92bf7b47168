import { performance } from 'node:perf_hooks';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordedEvent } from '../../adapters/eventstore/event-store.js';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { openSqliteDatabase } from '../../adapters/sqlite/open-database.js';
import { SqliteProjectionStore } from '../../projections/sqlite-projection-store.js';
const store = EsdbEventStore.connect(process.argv[2]!);
const db = openSqliteDatabase(join(mkdtempSync(join(tmpdir(), 'probe-')), 'l.sqlite'));
const projections = new SqliteProjectionStore(db, { encodeCrlEntry: (e) => encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason }) });
let pending: Promise<RecordedEvent[]> | undefined; let pendingAfter = -1n;
const c0 = process.cpuUsage(); const t = performance.now();
const n = await projections.catchUp(async (after, limit) => {
  const page = pending && pendingAfter === after ? await pending : await store.readAll({ after, limit });
  pending = undefined;
  if (page.length === limit) { pendingAfter = page.at(-1)!.position; pending = store.readAll({ after: pendingAfter, limit }); }
  return page;
});
const cpu = process.cpuUsage(c0); const ms = performance.now() - t;
console.log('caught up (prefetch)', n, ms.toFixed(0), 'ms', Math.round(n / ms * 1000), 'ev/s', ((cpu.user+cpu.system)/1000).toFixed(0), 'ms cpu');
await store.close();
