// Is a profile stream's history one this release's rules could have written? Used when a log comes
// from outside the store (a backup being restored): replaying it must not only parse, every event
// must follow from the state before it, the way the decider decides.
//
// Events that commands append with expectedRevision 'any' (a resend, a delivery failure, a
// completed or failed renewal: recorded after the mail went out, whatever happened meanwhile) may
// legitimately follow a revocation; evolve() ignores them then, and so does this check.
import type { ProfileEvent } from './events.js';
import { nextGeneration, type ProfileState } from './profile-decider.js';

/** Why `event` cannot follow `state` in stream `streamId`, or undefined when it can. */
export function historyViolation(state: ProfileState, event: ProfileEvent, streamId: string): string | undefined {
  if (event.type === 'ProfileIssued') {
    const d = event.data;
    if (streamId !== `profile-${d.profileId}`) return `ProfileIssued for profile ${d.profileId} is in stream ${streamId}`;
    if (state.status === 'active') return `ProfileIssued while generation ${state.profile.generation} is still active`;
    const generation = nextGeneration(state);
    if (d.generation !== generation) return `ProfileIssued has generation ${d.generation}, expected ${generation}`;
    if (d.traffic === 'all' && d.routes.length > 0) return 'ProfileIssued for an all (full tunnel) profile carries routes';
    return undefined;
  }
  if (state.status === 'never-issued') return `${event.type} before the profile was ever issued`;
  const active = state.status === 'active' ? state.profile : undefined;
  const holds = (serial: string) => active?.certificates.some((c) => c.serial === serial) ?? false;

  switch (event.type) {
    case 'ProfileRevoked': {
      if (!active) return 'ProfileRevoked while the profile is not active';
      const unknown = event.data.serials.find((s) => !holds(s));
      return unknown === undefined ? undefined : `ProfileRevoked names serial ${unknown}, which is not a certificate of this profile`;
    }
    case 'AutoRenewEnabled':
    case 'AutoRenewDisabled':
    case 'RenewalCertificateIssued':
      return active ? undefined : `${event.type} while the profile is not active`;
    case 'ProfileRenewed': {
      if (!active) return undefined;
      const pending = active.pendingRenewals.find((r) => r.serial === event.data.certificate.serial);
      if (!pending) return `ProfileRenewed to serial ${event.data.certificate.serial}, which no RenewalCertificateIssued announced`;
      if (pending.certificate.pem !== event.data.certificate.pem) return `ProfileRenewed carries another certificate than the one announced for serial ${pending.serial}`;
      if (event.data.previousSerial !== active.currentSerial) {
        return `ProfileRenewed replaces serial ${event.data.previousSerial}, but the current one is ${active.currentSerial}`;
      }
      return undefined;
    }
    case 'ProfileResent':
    case 'ProfileDeliveryFailed':
      if (!active || holds(event.data.serial)) return undefined;
      return `${event.type} names serial ${event.data.serial}, which is not a certificate of this profile`;
    case 'RenewalFailed': {
      const abandoned = event.data.abandonedSerial;
      if (!active || abandoned === undefined || holds(abandoned)) return undefined;
      return `RenewalFailed abandons serial ${abandoned}, which is not a certificate of this profile`;
    }
  }
}
