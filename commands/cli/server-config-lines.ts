// What ov_dns_apply and ov_network_refresh say about the server config they regenerated.
import type { WrittenServerConfig } from '../use-cases/gateway-networks.js';

export function configLines(c: WrittenServerConfig): string[] {
  const d = c.dns;
  const dns =
    d.servers.length === 0
      ? 'DNS: none pushed (no VPC discovered and no VPN_DNS_SERVERS in dns.conf); clients keep their own resolver.'
      : `DNS pushed: ${d.servers.join(' ')} (${d.serverSource === 'vpc' ? 'the VPC resolver' : 'dns.conf'})` +
        (d.resolveDomains.length > 0 ? `; partial profiles resolve only ${d.resolveDomains.join(' ')} through it.` : ' for every query.');
  const changes =
    c.serverConfChanged
      ? `${c.serverConf} rewritten; ${c.clientConfigDefault} too, so each client gets the new settings at its next connection (no restart needed; a restart loads the rest).`
      : c.clientDefaultChanged
        ? `${c.clientConfigDefault} rewritten: each client gets the new settings at its next connection, no restart needed.`
        : 'Server config unchanged.';
  return [dns, changes];
}
