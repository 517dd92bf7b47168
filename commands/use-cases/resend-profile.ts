// ov_user_resend: deliver the newest profile of the pair again, byte for byte as it was issued.
import { existsSync, readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { MailDeliveryError } from '../../adapters/mail/profile-mailer.js';
import { decide } from '../../domain/profile-decider.js';
import type { Email, Traffic } from '../../domain/values.js';
import type { EmailSettings } from '../../infra/config/email-conf.js';
import { deliveryFailed, refused, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { attachmentName, deliver } from './deliver-profile.js';
import { explainProfileError } from './profile-errors.js';
import { appendAndProject, loadProfile } from './profile-stream.js';

export interface ResendResult {
  readonly serial: string;
  readonly delivery: string;
}

export async function resendProfile(
  ledger: Ledger,
  input: { email: Email; traffic: Traffic },
  settings: EmailSettings,
): Promise<E.Either<Failure, ResendResult>> {
  const loaded = await loadProfile(ledger, input.email, input.traffic);
  if (loaded.state.status !== 'active') return E.left(explainProfileError({ kind: 'NoActiveProfile' }, input));
  const profile = loaded.state.profile;
  const path = ledger.layout.profile(profile.profileId, profile.currentSerial);
  if (!existsSync(path)) {
    return E.left(refused(`the profile file ${path} is missing; restore it from a backup, or delete and re-add the user`));
  }
  let delivery: string;
  try {
    delivery = await deliver(ledger, settings, {
      to: profile.email,
      firstName: profile.firstName,
      lastName: profile.lastName,
      traffic: profile.traffic,
      kind: 'resent',
      expirationDate: profile.expirationDate,
      attachmentName: attachmentName(profile.traffic),
      profile: readFileSync(path),
    });
  } catch (error) {
    if (!(error instanceof MailDeliveryError)) throw error;
    const failed = decide(
      { type: 'RecordDeliveryFailure', serial: profile.currentSerial, delivery: 'resent', error: error.message },
      loaded.state,
    );
    if (E.isRight(failed)) await appendAndProject(ledger, loaded.streamId, 'any', failed.right);
    return E.left(deliveryFailed(`the profile was not sent: ${error.message}`));
  }
  const decision = decide({ type: 'RecordResend', via: settings.delivery }, loaded.state);
  if (E.isLeft(decision)) return E.left(explainProfileError(decision.left, input));
  // 'any': the mail is already out; recording that it went must not fail on a concurrent change.
  await appendAndProject(ledger, loaded.streamId, 'any', decision.right);
  return E.right({ serial: profile.currentSerial, delivery });
}
