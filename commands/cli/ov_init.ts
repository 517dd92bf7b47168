import { existsSync, mkdirSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { writeFileAtomic } from '../../adapters/fs/atomic-file.js';
import { Cidr } from '../../domain/events.js';
import { emailConfPath, gatewayConfPath } from '../../infra/config/paths.js';
import { renderEmailConfTemplate } from '../../infra/config/email-conf-template.js';
import { renderGatewayConf } from '../../infra/config/gateway-conf.js';
import { discoveryConfigured, networkDiscoveryFor } from '../../infra/composition-root.js';
import { initialiseGateway, type InitResult } from '../use-cases/initialise-gateway.js';
import type { CommandSpec } from './run-cli.js';

const Hostname = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(253, 'is longer than 253 characters')
  .regex(/^[A-Za-z0-9.:-]+$/, 'must be a DNS name or an IP address');

const Schema = z.object({
  publicHost: Hostname,
  port: z.number({ error: 'must be a port number' }).int('must be a whole number').min(1, 'must be 1–65535').max(65535, 'must be 1–65535').default(1194),
  proto: z.enum(['udp', 'tcp'], { error: () => 'must be "udp" or "tcp"' }).default('udp'),
  route: z.array(Cidr).default([]),
});

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_init',
  description: 'set up the gateway once: CA, server certificate, tls-crypt key, CRL, OpenVPN server config',
  open: 'initialise',
  schema: Schema,
  flags: (y) =>
    y
      .option('public-host', { type: 'string', demandOption: true, describe: 'the address clients connect to (put in every profile)' })
      .option('port', { type: 'number', default: 1194, describe: 'OpenVPN port' })
      .option('proto', { type: 'string', default: 'udp', describe: 'udp or tcp' })
      .option('route', { type: 'string', array: true, describe: 'a network for partial profiles (CIDR); repeat for more; written to gateway.conf when it does not exist yet' }),
  // gateway.conf is seeded before the ledger opens, so the settings it reads are the operator's.
  precheck: (input, env) => {
    if (!existsSync(env.configDir)) mkdirSync(env.configDir, { recursive: true, mode: 0o755 });
    const gatewayConf = gatewayConfPath(env.configDir);
    if (!existsSync(gatewayConf)) writeFileAtomic(gatewayConf, renderGatewayConf({ routes: input.route, vpnNetwork: '10.8.0.0/24' }), 0o644);
    const emailConf = emailConfPath(env.configDir);
    if (!existsSync(emailConf)) writeFileAtomic(emailConf, renderEmailConfTemplate(), 0o600);
    return E.right(true);
  },
  run: async (input, { ledger, env }) =>
    E.map((r: InitResult) =>
      r.alreadyInitialised
        ? `Already initialised for ${input.publicHost}:${input.port}/${input.proto}; nothing changed.\nCA fingerprint (SHA-256): ${r.caFingerprint}`
        : [
            `Gateway initialised for ${input.publicHost}:${input.port}/${input.proto}.`,
            `CA fingerprint (SHA-256): ${r.caFingerprint}, valid until ${r.caNotAfter}.`,
            `Server certificate valid until ${r.serverNotAfter}.`,
            `CRL #${r.crl?.number ?? '?'} written (next update ${r.crl?.nextUpdate.toISOString() ?? '?'}).`,
            ...(r.networks
              ? [
                  `Networks of ${r.networks.vpcId} (${r.networks.region}) for partial profiles: ${r.networks.routes.join(' ')}` +
                    ` (VPC ${r.networks.vpcCidrs.join(' ')}; peered ${r.networks.peeredCidrs.join(' ') || 'none'}).`,
                ]
              : []),
            ...(r.dns && r.dns.servers.length > 0
              ? [`DNS pushed to clients: ${r.dns.servers.join(' ')}${r.dns.resolveDomains.length > 0 ? ` (split DNS for ${r.dns.resolveDomains.join(' ')})` : ''}.`]
              : []),
            `OpenVPN server config: ${r.serverConf}`,
            `Start it with: openvpn --config ${r.serverConf}`,
          ].join('\n'),
    )(
      await initialiseGateway(
        ledger,
        { publicHost: input.publicHost, port: input.port, proto: input.proto },
        discoveryConfigured(ledger.settings) ? { discover: networkDiscoveryFor(env, ledger.settings) } : {},
      ),
    ),
};
