// Runs the EventStoreDB TEST DOUBLE (not an EventStoreDB: see esdb-test-double.ts) as a process
// of its own, for benchmarks and for trying a fleet of gateways on one machine:
//
//   npm run build && node dist/test/support/esdb-test-double-main.js [--port 2113]
//        [--seed-events N --seed-pem FILE]
//
// It prints `listening esdb://127.0.0.1:PORT?tls=false` on stdout once it accepts connections,
// keeps everything in memory, and exits on SIGTERM or SIGINT. With --seed-events it first writes
// N made-up but valid ledger events (profiles of 10 events, a third of them revoked; the
// certificate PEM from FILE reused), in the bytes EsdbEventStore would have sent, and prints
// `seeded N events in S s` before listening.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { SyntheticProfiles } from './synthetic-profile-events.js';
import { EsdbTestDouble } from './esdb-test-double.js';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const port = Number(option('port') ?? 0);
const seedEvents = Number(option('seed-events') ?? 0);
const seedPem = option('seed-pem');
if (!Number.isInteger(port) || port < 0 || port > 65535 || !Number.isInteger(seedEvents) || seedEvents < 0 || (seedEvents > 0 && !seedPem)) {
  process.stderr.write('usage: esdb-test-double-main.js [--port N] [--seed-events N --seed-pem FILE]\n');
  process.exit(2);
}

const double = await EsdbTestDouble.start({ port });
if (seedEvents > 0) {
  const started = performance.now();
  const synthetic = new SyntheticProfiles(readFileSync(seedPem!, 'utf8'));
  const encoder = new TextEncoder();
  let written = 0;
  for (let i = 0; written < seedEvents; i++) {
    const profile = synthetic.profile(i, 'seed');
    const events = synthetic.stream(profile, i, Math.min(10, Math.max(2, seedEvents - written)), i % 3 === 0);
    const outcome = double.appendDirect(
      profile.streamId,
      { kind: 'no_stream' },
      events.map((e) => ({
        id: randomUUID(),
        type: e.type,
        contentType: 'application/json',
        data: encoder.encode(JSON.stringify(e.data)),
        customMetadata: encoder.encode(JSON.stringify({ schemaVersion: e.schemaVersion, metadata: e.metadata })),
      })),
    );
    if (!outcome.ok) throw new Error(`seeding ${profile.streamId} conflicted`);
    written += events.length;
  }
  process.stdout.write(`seeded ${written} events in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}
process.stdout.write(`listening ${double.connectionString}\n`);
const stop = (): void => {
  void double.stop().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
