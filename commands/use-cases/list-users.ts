// ov_user_list and ov_user_list_expired: answered from the user-list read model, never the log.
import { utcDateOf } from '../../domain/values.js';
import type { UserRow } from '../../projections/user-list.js';
import type { Ledger } from '../ledger.js';

export interface ListedUser {
  readonly email: string;
  readonly traffic: string;
  readonly firstName: string;
  readonly lastName: string;
  readonly expirationDate: string;
  readonly createdAt: string;
  readonly autoRenew: boolean;
  readonly serial: string;
  readonly renewals: number;
}

const listed = (u: UserRow): ListedUser => ({
  email: u.email,
  traffic: u.traffic,
  firstName: u.firstName,
  lastName: u.lastName,
  expirationDate: u.expirationDate,
  createdAt: u.createdAt,
  autoRenew: u.autoRenew,
  serial: u.currentSerial,
  renewals: u.renewals,
});

export function listUsers(ledger: Ledger): ListedUser[] {
  return ledger.projections.activeUsers().map(listed);
}

/** Active profiles whose expiration date has passed: report only, nothing is revoked. */
export function listExpiredUsers(ledger: Ledger): ListedUser[] {
  return ledger.projections.expiredUsers(utcDateOf(ledger.clock.now())).map(listed);
}
