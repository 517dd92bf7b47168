// gateway.conf: the operator's settings for this gateway. Missing file = all defaults.
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { Cidr } from '../../domain/events.js';
import { DEFAULT_DNS_SETTINGS, type DnsSettings } from './dns-conf.js';
import { decodeEnvFile, type ConfigFileError } from './env-file.js';

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);

const Schema = z.object({
  /** Address pool handed to VPN clients (the tunnel's own network). */
  VPN_NETWORK: Cidr.default('10.8.0.0/24'),
  /** Networks a partial (split-tunnel) profile routes through the VPN, space separated. */
  ROUTES: z
    .string()
    .default('')
    .transform((s) => s.split(/[\s,]+/).filter(Boolean))
    .pipe(z.array(Cidr)),
  /**
   * How far ahead each CRL's nextUpdate lies. OpenVPN rejects every client once it passes, so it
   * is long: a stopped timer must not lock the gateway out (easy-rsa's 180-day default is the
   * classic outage). The daily job re-signs well before it.
   */
  CRL_VALIDITY_DAYS: wholeNumber(1, 36500).default(3650),
  /** Lifetime of the server certificate issued at ov_init. */
  SERVER_CERT_DAYS: wholeNumber(1, 36500).default(825),
  /** Days before expiry in which auto-renewal issues the next profile. */
  RENEWAL_WINDOW_DAYS: wholeNumber(1, 365).default(10),
  /** The VPC whose networks partial profiles route; else the instance's own (instance metadata). */
  VPC_ID: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, 'must be a VPC id like vpc-0a1b2c3d4e5f60718').optional(),
  /** The region of that VPC; else the instance's own. */
  AWS_REGION: z.string().regex(/^[a-z]{2}(?:-[a-z]+)+-\d+$/, 'must be an AWS region like eu-west-1').optional(),
  /** Restarts OpenVPN when its management interface does not answer (e.g. systemctl restart ovpn-ledger-openvpn). */
  RESTART_COMMAND: z.string().trim().min(1).optional(),
  /** ov_status warns this many days before the CRL's nextUpdate, the server certificate's and the CA's expiry. */
  CRL_WARN_DAYS: wholeNumber(1, 3650).default(30),
  SERVER_CERT_WARN_DAYS: wholeNumber(1, 3650).default(60),
  CA_WARN_DAYS: wholeNumber(1, 3650).default(180),
});

export type GatewaySettings = {
  readonly vpnNetwork: string;
  readonly routes: readonly string[];
  readonly crlValidityDays: number;
  readonly serverCertDays: number;
  readonly renewalWindowDays: number;
  /** Network discovery: runs at ov_init when either is set and ROUTES is not. */
  readonly aws: { readonly vpcId: string | undefined; readonly region: string | undefined };
  readonly restartCommand: string | undefined;
  readonly warnDays: { readonly crl: number; readonly serverCertificate: number; readonly ca: number };
  /** From dns.conf beside gateway.conf (the composition root reads it); defaults when there is none. */
  readonly dns: DnsSettings;
};

export function parseGatewayConf(text: string, fileName: string): E.Either<ConfigFileError, GatewaySettings> {
  return E.map((v: z.output<typeof Schema>) => ({
    vpnNetwork: v.VPN_NETWORK,
    routes: v.ROUTES,
    crlValidityDays: v.CRL_VALIDITY_DAYS,
    serverCertDays: v.SERVER_CERT_DAYS,
    renewalWindowDays: v.RENEWAL_WINDOW_DAYS,
    aws: { vpcId: v.VPC_ID, region: v.AWS_REGION },
    restartCommand: v.RESTART_COMMAND,
    warnDays: { crl: v.CRL_WARN_DAYS, serverCertificate: v.SERVER_CERT_WARN_DAYS, ca: v.CA_WARN_DAYS },
    dns: DEFAULT_DNS_SETTINGS,
  }))(decodeEnvFile(Schema, text, fileName));
}

export function renderGatewayConf(settings: { routes: readonly string[]; vpnNetwork: string }): string {
  return [
    '# ovpn-ledger gateway settings (KEY=value; see the README for every key).',
    '# Networks routed through the VPN by partial (split-tunnel) profiles, space separated.',
    `ROUTES="${settings.routes.join(' ')}"`,
    '# Address pool of the VPN clients.',
    `VPN_NETWORK=${settings.vpnNetwork}`,
    '# Days each CRL stays valid; re-signed long before by the daily job.',
    'CRL_VALIDITY_DAYS=3650',
    '# Network discovery (AWS): with ROUTES empty, ov_init and ov_network_refresh read the networks',
    "# of this VPC from its route tables (default: the instance's own VPC and region).",
    '#VPC_ID=vpc-0123456789abcdef0',
    '#AWS_REGION=eu-west-1',
    '# Run when the OpenVPN management interface does not answer (ov_user_delete, ov_server_renew --restart).',
    '#RESTART_COMMAND="systemctl restart ovpn-ledger-openvpn"',
    '',
  ].join('\n');
}
