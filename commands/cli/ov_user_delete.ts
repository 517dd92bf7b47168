import * as E from 'fp-ts/lib/Either.js';
import { CrlReason, Reason } from '../../domain/values.js';
import { openvpnRestartFor } from '../../infra/composition-root.js';
import { deleteUser, type DeleteUserResult } from '../use-cases/delete-user.js';
import { PairFlags, pairFlags } from './flags.js';
import type { CommandSpec } from './run-cli.js';

const Schema = PairFlags.extend({
  reason: Reason.default('deleted by operator'),
  crlReason: CrlReason.default('cessationOfOperation'),
});

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_user_delete',
  description: "revoke every certificate of a user's (email, traffic) profile and update the CRL",
  open: 'existing',
  schema: Schema,
  flags: (y) =>
    pairFlags(y)
      .option('reason', { type: 'string', describe: 'why (kept for audits)', default: 'deleted by operator' })
      .option('crl-reason', {
        type: 'string',
        describe: 'reason code in the CRL: unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation',
        default: 'cessationOfOperation',
      }),
  run: async (input, { ledger }) =>
    E.map((r: DeleteUserResult) =>
      [
        `Revoked ${input.traffic} profile of ${input.email}: serial(s) ${r.revokedSerials.join(', ')}.`,
        `CRL #${r.crl.number} written with ${r.crl.entries} entries (next update ${r.crl.nextUpdate.toISOString()}); OpenVPN refuses these certificates from its next handshake.`,
        sessionsLine(r.sessions),
        ...(r.restart ? [restartLine(r.restart)] : []),
      ].join('\n'),
    )(await deleteUser(ledger, input, { restartOpenvpn: openvpnRestartFor(ledger.settings) })),
};

function sessionsLine(s: DeleteUserResult['sessions']): string {
  switch (s.kind) {
    case 'killed':
      return `Live sessions ended: ${s.sessions} (the client was told to stop).`;
    case 'not-connected':
      return 'No live session to end.';
    case 'no-server':
      return 'No OpenVPN management socket found: no live session to end.';
    case 'unreachable':
      return `Warning: the OpenVPN management interface did not answer (${s.reason}); without a restart a live session lasts until its next renegotiation.`;
  }
}

function restartLine(r: NonNullable<DeleteUserResult['restart']>): string {
  switch (r.kind) {
    case 'restarted':
      return `OpenVPN restarted instead (${r.command}): every session ended, and the revoked profile is refused when it reconnects.`;
    case 'failed':
      return `Warning: the restart command failed (${r.command}: ${r.reason}); restart OpenVPN yourself to end the live session now.`;
    case 'not-configured':
      return 'Set RESTART_COMMAND in gateway.conf (e.g. "systemctl restart ovpn-ledger-openvpn") to restart OpenVPN automatically when this happens.';
  }
}
