import { InMemoryEventStore } from '../../adapters/eventstore/in-memory-event-store.js';
import { describeEventStoreContract } from './event-store-contract.js';

describeEventStoreContract('InMemoryEventStore', async () => ({
  store: new InMemoryEventStore(),
  cleanup: async () => {},
}));
