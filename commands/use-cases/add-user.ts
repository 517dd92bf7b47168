// ov_user_add: issue a profile for an (email, traffic) pair and mail it.
import * as E from 'fp-ts/lib/Either.js';
import { WrongExpectedRevisionError } from '../../adapters/eventstore/event-store.js';
import { MailDeliveryError } from '../../adapters/mail/profile-mailer.js';
import { checkIssuable, decide } from '../../domain/profile-decider.js';
import { utcDateOf, type CalendarDate, type Email, type Traffic } from '../../domain/values.js';
import type { EmailSettings } from '../../infra/config/email-conf.js';
import { deliveryFailed, refused, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { currentRoutes } from './gateway-networks.js';
import { prepareClientProfile } from './issue-client-profile.js';
import { explainProfileError } from './profile-errors.js';
import { appendAndProject, loadProfile } from './profile-stream.js';
import { attachmentName, deliver } from './deliver-profile.js';

export interface AddUserInput {
  readonly firstName: string;
  readonly lastName: string;
  readonly email: Email;
  readonly traffic: Traffic;
  readonly expirationDate: CalendarDate;
  readonly reason: string;
  readonly autoRenew: boolean;
}

export interface AddUserResult {
  readonly profileId: string;
  readonly serial: string;
  readonly notAfter: string;
  readonly profilePath: string;
  readonly delivery: string;
}

/** How many times a lost race on the same pair is retried before giving up. */
const CONFLICT_RETRIES = 2;

export async function addUser(
  ledger: Ledger,
  input: AddUserInput,
  email: EmailSettings,
): Promise<E.Either<Failure, AddUserResult>> {
  const gateway = ledger.projections.gateway();
  if (!gateway) return E.left(refused('this gateway is not initialised: run ov_init first'));
  const today = utcDateOf(ledger.clock.now());
  const pair = { email: input.email, traffic: input.traffic };

  // gateway.conf's ROUTES when set, else the networks discovery last recorded.
  const { routes } = currentRoutes(ledger);

  for (let attempt = 0; ; attempt++) {
    const loaded = await loadProfile(ledger, input.email, input.traffic);
    const allowed = checkIssuable(loaded.state, { expirationDate: input.expirationDate, today });
    if (E.isLeft(allowed)) return E.left(explainProfileError(allowed.left, pair));

    const prepared = await prepareClientProfile(ledger, gateway, {
      profileId: loaded.profileId,
      traffic: input.traffic,
      expirationDate: input.expirationDate,
      routes,
    });
    const decision = decide(
      {
        type: 'IssueProfile',
        profileId: loaded.profileId,
        ...input,
        routes,
        certificate: prepared.certificate,
        today,
      },
      loaded.state,
    );
    if (E.isLeft(decision)) {
      prepared.discard();
      return E.left(explainProfileError(decision.left, pair));
    }
    try {
      await appendAndProject(ledger, loaded.streamId, loaded.expectedRevision, decision.right);
    } catch (error) {
      prepared.discard();
      if (error instanceof WrongExpectedRevisionError && attempt < CONFLICT_RETRIES) {
        ledger.log.info({ streamId: loaded.streamId }, 'another command changed this profile meanwhile; deciding again');
        continue;
      }
      throw error;
    }
    ledger.log.info({ profileId: loaded.profileId, serial: prepared.certificate.serial }, 'profile issued');

    const result = {
      profileId: loaded.profileId,
      serial: prepared.certificate.serial,
      notAfter: prepared.certificate.notAfter,
      profilePath: prepared.profilePath,
    };
    try {
      const receipt = await deliver(ledger, email, {
        to: input.email,
        firstName: input.firstName,
        lastName: input.lastName,
        traffic: input.traffic,
        kind: 'issued',
        expirationDate: input.expirationDate,
        attachmentName: attachmentName(input.traffic),
        profile: prepared.profile,
      });
      return E.right({ ...result, delivery: receipt });
    } catch (error) {
      if (!(error instanceof MailDeliveryError)) throw error;
      const latest = await loadProfile(ledger, input.email, input.traffic);
      const recorded = decide(
        { type: 'RecordDeliveryFailure', serial: prepared.certificate.serial, delivery: 'issued', error: error.message },
        latest.state,
      );
      if (E.isRight(recorded)) await appendAndProject(ledger, latest.streamId, latest.expectedRevision, recorded.right);
      return E.left(
        deliveryFailed(
          `profile issued (serial ${prepared.certificate.serial}, saved at ${prepared.profilePath}) but the mail was not sent: ${error.message}; once mail works, run: ov_user_resend --email ${input.email} --traffic ${input.traffic}`,
        ),
      );
    }
  }
}
