// The .ovpn a user imports: one self-contained file with everything inline, so it works in
// OpenVPN Connect, Tunnelblick, NetworkManager and `openvpn --config` alike.
import type { DnsPlan } from '../../domain/dns.js';
import { cidrToNetworkAndMask } from './cidr.js';
import { clientDnsOptions } from './dns-options.js';

export interface ClientProfileInput {
  readonly publicHost: string;
  readonly port: number;
  readonly proto: 'udp' | 'tcp';
  readonly serverCommonName: string;
  readonly traffic: 'all' | 'partial';
  readonly routes: readonly string[];
  readonly caCertificatePem: string;
  readonly clientCertificatePem: string;
  readonly clientPrivateKeyPem: string;
  readonly tlsCryptKey: string;
  /** DNS as of issue time; the server's push replaces it at each connection. */
  readonly dns?: DnsPlan;
}

/**
 * What a partial profile ignores of the server's push: everything route-nopull would drop except
 * DNS. Prefixes, as OpenVPN compares them: "route " keeps route-gateway, which the profile's own
 * routes need.
 */
export const PARTIAL_PULL_FILTERS = ['redirect-', 'route ', 'route-ipv6 ', 'block-outside-dns'] as const;

export function renderClientProfile(p: ClientProfileInput): string {
  const routing =
    p.traffic === 'all'
      ? [
          '# Full tunnel: every packet goes through the VPN, and every DNS query to its resolver',
          '# (split-DNS domains are for partial profiles).',
          'redirect-gateway def1',
          'pull-filter ignore "dns server 0 resolve-domains"',
        ]
      : [
          '# Split tunnel: only the gateway\'s networks go through the VPN. Routes and redirects the',
          '# server pushes are ignored; its DNS settings are taken (route-nopull would drop those too).',
          ...PARTIAL_PULL_FILTERS.map((prefix) => `pull-filter ignore "${prefix}"`),
          ...p.routes.map((cidr) => {
            const { network, netmask } = cidrToNetworkAndMask(cidr);
            return `route ${network} ${netmask}`;
          }),
          ...(p.dns && p.dns.servers.length > 0
            ? ['# DNS as issued; the server pushes the current settings at every connection.', ...clientDnsOptions(p.dns)]
            : []),
        ];
  return [
    'client',
    'dev tun',
    `proto ${p.proto}`,
    `remote ${p.publicHost} ${p.port}`,
    'resolv-retry infinite',
    'nobind',
    'persist-key',
    'persist-tun',
    'remote-cert-tls server',
    `verify-x509-name ${p.serverCommonName} name`,
    'verb 3',
    ...routing,
    '<ca>',
    p.caCertificatePem.trim(),
    '</ca>',
    '<cert>',
    p.clientCertificatePem.trim(),
    '</cert>',
    '<key>',
    p.clientPrivateKeyPem.trim(),
    '</key>',
    '<tls-crypt>',
    p.tlsCryptKey.trim(),
    '</tls-crypt>',
    '',
  ].join('\n');
}
