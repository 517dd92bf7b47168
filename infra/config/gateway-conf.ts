// gateway.conf: the operator's settings for this gateway. Missing file = all defaults.
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { Cidr } from '../../domain/events.js';
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
});

export type GatewaySettings = {
  readonly vpnNetwork: string;
  readonly routes: readonly string[];
  readonly crlValidityDays: number;
  readonly serverCertDays: number;
  readonly renewalWindowDays: number;
};

export function parseGatewayConf(text: string, fileName: string): E.Either<ConfigFileError, GatewaySettings> {
  return E.map((v: z.output<typeof Schema>) => ({
    vpnNetwork: v.VPN_NETWORK,
    routes: v.ROUTES,
    crlValidityDays: v.CRL_VALIDITY_DAYS,
    serverCertDays: v.SERVER_CERT_DAYS,
    renewalWindowDays: v.RENEWAL_WINDOW_DAYS,
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
    '',
  ].join('\n');
}
