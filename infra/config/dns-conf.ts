// dns.conf: what VPN clients are told about DNS. Missing file = the defaults: the VPC's resolver
// for every query, no split DNS. The key of the gateway manual, VPN_DNS_DOMAIN_ROUTES, keeps its
// meaning, so an existing file works unchanged.
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { decodeEnvFile, type ConfigFileError } from './env-file.js';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

const words = (s: string) => s.split(/[\s,]+/).filter(Boolean);

const Schema = z.object({
  /** Domains resolved through the VPN's resolver by partial profiles (split DNS), space separated. */
  VPN_DNS_DOMAIN_ROUTES: z
    .string()
    .default('')
    .transform((s) => words(s).map((d) => d.toLowerCase().replace(/\.$/, '')))
    .refine((ds) => ds.every((d) => DOMAIN.test(d)), 'must be domain names like internal.example.com, space separated'),
  /** Resolvers to push instead of the VPC's (base of its primary CIDR + 2), space separated IPv4. */
  VPN_DNS_SERVERS: z
    .string()
    .default('')
    .transform(words)
    .refine((xs) => xs.every((x) => IPV4.test(x)), 'must be IPv4 addresses, space separated')
    .refine((xs) => xs.length <= 8, 'may name at most 8 servers'),
});

export interface DnsSettings {
  readonly domainRoutes: readonly string[];
  readonly servers: readonly string[];
}

export const DEFAULT_DNS_SETTINGS: DnsSettings = { domainRoutes: [], servers: [] };

export function parseDnsConf(text: string, fileName: string): E.Either<ConfigFileError, DnsSettings> {
  return E.map((v: z.output<typeof Schema>) => ({ domainRoutes: v.VPN_DNS_DOMAIN_ROUTES, servers: v.VPN_DNS_SERVERS }))(
    decodeEnvFile(Schema, text, fileName),
  );
}
