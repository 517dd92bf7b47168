// A DnsPlan as OpenVPN options. Two dialects side by side, because a client acts on the one it
// knows:
//   dns server 0 address …            OpenVPN 2.6+ and OpenVPN 3 (Connect): the resolver, and with
//   dns server 0 resolve-domains …    resolve-domains only for those domains (split DNS);
//   dhcp-option DNS / DOMAIN /        older clients: the resolver for every query, the domains as
//   DOMAIN-SEARCH                     search suffixes. A 2.6 client lets --dns override these.
// `dhcp-option DOMAIN-ROUTE` is not an OpenVPN 2 option and is never emitted.
import type { DnsPlan } from '../../domain/dns.js';

/** Server id 0: a pushed `dns server 0` replaces the profile's own server 0 as a whole. */
const SERVER_ID = 0;

/** The options a server pushes (without the `push` keyword). */
export function pushedDnsOptions(plan: DnsPlan): string[] {
  if (plan.servers.length === 0) return [];
  const [first, ...rest] = plan.resolveDomains;
  return [
    ...clientDnsOptions(plan),
    ...plan.servers.map((s) => `dhcp-option DNS ${s}`),
    ...(first === undefined ? [] : [`dhcp-option DOMAIN ${first}`]),
    ...rest.map((d) => `dhcp-option DOMAIN-SEARCH ${d}`),
  ];
}

/** The `--dns` options alone, as a client profile may carry them. */
export function clientDnsOptions(plan: DnsPlan): string[] {
  if (plan.servers.length === 0) return [];
  return [
    `dns server ${SERVER_ID} address ${plan.servers.join(' ')}`,
    ...(plan.resolveDomains.length > 0 ? [`dns server ${SERVER_ID} resolve-domains ${plan.resolveDomains.join(' ')}`] : []),
  ];
}
