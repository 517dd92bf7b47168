// The CRL's entries: every revoked serial with when and why. Pure; the CRL file itself is rendered
// from these rows by adapters/pki.
import type { Envelope, ProfileEvent } from '../domain/events.js';
import type { CrlReason } from '../domain/values.js';

export interface CrlEntry {
  readonly serial: string;
  readonly revokedAt: string;
  readonly reason: CrlReason;
}

export function crlEntriesFrom(event: Envelope<ProfileEvent>): CrlEntry[] {
  if (event.type !== 'ProfileRevoked') return [];
  return event.data.serials.map((serial) => ({
    serial,
    revokedAt: event.metadata.at,
    reason: event.data.crlReason,
  }));
}
