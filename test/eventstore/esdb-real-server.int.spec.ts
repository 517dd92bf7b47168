// The contract suite against a REAL EventStoreDB (or KurrentDB) server: the authority on whether
// EsdbEventStore is right, since the test double can only be as faithful as our reading of the
// server's documentation. No server can run on our CI machines, so this runs only when
// OVL_TEST_ESDB holds a connection string (see README, "EventStoreDB"), and says so when skipped.
//
// The server is shared and not empty (its own system events, earlier runs): every test writes
// to streams of its own and checks only what comes after the head it saw first. Do not let
// anything else append to that server while the suite runs.

import { describe, it } from 'vitest';
import { EsdbEventStore } from '../../adapters/eventstore/esdb-event-store.js';
import { describeEventStoreContract } from './event-store-contract.js';

const connectionString = process.env['OVL_TEST_ESDB']?.trim();

if (connectionString) {
  describeEventStoreContract(
    `EsdbEventStore on the real EventStoreDB server from OVL_TEST_ESDB`,
    async () => {
      const store = EsdbEventStore.connect(connectionString);
      return { store, cleanup: () => store.close() };
    },
    { densePositions: false, sharedStore: true },
  );
} else {
  // The default reporter shows a skipped file only as "1 skipped": say it in words as well.
  console.warn('EventStoreDB contract SKIPPED: set OVL_TEST_ESDB=esdb://localhost:2113?tls=false to run it against a real server');
  describe.skip('EventStoreDB contract SKIPPED: set OVL_TEST_ESDB=esdb://localhost:2113?tls=false to run it against a real server', () => {
    it('EventStoreDB contract SKIPPED: set OVL_TEST_ESDB=esdb://localhost:2113?tls=false to run it against a real server', () => undefined);
  });
}
