import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { openvpnRestartFor } from '../../infra/composition-root.js';
import { refused } from '../failure.js';
import { renewServerCertificate, type ServerRenewalResult } from '../use-cases/renew-server-certificate.js';
import type { CommandSpec } from './run-cli.js';

const Schema = z.object({
  days: z.number({ error: 'must be a number of days' }).int('must be a whole number').min(1, 'must be at least 1').max(36500, 'must be at most 36500').optional(),
  restart: z.boolean().default(false),
});

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_server_renew',
  description: 'renew the OpenVPN server certificate (new key, same CA, same name): every issued profile keeps working',
  open: 'existing',
  schema: Schema,
  flags: (y) =>
    y
      .option('days', { type: 'number', describe: 'validity of the new certificate (default SERVER_CERT_DAYS, 825)' })
      .option('restart', { type: 'boolean', default: false, describe: 'then run RESTART_COMMAND from gateway.conf so OpenVPN loads it (ends every session; clients reconnect)' }),
  run: async (input, { ledger }) => {
    if (input.restart && ledger.settings.restartCommand === undefined) {
      return E.left(refused('--restart needs RESTART_COMMAND in gateway.conf (e.g. "systemctl restart ovpn-ledger-openvpn"); nothing was renewed'));
    }
    return E.map((r: ServerRenewalResult) =>
      [
        `Server certificate renewed: ${r.certificatePath}, serial ${r.serial}${r.previousSerial ? ` (was ${r.previousSerial})` : ''}, CN ${r.commonName} (unchanged), valid until ${r.notAfter}.`,
        'The CA is unchanged: every profile issued so far keeps working.',
        restartLine(r),
      ].join('\n'),
    )(
      await renewServerCertificate(ledger, {
        days: input.days ?? ledger.settings.serverCertDays,
        ...(input.restart ? { restart: openvpnRestartFor(ledger.settings) } : {}),
      }),
    );
  },
};

function restartLine(r: ServerRenewalResult): string {
  switch (r.restart?.kind) {
    case undefined:
    case 'not-configured':
      return 'OpenVPN loads it when it restarts (e.g. systemctl restart ovpn-ledger-openvpn, or ov_server_renew --restart next time).';
    case 'restarted':
      return `OpenVPN restarted (${r.restart.command}) and serves the new certificate.`;
    case 'failed':
      return `Warning: the restart command failed (${r.restart.command}: ${r.restart.reason}); restart OpenVPN yourself to load the new certificate.`;
  }
}
