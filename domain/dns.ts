// What the gateway tells VPN clients about DNS, as plain data; adapters/openvpn renders it.
//
// One resolver (the VPC's, or the operator's), optionally with split-DNS domains. OpenVPN 2.6
// and OpenVPN 3 clients take `dns server 0 …` (address, resolve-domains); older clients take
// `dhcp-option DNS` / `DOMAIN` / `DOMAIN-SEARCH` and send every query to the resolver, which is
// still correct, only not split. `dhcp-option DOMAIN-ROUTE` is not an OpenVPN 2 option and is not
// used (see the README, "DNS").

export interface DnsPlan {
  /** IPv4 resolvers pushed to clients; empty = no DNS is pushed (the client keeps its own). */
  readonly servers: readonly string[];
  /** Domains resolved through the VPN's resolver; empty = every query goes to it. */
  readonly resolveDomains: readonly string[];
  /** Where the resolver came from, for the operator's output. */
  readonly serverSource: 'dns.conf' | 'vpc' | 'none';
}

export const NO_DNS: DnsPlan = { servers: [], resolveDomains: [], serverSource: 'none' };

export function planDns(options: {
  readonly configuredServers: readonly string[];
  readonly vpcResolver: string | undefined;
  readonly domainRoutes: readonly string[];
}): DnsPlan {
  const domains = [...new Set(options.domainRoutes.map((d) => d.toLowerCase().replace(/\.$/, '')))];
  if (options.configuredServers.length > 0) {
    return { servers: [...options.configuredServers], resolveDomains: domains, serverSource: 'dns.conf' };
  }
  if (options.vpcResolver) return { servers: [options.vpcResolver], resolveDomains: domains, serverSource: 'vpc' };
  // Domains without a resolver would route queries nowhere: nothing is pushed.
  return { ...NO_DNS, resolveDomains: domains };
}
