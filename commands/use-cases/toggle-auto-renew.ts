// ov_user_auto_renew: switch automatic renewal for a pair without touching its certificate.
import * as E from 'fp-ts/lib/Either.js';
import { decide } from '../../domain/profile-decider.js';
import type { Email, Traffic } from '../../domain/values.js';
import type { Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { explainProfileError } from './profile-errors.js';
import { appendAndProject, loadProfile } from './profile-stream.js';

export async function toggleAutoRenew(
  ledger: Ledger,
  input: { email: Email; traffic: Traffic; enable: boolean },
): Promise<E.Either<Failure, { changed: boolean }>> {
  const loaded = await loadProfile(ledger, input.email, input.traffic);
  const decision = decide({ type: input.enable ? 'EnableAutoRenew' : 'DisableAutoRenew' }, loaded.state);
  if (E.isLeft(decision)) return E.left(explainProfileError(decision.left, input));
  await appendAndProject(ledger, loaded.streamId, loaded.expectedRevision, decision.right);
  return E.right({ changed: decision.right.length > 0 });
}
