import { performance } from 'node:perf_hooks';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
const store = EsdbEventStore.connect(process.argv[2]!);
const t = performance.now(); let after = 0n; let count = 0;
for (;;) { const page = await store.readAll({ after, limit: 5000 }); if (page.length === 0) break; count += page.length; after = page.at(-1)!.position; }
const ms = performance.now() - t;
console.log('read', count, ms.toFixed(0), 'ms', Math.round(count / ms * 1000), 'ev/s');
await store.close();
