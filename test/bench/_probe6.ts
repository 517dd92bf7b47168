import { performance } from 'node:perf_hooks';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
const ra = process.argv[3] !== 'off';
const store = EsdbEventStore.connect(process.argv[2]!, { readAhead: ra });
let after = 0n; let count = 0; let pages = 0; const t = performance.now(); const c0 = process.cpuUsage();
let ahead = 0;
for (;;) { const page = await store.readAll({ after, limit: 5000 }); if ((store as unknown as { ahead?: unknown }).ahead) ahead++; if (page.length === 0) break; count += page.length; pages++; after = page.at(-1)!.position; }
const cpu = process.cpuUsage(c0);
console.log(ra ? 'read-ahead' : 'direct', count, 'pages', pages, 'with ahead active', ahead, (performance.now() - t).toFixed(0), 'ms', ((cpu.user+cpu.system)/1000).toFixed(0), 'ms cpu (main+worker)');
await store.close();
