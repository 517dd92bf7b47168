// ov_user_delete: revoke every certificate the pair can still connect with, publish the CRL that
// OpenVPN re-reads before each handshake, and end the pair's live sessions.
import { existsSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { endClientSessions, type KillOutcome } from '../../adapters/openvpn/management.js';
import type { RestartOpenvpn, RestartOutcome } from '../../adapters/openvpn/restart-command.js';
import type { CrlPublication } from '../../adapters/pki/crl-publisher.js';
import { decide } from '../../domain/profile-decider.js';
import type { CrlReason, Email, Traffic } from '../../domain/values.js';
import type { Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { explainProfileError } from './profile-errors.js';
import { appendAndProject, loadProfile } from './profile-stream.js';
import { publishCrl } from './publish-crl.js';

export interface DeleteUserInput {
  readonly email: Email;
  readonly traffic: Traffic;
  readonly reason: string;
  readonly crlReason: CrlReason;
}

export interface DeleteUserResult {
  readonly revokedSerials: readonly string[];
  readonly crl: CrlPublication;
  readonly sessions: KillOutcome | { readonly kind: 'no-server' };
  /** When the management interface did not answer: the restart fallback (RESTART_COMMAND). */
  readonly restart?: RestartOutcome;
}

export async function deleteUser(
  ledger: Ledger,
  input: DeleteUserInput,
  options: { readonly restartOpenvpn?: RestartOpenvpn } = {},
): Promise<E.Either<Failure, DeleteUserResult>> {
  const loaded = await loadProfile(ledger, input.email, input.traffic);
  const decision = decide(
    { type: 'RevokeProfile', reason: input.reason, crlReason: input.crlReason, now: ledger.clock.now() },
    loaded.state,
  );
  if (E.isLeft(decision)) return E.left(explainProfileError(decision.left, input));
  await appendAndProject(ledger, loaded.streamId, loaded.expectedRevision, decision.right);
  const revoked = decision.right.flatMap((e) => (e.type === 'ProfileRevoked' ? e.data.serials : []));
  ledger.log.info({ profileId: loaded.profileId, serials: revoked }, 'profile revoked');
  const crl = publishCrl(ledger);
  const sessions = existsSync(ledger.layout.managementSocket)
    ? await endClientSessions(ledger.layout.managementSocket, loaded.profileId)
    : ({ kind: 'no-server' } as const);
  if (sessions.kind === 'unreachable') {
    ledger.log.warn({ reason: sessions.reason }, 'management interface unreachable; live sessions end at renegotiation');
    // A restart ends every session; the revoked client's reconnection then meets the new CRL.
    const restart = options.restartOpenvpn ? await options.restartOpenvpn() : undefined;
    if (restart) ledger.log.warn({ restart }, 'OpenVPN restart fallback');
    return E.right({ revokedSerials: revoked, crl, sessions, ...(restart ? { restart } : {}) });
  }
  return E.right({ revokedSerials: revoked, crl, sessions });
}
