// ov_user_renew_due, the daily job: every active auto-renewing profile inside the renewal window
// gets a fresh certificate and profile by mail. The previous certificate keeps working until its
// own expiry, so the user never has a gap.
//
// Per profile: sign → record the signed certificate (RenewalCertificateIssued) → mail → record
// ProfileRenewed. The certificate is in the log before it can leave the gateway, so a delete
// revokes it whatever happens next; the profile itself changes only once the mail is out. Any
// failure records RenewalFailed and leaves the profile as it was; the next run tries again.
import * as E from 'fp-ts/lib/Either.js';
import { WrongExpectedRevisionError } from '../../adapters/eventstore/event-store.js';
import type { CrlPublication } from '../../adapters/pki/crl-publisher.js';
import { decide, renewalTerms, type ProfileCommand } from '../../domain/profile-decider.js';
import { addDays, utcDateOf, type CalendarDate } from '../../domain/values.js';
import type { EmailSettings } from '../../infra/config/email-conf.js';
import type { UserRow } from '../../projections/user-list.js';
import { refused, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { attachmentName, deliver } from './deliver-profile.js';
import { prepareClientProfile, type PreparedProfile } from './issue-client-profile.js';
import { explainProfileError } from './profile-errors.js';
import { appendAndProject, loadProfile } from './profile-stream.js';
import { publishCrl } from './publish-crl.js';

export interface RenewalOutcome {
  readonly email: string;
  readonly traffic: string;
  readonly previousSerial: string;
}

export interface RenewDueResult {
  readonly today: CalendarDate;
  readonly windowDays: number;
  readonly renewed: ReadonlyArray<RenewalOutcome & { readonly serial: string; readonly expirationDate: CalendarDate; readonly delivery: string }>;
  readonly failed: ReadonlyArray<RenewalOutcome & { readonly reason: string }>;
  /** Candidates another command changed meanwhile (deleted, toggled, renewed by hand). */
  readonly skipped: number;
  readonly crl: CrlPublication | undefined;
}

// Longer than any plausible run (one mail per profile, 15 s timeouts); a crashed holder is
// detected by its pid long before.
const LEASE_TERM_MS = 6 * 60 * 60_000;

export async function renewDueProfiles(
  ledger: Ledger,
  options: { windowDays: number; email: EmailSettings },
): Promise<E.Either<Failure, RenewDueResult>> {
  const gateway = ledger.projections.gateway();
  if (!gateway) return E.left(refused('this gateway is not initialised: run ov_init first'));
  const lease = ledger.acquireLease('renewal-job', LEASE_TERM_MS);
  if (!lease.acquired) {
    return E.left(refused(`another renewal job (pid ${lease.holderPid}, since ${lease.since}) is running; nothing was done`));
  }
  try {
    const today = utcDateOf(ledger.clock.now());
    const renewed: RenewDueResult['renewed'][number][] = [];
    const failed: RenewDueResult['failed'][number][] = [];
    let skipped = 0;
    for (const user of ledger.projections.renewalCandidates(addDays(today, options.windowDays))) {
      const outcome = await renewOne(ledger, gateway, user, today, options);
      if (outcome.kind === 'renewed') renewed.push(outcome.result);
      else if (outcome.kind === 'failed') failed.push(outcome.result);
      else skipped++;
    }
    return E.right({ today, windowDays: options.windowDays, renewed, failed, skipped, crl: refreshCrlIfNear(ledger) });
  } finally {
    lease.release();
  }
}

type OneOutcome =
  | { kind: 'renewed'; result: RenewDueResult['renewed'][number] }
  | { kind: 'failed'; result: RenewDueResult['failed'][number] }
  | { kind: 'skipped' };

async function renewOne(
  ledger: Ledger,
  gateway: NonNullable<ReturnType<Ledger['projections']['gateway']>>,
  user: UserRow,
  today: CalendarDate,
  options: { windowDays: number; email: EmailSettings },
): Promise<OneOutcome> {
  const base = { email: user.email, traffic: user.traffic, previousSerial: user.currentSerial };
  const window = { today, windowDays: options.windowDays };
  let prepared: PreparedProfile | undefined;
  let preparedRecorded = false;
  let delivered = false;
  try {
    const loaded = await loadProfile(ledger, user.email, user.traffic);
    const terms = renewalTerms(loaded.state, window);
    if (E.isLeft(terms) || loaded.state.status !== 'active') return { kind: 'skipped' };
    const profile = loaded.state.profile;

    prepared = await prepareClientProfile(ledger, gateway, {
      profileId: profile.profileId,
      traffic: profile.traffic,
      expirationDate: terms.right.expirationDate,
      routes: profile.routes,
    });
    const serial = prepared.certificate.serial;
    const preparation = decide({ type: 'PrepareRenewal', certificate: prepared.certificate, ...window }, loaded.state);
    if (E.isLeft(preparation)) {
      prepared.discard();
      return { kind: 'skipped' };
    }
    try {
      await appendAndProject(ledger, loaded.streamId, loaded.expectedRevision, preparation.right);
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError) {
        prepared.discard();
        return { kind: 'skipped' };
      }
      throw error;
    }
    preparedRecorded = true;

    const delivery = await deliver(ledger, options.email, {
      to: profile.email,
      firstName: profile.firstName,
      lastName: profile.lastName,
      traffic: profile.traffic,
      kind: 'renewed',
      expirationDate: terms.right.expirationDate,
      attachmentName: attachmentName(profile.traffic),
      profile: prepared.profile,
    });
    delivered = true;

    const afterMail = await loadProfile(ledger, user.email, user.traffic);
    // Deleted while the mail was out: the delete also revoked the mailed certificate (it was in the
    // log before the mail left), so there is nothing to complete and nothing failed.
    if (afterMail.state.status !== 'active') return { kind: 'skipped' };
    const completion = decide({ type: 'CompleteRenewal', serial, ...window }, afterMail.state);
    if (E.isLeft(completion)) throw new Error(explainProfileError(completion.left, user).message);
    // 'any': the mail is out; a concurrent toggle must not turn a delivered renewal into a failure.
    await appendAndProject(ledger, afterMail.streamId, 'any', completion.right);
    ledger.log.info({ profileId: profile.profileId, previousSerial: base.previousSerial, serial }, 'profile renewed');
    return { kind: 'renewed', result: { ...base, serial, expirationDate: terms.right.expirationDate, delivery } };
  } catch (error) {
    const reason = (error as Error).message ?? String(error);
    const lastLogLine = `${ledger.clock.now().toISOString()} ERROR ov_user_renew_due: renewal of ${user.traffic} profile ${user.profileId} failed: ${reason}`;
    ledger.log.warn({ profileId: user.profileId, err: error }, `renewal failed: ${reason}`);
    await recordFailure(ledger, user, {
      type: 'RecordRenewalFailure',
      reason,
      lastLogLine,
      // A mailed certificate is not abandoned: it stays pending (and revocable) and its files stay,
      // so the next run or an operator can see what the user holds.
      abandonedSerial: preparedRecorded && !delivered ? prepared?.certificate.serial : undefined,
    });
    // Not mailed: the key never left the gateway, only the record of the signed certificate remains.
    if (!delivered) prepared?.discard();
    return { kind: 'failed', result: { ...base, reason } };
  }
}

async function recordFailure(ledger: Ledger, user: UserRow, command: ProfileCommand): Promise<void> {
  try {
    const loaded = await loadProfile(ledger, user.email, user.traffic);
    const decision = decide(command, loaded.state);
    if (E.isRight(decision)) await appendAndProject(ledger, loaded.streamId, 'any', decision.right);
  } catch (error) {
    ledger.log.error({ err: error, profileId: user.profileId }, 'could not record the renewal failure');
  }
}

/** Re-signs the CRL once half its validity has passed, so a stopped timer has years of slack. */
function refreshCrlIfNear(ledger: Ledger): CrlPublication | undefined {
  const last = ledger.crl.lastPublication();
  const halfValidityMs = (ledger.settings.crlValidityDays * 86_400_000) / 2;
  if (last && last.nextUpdate.getTime() - ledger.clock.now().getTime() > halfValidityMs && !ledger.crl.isStale()) return undefined;
  return publishCrl(ledger);
}
