import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
import { EsdbTestDouble } from '../support/esdb-test-double.js';
import { SyntheticProfiles } from '../support/synthetic-profile-events.js';
const N = Number(process.argv[2] ?? 100000);
const double = await EsdbTestDouble.start();
const pem = '-----BEGIN CERTIFICATE-----\n' + 'A'.repeat(1600) + '\n-----END CERTIFICATE-----\n';
const syn = new SyntheticProfiles(pem);
let t = performance.now();
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
let n = 0; let i = 0;
while (n < N) { const p = syn.profile(i); const evs = syn.stream(p, i, 10, i % 3 === 0); i++;
  double.appendDirect(p.streamId, { kind: 'no_stream' }, evs.map(e => ({ id: randomUUID(), type: e.type, contentType: 'application/json', data: enc(e.data), customMetadata: enc({ schemaVersion: e.schemaVersion, metadata: e.metadata }) })));
  n += evs.length; }
console.log('seeded', n, (performance.now() - t).toFixed(0), 'ms');
const store = EsdbEventStore.connect(double.connectionString);
t = performance.now(); let after = 0n; let count = 0;
for (;;) { const page = await store.readAll({ after, limit: 5000 }); if (page.length === 0) break; count += page.length; after = page.at(-1)!.position; }
const ms = performance.now() - t;
console.log('read', count, ms.toFixed(0), 'ms', Math.round(count / ms * 1000), 'ev/s');
await store.close(); await double.stop();
