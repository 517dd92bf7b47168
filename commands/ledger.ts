// What a use case needs from the world, as one interface. infra/composition-root.ts builds it
// from real adapters; tests can build it from in-memory ones.
import type { Logger } from 'pino';
import type { Clock } from '../adapters/clock/clock.js';
import type { EventStore, RecordedEvent } from '../adapters/eventstore/event-store.js';
import type { StateLayout } from '../adapters/fs/state-layout.js';
import type { ProfileMailer } from '../adapters/mail/profile-mailer.js';
import type { CrlPublisher } from '../adapters/pki/crl-publisher.js';
import type { LeaseResult } from '../adapters/sqlite/job-lease.js';
import type { Traffic } from '../domain/values.js';
import type { EmailSettings } from '../infra/config/email-conf.js';
import type { GatewaySettings } from '../infra/config/gateway-conf.js';
import type { SqliteProjectionStore } from '../projections/sqlite-projection-store.js';

export interface Ledger {
  readonly layout: StateLayout;
  readonly store: EventStore;
  readonly projections: SqliteProjectionStore;
  readonly crl: CrlPublisher;
  readonly clock: Clock;
  readonly actor: string;
  readonly log: Logger;
  readonly random: (bytes: number) => Buffer;
  readonly settings: GatewaySettings;
  /** The opaque, stable id of an (email, traffic) pair: keyed hash, so no personal data leaks into ids. */
  profileIdOf(email: string, traffic: Traffic): string;
  /** Applies every event not yet in the read models. */
  catchUp(): Promise<void>;
  createMailer(settings: EmailSettings): Promise<ProfileMailer>;
  /**
   * Calls `visit` with every event in global order as of one instant, while other commands go on
   * appending: the embedded store reads inside ONE read transaction (WAL: writers are not
   * blocked); EventStoreDB is read up to the head position seen when the snapshot starts ($all is
   * append-only). When `visit` returns a promise (the backup waiting for its compression), the
   * next event waits for it. `source` says which log was read, for the operator.
   */
  readEventSnapshot(
    visit: (event: RecordedEvent) => void | Promise<void>,
  ): Promise<{ readonly count: number; readonly lastPosition: bigint; readonly source: string }>;
  /** Exclusive lease for a job; see adapters/sqlite/job-lease.ts. */
  acquireLease(name: string, termMs: number): LeaseResult;
  close(): Promise<void>;
}

/** Loads email.conf; a missing or invalid file is an error the operator must fix before anything happens. */
export type EmailSettingsLoader = () => EmailSettingsResult;
export type EmailSettingsResult = { ok: true; settings: EmailSettings } | { ok: false; message: string };
