// The .ovpn a user imports: one self-contained file with everything inline, so it works in
// OpenVPN Connect, Tunnelblick, NetworkManager and `openvpn --config` alike.
import { cidrToNetworkAndMask } from './cidr.js';

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
}

export function renderClientProfile(p: ClientProfileInput): string {
  const routing =
    p.traffic === 'all'
      ? ['# Full tunnel: every packet goes through the VPN.', 'redirect-gateway def1']
      : [
          '# Split tunnel: only the gateway\'s networks go through the VPN.',
          'route-nopull',
          ...p.routes.map((cidr) => {
            const { network, netmask } = cidrToNetworkAndMask(cidr);
            return `route ${network} ${netmask}`;
          }),
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
