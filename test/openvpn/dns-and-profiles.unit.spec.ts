// What the generated OpenVPN files say about routes and DNS, and how dns.conf and the gateway.conf
// keys of this release are read. The real OpenVPN checks of the same text are in
// test/e2e/aws-gateway.e2e.spec.ts.
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { stateLayout } from '../../adapters/fs/state-layout.js';
import { renderClientProfile } from '../../adapters/openvpn/client-profile.js';
import { pushedDnsOptions } from '../../adapters/openvpn/dns-options.js';
import { renderClientConfigDefault, renderServerConfig } from '../../adapters/openvpn/server-config.js';
import type { DnsPlan } from '../../domain/dns.js';
import { readAwsEnvironment } from '../../infra/aws-environment.js';
import { parseDnsConf } from '../../infra/config/dns-conf.js';
import { parseGatewayConf } from '../../infra/config/gateway-conf.js';

const SPLIT: DnsPlan = { servers: ['10.40.0.2'], resolveDomains: ['internal.example.com', 'corp.example.local'], serverSource: 'vpc' };
const PEM = '-----BEGIN X-----\nAA==\n-----END X-----';

const profile = (traffic: 'all' | 'partial', dns?: DnsPlan) =>
  renderClientProfile({
    publicHost: 'vpn.example.com',
    port: 1194,
    proto: 'udp',
    serverCommonName: 'server-abc',
    traffic,
    routes: traffic === 'partial' ? ['10.40.0.0/16', '10.50.0.0/16'] : [],
    caCertificatePem: PEM,
    clientCertificatePem: PEM,
    clientPrivateKeyPem: PEM,
    tlsCryptKey: PEM,
    ...(dns ? { dns } : {}),
  });

describe('pushed DNS options', () => {
  it('given split DNS, then OpenVPN 2.6 --dns with resolve-domains, and dhcp-option DNS/DOMAIN/DOMAIN-SEARCH for older clients; never DOMAIN-ROUTE', () => {
    expect(pushedDnsOptions(SPLIT)).toEqual([
      'dns server 0 address 10.40.0.2',
      'dns server 0 resolve-domains internal.example.com corp.example.local',
      'dhcp-option DNS 10.40.0.2',
      'dhcp-option DOMAIN internal.example.com',
      'dhcp-option DOMAIN-SEARCH corp.example.local',
    ]);
    expect(pushedDnsOptions(SPLIT).join('\n')).not.toContain('DOMAIN-ROUTE');
  });

  it('given no resolver, then nothing', () => {
    expect(pushedDnsOptions({ servers: [], resolveDomains: ['a.example'], serverSource: 'none' })).toEqual([]);
  });
});

describe('server.conf and ccd/DEFAULT', () => {
  const layout = stateLayout('/var/lib/ovpn-ledger');
  it('push the DNS options and read ccd/DEFAULT, which replaces them at every connection', () => {
    const conf = renderServerConfig({ layout, port: 1194, proto: 'udp', vpnNetwork: '10.8.0.0/24', dns: SPLIT });
    expect(conf).toContain('\npush "dns server 0 address 10.40.0.2"\n');
    expect(conf).toContain('\npush "dns server 0 resolve-domains internal.example.com corp.example.local"\n');
    expect(conf).toContain('\npush "dhcp-option DNS 10.40.0.2"\n');
    expect(conf).toContain('\nclient-config-dir /var/lib/ovpn-ledger/openvpn/ccd\n');
    expect(conf).not.toMatch(/^push "route/m);
    expect(renderClientConfigDefault(SPLIT).split('\n').slice(1, 4)).toEqual([
      'push-remove "dns server"',
      'push-remove "dhcp-option"',
      'push "dns server 0 address 10.40.0.2"',
    ]);
  });
});

describe('client profiles', () => {
  it('given a partial profile, then pushed routes and redirects are filtered instead of route-nopull (which would drop the pushed DNS), its own routes follow, then its DNS as issued', () => {
    const text = profile('partial', SPLIT);
    expect(text).not.toMatch(/^route-nopull$/m);
    expect(text).toContain(
      [
        'pull-filter ignore "redirect-"',
        'pull-filter ignore "route "',
        'pull-filter ignore "route-ipv6 "',
        'pull-filter ignore "block-outside-dns"',
        'route 10.40.0.0 255.255.0.0',
        'route 10.50.0.0 255.255.0.0',
      ].join('\n'),
    );
    expect(text).toMatch(/^dns server 0 address 10\.40\.0\.2$/m);
    expect(text).toMatch(/^dns server 0 resolve-domains internal\.example\.com corp\.example\.local$/m);
    expect(text).not.toContain('redirect-gateway');
  });

  it('given a full profile, then it redirects the default gateway and ignores split-DNS domains', () => {
    const text = profile('all', SPLIT);
    expect(text).toMatch(/^redirect-gateway def1$/m);
    expect(text).toMatch(/^pull-filter ignore "dns server 0 resolve-domains"$/m);
    expect(text).not.toMatch(/^dns server/m);
    expect(text).not.toMatch(/^route /m);
  });
});

describe('dns.conf', () => {
  it('reads the manual\'s key, lower-cases the domains and drops trailing dots', () => {
    expect(parseDnsConf('VPN_DNS_DOMAIN_ROUTES="Internal.Acme.com corp.acme.local."\n', 'dns.conf')).toEqual(
      E.right({ domainRoutes: ['internal.acme.com', 'corp.acme.local'], servers: [] }),
    );
  });
  it('given an empty value, then the default (no split DNS)', () => {
    expect(parseDnsConf('VPN_DNS_DOMAIN_ROUTES=""\n', 'dns.conf')).toEqual(E.right({ domainRoutes: [], servers: [] }));
  });
  it('given a resolver that is not an IPv4 address, then one line naming the key and the line', () => {
    const r = parseDnsConf('# resolvers\nVPN_DNS_SERVERS="10.0.0.2 dns.example"\n', '/etc/ovpn-ledger/dns.conf');
    expect(E.isLeft(r) && r.left.message).toBe('/etc/ovpn-ledger/dns.conf:2: VPN_DNS_SERVERS must be IPv4 addresses, space separated');
  });
});

describe('gateway.conf keys of the gateway on AWS', () => {
  it('reads VPC_ID, AWS_REGION, RESTART_COMMAND and the warning windows', () => {
    const r = parseGatewayConf('VPC_ID=vpc-0a1b2c3d4e5f60718\nAWS_REGION=eu-west-1\nRESTART_COMMAND="systemctl restart ovpn-ledger-openvpn"\nSERVER_CERT_WARN_DAYS=90\n', 'gateway.conf');
    expect(E.isRight(r) && r.right).toMatchObject({
      aws: { vpcId: 'vpc-0a1b2c3d4e5f60718', region: 'eu-west-1' },
      restartCommand: 'systemctl restart ovpn-ledger-openvpn',
      warnDays: { crl: 30, serverCertificate: 90, ca: 180 },
    });
  });
  it('refuses a malformed VPC id', () => {
    const r = parseGatewayConf('VPC_ID=vpc-XYZ\n', 'gateway.conf');
    expect(E.isLeft(r) && r.left.message).toBe('gateway.conf:1: VPC_ID must be a VPC id like vpc-0a1b2c3d4e5f60718');
  });
});

describe('the AWS SDK variables', () => {
  it('prefer AWS_ENDPOINT_URL_EC2 over AWS_ENDPOINT_URL, and honour AWS_EC2_METADATA_DISABLED', () => {
    expect(
      readAwsEnvironment({ AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_ENDPOINT_URL_EC2: 'http://127.0.0.1:2', AWS_EC2_METADATA_DISABLED: 'true' }),
    ).toEqual(E.right({ ec2Endpoint: 'http://127.0.0.1:2', instanceMetadataEndpoint: undefined, region: undefined }));
    expect(readAwsEnvironment({ AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:3' })).toEqual(
      E.right({ ec2Endpoint: 'http://127.0.0.1:1', instanceMetadataEndpoint: 'http://127.0.0.1:3', region: undefined }),
    );
  });
  it('default to the instance-metadata address, and refuse an endpoint that is not a URL', () => {
    expect(readAwsEnvironment({})).toEqual(E.right({ ec2Endpoint: undefined, instanceMetadataEndpoint: 'http://169.254.169.254', region: undefined }));
    expect(readAwsEnvironment({ AWS_ENDPOINT_URL_EC2: 'localhost:4566' })).toEqual(E.left('environment variable AWS_ENDPOINT_URL_EC2 must be an http(s) URL'));
  });
});
