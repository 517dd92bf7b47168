// Valid ledger events for made-up profiles, for tests and benchmarks that need many events fast
// (no key generation, no signing): every event passes the domain's schemas and is projected like
// a real one. The certificate PEM is one real certificate reused; serials are unique and random.
import { randomBytes } from 'node:crypto';
import type { NewEvent } from '../../adapters/eventstore/event-store.js';
import { TOOL_NAME } from '../../commands/version.js';
import { CURRENT_SCHEMAS, type EventType } from '../../domain/events.js';

export interface SyntheticProfile {
  readonly streamId: string;
  readonly profileId: string;
  readonly email: string;
  readonly serial: string;
}

/** A positive, minimally encoded 16-byte serial as lower-case hex. */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

export class SyntheticProfiles {
  private readonly metadata: { actor: string; at: string; tool: string };

  constructor(
    private readonly pem: string,
    private readonly now: Date = new Date(),
    actor = 'synthetic',
  ) {
    this.metadata = { actor, at: now.toISOString(), tool: TOOL_NAME };
  }

  /** The i-th made-up profile (unique email and stream; a fresh serial each call). */
  profile(i: number, tag = 'syn'): SyntheticProfile {
    const profileId = `p${randomBytes(12).toString('hex')}`;
    return { streamId: `profile-${profileId}`, profileId, email: `${tag}.user${i}@example.org`, serial: randomSerial() };
  }

  event(type: EventType, data: unknown): NewEvent {
    return { type, schemaVersion: CURRENT_SCHEMAS[type].version, data, metadata: this.metadata };
  }

  issued(p: SyntheticProfile, i: number): NewEvent {
    const notBefore = new Date(Math.floor(this.now.getTime() / 1000) * 1000 - 300_000);
    const expirationDate = new Date(this.now.getTime() + 180 * 86_400_000).toISOString().slice(0, 10);
    return this.event('ProfileIssued', {
      profileId: p.profileId,
      generation: 1,
      email: p.email,
      traffic: 'all',
      firstName: 'Synthetic',
      lastName: `User ${i}`,
      expirationDate,
      reason: 'synthetic load',
      autoRenew: false,
      certificate: {
        serial: p.serial,
        notBefore: notBefore.toISOString(),
        notAfter: `${expirationDate}T23:59:59.000Z`,
        pem: this.pem,
      },
      routes: [],
    });
  }

  resent(p: SyntheticProfile): NewEvent {
    return this.event('ProfileResent', { serial: p.serial, via: 'outbox' });
  }

  autoRenew(enabled: boolean): NewEvent {
    return this.event(enabled ? 'AutoRenewEnabled' : 'AutoRenewDisabled', {});
  }

  revoked(p: SyntheticProfile): NewEvent {
    return this.event('ProfileRevoked', { serials: [p.serial], reason: 'synthetic revocation', crlReason: 'cessationOfOperation' });
  }

  /**
   * One profile's whole stream of `length` events (at least 2): issued, then resends and
   * auto-renew toggles, and revoked last when `revoke` is set.
   */
  stream(p: SyntheticProfile, i: number, length: number, revoke: boolean): NewEvent[] {
    const events: NewEvent[] = [this.issued(p, i)];
    let enabled = false;
    while (events.length < length - (revoke ? 1 : 0)) {
      if (events.length % 3 === 0) events.push(this.resent(p));
      else {
        enabled = !enabled;
        events.push(this.autoRenew(enabled));
      }
    }
    if (revoke) events.push(this.revoked(p));
    return events;
  }
}
