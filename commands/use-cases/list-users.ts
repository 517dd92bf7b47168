// ov_user_list and ov_user_list_expired: answered from the user-list read model, never the log.
import { utcDateOf } from '../../domain/values.js';
import type { Ledger } from '../ledger.js';

export type ListFormat = 'table' | 'json';

/** Active profiles in (email, traffic) order, one rendered line (or JSON object) each. */
export function listUsers(ledger: Ledger, format: ListFormat): string[] {
  return ledger.projections.renderedUsers({}, format);
}

/** Active profiles whose expiration date has passed: report only, nothing is revoked. */
export function listExpiredUsers(ledger: Ledger, format: ListFormat): string[] {
  return ledger.projections.renderedUsers({ expiredBefore: utcDateOf(ledger.clock.now()) }, format);
}
