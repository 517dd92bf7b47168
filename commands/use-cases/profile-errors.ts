// The domain's typed errors, said the way an operator needs to hear them.
import type { ProfileError } from '../../domain/profile-decider.js';
import type { Traffic } from '../../domain/values.js';
import { refused, type Failure } from '../failure.js';

export function explainProfileError(e: ProfileError, pair: { email: string; traffic: Traffic }): Failure {
  switch (e.kind) {
    case 'ProfileAlreadyActive':
      return refused(
        `${pair.email} already has an active ${pair.traffic} profile (expires ${e.expirationDate}); delete it first with ov_user_delete --email ${pair.email} --traffic ${pair.traffic}`,
      );
    case 'NoActiveProfile':
      return refused(`${pair.email} has no active ${pair.traffic} profile`);
    case 'ExpirationNotAfterToday':
      return { exitCode: 2, message: `--expiration-date ${e.expirationDate} must be after today (${e.today})` };
    case 'AutoRenewOff':
      return refused(`auto-renew is off for the ${pair.traffic} profile of ${pair.email}`);
    case 'NotDueForRenewal':
      return refused(`the ${pair.traffic} profile of ${pair.email} expires ${e.expirationDate}: not due for renewal before ${e.dueFrom}`);
    case 'UnknownRenewalCertificate':
      return refused(`certificate ${e.serial} was not prepared for a renewal of this profile`);
  }
}
