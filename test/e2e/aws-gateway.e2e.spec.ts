// The gateway on AWS, end to end: the built commands discover the VPC's networks through the real
// AWS SDK (against EC2 and instance-metadata doubles on 127.0.0.1, credentials from the double's
// instance role), issue profiles carrying exactly those networks, and push DNS that a real
// OpenVPN 2.6 client in a network namespace takes: split DNS for a partial profile, the resolver
// for everything for a full one, and a dns.conf change picked up at the next connection without
// restarting the server. Then the VPC gains a peering: ov_network_refresh records it and ov_status
// names the partial profile that lacks it.
//
// One scenario, in order; a step that needs an earlier one says so when it is missing.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCliBuilt, runCli, runCliOk, type CliCommand } from '../support/cli.js';
import { SAMPLE_NETWORKS, SAMPLE_VPC, sampleRouteTables, startFakeEc2, startFakeImds, type FakeEc2, type FakeImds } from '../support/fake-ec2.js';
import { assertOpenvpnLabAvailable, createNetns, startOpenvpnServer, tryConnect, type Netns, type OpenvpnServer } from '../support/openvpn-lab.js';

/** Every AWS_* variable of the test process removed, then the doubles' endpoints: nothing reaches AWS. */
function awsEnvironment(ec2: FakeEc2, imds: FakeImds): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const key of Object.keys(process.env)) if (key.startsWith('AWS_')) env[key] = undefined;
  return {
    ...env,
    AWS_ENDPOINT_URL_EC2: ec2.url,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/ovpn-ledger-test/credentials',
    AWS_CONFIG_FILE: '/nonexistent/ovpn-ledger-test/config',
  };
}

const routeLines = (profile: string) => profile.split('\n').filter((l) => /^route \d/.test(l));
const asRouteLine = (cidr: string) => {
  const [net = '', bits = '0'] = cidr.split('/');
  const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  return `route ${net} ${[24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join('.')}`;
};

describe('the gateway on AWS: discovered networks and DNS, with the real SDK and a real OpenVPN', () => {
  let work: string | undefined;
  let stateDir: string;
  let configDir: string;
  let ec2: FakeEc2 | undefined;
  let imds: FakeImds | undefined;
  let ns: Netns | undefined;
  let server: OpenvpnServer | undefined;
  const profiles: Partial<Record<'alice' | 'bob' | 'carol', string>> = {};

  const env = () => {
    if (!ec2 || !imds) throw new Error('the AWS doubles are not running');
    return { ...awsEnvironment(ec2, imds), OVL_STATE_DIR: stateDir, OVL_CONFIG_DIR: configDir, OVL_NOW: undefined, OVL_LOG_FILE: undefined, OVL_LOG_LEVEL: undefined };
  };
  const cli = (command: CliCommand, args: string[]) => runCli(command, args, { env: env() });
  const cliOk = (command: CliCommand, args: string[]) => runCliOk(command, args, { env: env() });
  const profile = (name: 'alice' | 'bob' | 'carol') => {
    const p = profiles[name];
    if (!p) throw new Error(`an earlier step failed: ${name}'s profile was not issued`);
    return p;
  };
  const live = () => {
    if (!ns || !server) throw new Error('an earlier step failed: the OpenVPN server is not running');
    return { ns, server };
  };

  /** Connects with an up script that writes the DNS options the client accepted, and returns them. */
  const acceptedDns = async (name: 'alice' | 'bob' | 'carol'): Promise<string[]> => {
    const { ns, server } = live();
    const out = join(work!, `${name}-${Date.now()}.env`);
    const res = await tryConnect(ns, profile(name), server, {
      // Our own script, in our own directory: it only copies what OpenVPN hands to scripts.
      extraArgs: ['--script-security', '2', '--up', join(work!, 'dump-dns.sh'), '--setenv', 'OVL_TEST_OUT', out],
    });
    expect(res.connected, `${res.reason}\n${res.log}`).toBe(true);
    return readFileSync(out, 'utf8').split('\n').filter(Boolean);
  };

  beforeAll(async () => {
    assertOpenvpnLabAvailable();
    assertCliBuilt();
    work = mkdtempSync(join(tmpdir(), 'ovl-aws-'));
    chmodSync(work, 0o755);
    stateDir = join(work, 'state');
    configDir = join(work, 'config');
    mkdirSync(configDir);
    writeFileSync(join(work, 'dump-dns.sh'), "#!/bin/sh\nenv | grep -E '^(dns_|foreign_option_)' | sort > \"$OVL_TEST_OUT\"\n", { mode: 0o755 });
    // Opt in to discovery: a region, no ROUTES; the VPC comes from instance metadata.
    writeFileSync(join(configDir, 'gateway.conf'), 'AWS_REGION=eu-west-1\n');
    writeFileSync(join(configDir, 'dns.conf'), 'VPN_DNS_DOMAIN_ROUTES="internal.example.com corp.example.local"\n');
    writeFileSync(join(configDir, 'email.conf'), `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME=Test\nDELIVERY=outbox\nOUTBOX_DIR=${join(work, 'outbox')}\n`, { mode: 0o600 });
    ec2 = await startFakeEc2({ routeTables: sampleRouteTables(), pageSize: 2 });
    imds = await startFakeImds({
      vpcId: SAMPLE_VPC,
      primaryCidr: SAMPLE_NETWORKS.primaryCidr,
      region: 'eu-west-1',
      roleCredentials: { accessKeyId: 'ASIAGATEWAYROLE01', secretAccessKey: 'role-secret-not-real', token: 'role-token' },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await ns?.destroy();
    await ec2?.close();
    await imds?.close();
    if (work && process.env.OVLAB_KEEP_LOGS !== '1') rmSync(work, { recursive: true, force: true });
  });

  it('given AWS_REGION in gateway.conf and no ROUTES, when ov_init runs on the instance, then it reads the VPC from instance metadata and its networks from the route tables, with the instance role, and prints no SDK warning', async () => {
    const res = await cli('ov_init', ['--public-host', '127.0.0.1']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toBe('');
    expect(res.stdout).toContain(
      `Networks of ${SAMPLE_VPC} (eu-west-1) for partial profiles: ${SAMPLE_NETWORKS.routes.join(' ')} (VPC ${SAMPLE_NETWORKS.vpcCidrs.join(' ')}; peered ${SAMPLE_NETWORKS.peeredCidrs.join(' ')}).`,
    );
    expect(res.stdout).toContain('DNS pushed to clients: 10.40.0.2 (split DNS for internal.example.com corp.example.local).');
    expect(ec2!.requests.length).toBeGreaterThanOrEqual(2);
    expect(ec2!.requests.every((r) => r.authorization?.includes('Credential=ASIAGATEWAYROLE01/'))).toBe(true);
    expect(imds!.requests.filter((r) => r.method === 'GET').every((r) => r.hadToken)).toBe(true);

    const conf = readFileSync(join(stateDir, 'openvpn', 'server.conf'), 'utf8');
    expect(conf).toContain('push "dns server 0 address 10.40.0.2"');
    expect(conf).toContain('push "dns server 0 resolve-domains internal.example.com corp.example.local"');
    expect(conf).toContain('push "dhcp-option DNS 10.40.0.2"');
    expect(conf).toContain(`client-config-dir ${join(stateDir, 'openvpn', 'ccd')}`);
    expect(existsSync(join(stateDir, 'openvpn', 'ccd', 'DEFAULT'))).toBe(true);
  });

  it('(the SDK does print that warning on this Node when nobody switches it off, so the check above means something)', () => {
    if (Number(process.versions.node.split('.')[0]) >= 22) return; // no warning on 22+
    const res = spawnSync(process.execPath, ['-e', "import('@aws-sdk/client-ec2').then((m) => new m.EC2Client({ region: 'eu-west-1' }))"], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
      cwd: dirname(dirname(dirname(new URL(import.meta.url).pathname))),
    });
    expect(res.stderr).toContain('NodeVersionSupportWarning');
  });

  it('when alice (all) and bob (partial) are added, then bob\'s profile routes exactly the discovered networks and carries split DNS; alice\'s ignores split-DNS domains', async () => {
    for (const [name, traffic] of [['alice', 'all'], ['bob', 'partial']] as const) {
      const out = await cliOk('ov_user_add', [
        '--first-name', name, '--last-name', 'Tester', '--email', `${name}@example.com`, '--traffic', traffic,
        '--expiration-date', new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10), '--creation-reason', 'e2e',
      ]);
      profiles[name] = /^Kept at (.+)\.$/m.exec(out)?.[1];
    }
    const bob = readFileSync(profile('bob'), 'utf8');
    expect(routeLines(bob)).toEqual(SAMPLE_NETWORKS.routes.map(asRouteLine));
    expect(bob).toMatch(/^pull-filter ignore "route "$/m);
    expect(bob).not.toMatch(/^route-nopull$/m);
    expect(bob).toMatch(/^dns server 0 resolve-domains internal\.example\.com corp\.example\.local$/m);
    const alice = readFileSync(profile('alice'), 'utf8');
    expect(routeLines(alice)).toEqual([]);
    expect(alice).toMatch(/^pull-filter ignore "dns server 0 resolve-domains"$/m);

    const listed = JSON.parse(await cliOk('ov_user_list', ['--json'])) as { email: string }[];
    expect(listed.map((u) => u.email)).toEqual(['alice@example.com', 'bob@example.com']);
  });

  it('given OpenVPN on the generated server.conf, when bob connects, then his client takes the split DNS the server pushes (not filtered as route-nopull would)', async () => {
    ns = await createNetns('ovl-aws');
    server = await startOpenvpnServer(ns, join(stateDir, 'openvpn', 'server.conf'));
    const dns = await acceptedDns('bob');
    expect(dns).toEqual(
      expect.arrayContaining([
        'dns_server_1_address_1=10.40.0.2',
        'dns_server_1_resolve_domain_1=internal.example.com',
        'dns_server_1_resolve_domain_2=corp.example.local',
        expect.stringMatching(/^foreign_option_\d+=dhcp-option DNS 10\.40\.0\.2$/),
        expect.stringMatching(/^foreign_option_\d+=dhcp-option DOMAIN internal\.example\.com$/),
      ]),
    );
  });

  it('when alice (full tunnel) connects, then her client takes the resolver for every query: the resolve-domains push is filtered out', async () => {
    const dns = await acceptedDns('alice');
    expect(dns).toContain('dns_server_1_address_1=10.40.0.2');
    expect(dns.filter((l) => l.includes('resolve_domain'))).toEqual([]);
  });

  it('given dns.conf changed, when ov_dns_apply runs, then bob gets the new domains at his next connection from the same server, never restarted', async () => {
    writeFileSync(join(configDir, 'dns.conf'), 'VPN_DNS_DOMAIN_ROUTES="vpn-only.example.org"\n');
    const out = await cliOk('ov_dns_apply', []);
    expect(out).toContain('DNS pushed: 10.40.0.2 (the VPC resolver); partial profiles resolve only vpn-only.example.org through it.');
    expect(out).toContain('each client gets the new settings at its next connection');
    const dns = await acceptedDns('bob');
    expect(dns).toContain('dns_server_1_resolve_domain_1=vpn-only.example.org');
    expect(dns.filter((l) => l.includes('internal.example.com'))).toEqual([]);
    const { server } = live();
    expect(server.log().match(/Initialization Sequence Completed/g)).toHaveLength(1);
  });

  it('given the VPC gained a peering, when ov_network_refresh runs, then it records the new network, and a second run records nothing', async () => {
    ec2!.setRouteTables([
      ...sampleRouteTables(),
      { id: 'rtb-0new0000000000006', vpcId: SAMPLE_VPC, routes: [{ cidr: '10.40.0.0/16', gatewayId: 'local' }, { cidr: '10.70.0.0/16', peeringId: 'pcx-0new' }] },
    ]);
    const first = await cliOk('ov_network_refresh', []);
    expect(first).toContain('Recorded (NetworksDiscovered): added 10.70.0.0/16; removed none.');
    expect(first).toContain('1 partial profile(s) lack a network; reissue them (ov_user_delete, ov_user_add):\n  bob@example.com lacks 10.70.0.0/16');
    const second = await cliOk('ov_network_refresh', []);
    expect(second).toContain('Unchanged since the last discovery: nothing recorded.');
  });

  it('then ov_status warns (exit 1) and names bob as lacking 10.70.0.0/16, while OpenVPN answers', async () => {
    const res = await cli('ov_status', ['--json']);
    expect(res.code, res.stdout + res.stderr).toBe(1);
    const status = JSON.parse(res.stdout) as {
      status: string;
      checks: { name: string; status: string }[];
      networks: { stale: { email: string; missing: string[] }[] };
      openvpn: { reachable: boolean };
    };
    expect(status.status).toBe('warning');
    expect(status.checks.find((c) => c.name === 'networks')?.status).toBe('warning');
    expect(status.checks.filter((c) => c.status !== 'ok').map((c) => c.name)).toEqual(['networks']);
    expect(status.networks.stale).toEqual([expect.objectContaining({ email: 'bob@example.com', missing: ['10.70.0.0/16'] })]);
    expect(status.openvpn.reachable).toBe(true);
  });

  it('when carol (partial) is added now, then her profile routes the new network too', async () => {
    const out = await cliOk('ov_user_add', [
      '--first-name', 'Carol', '--last-name', 'Tester', '--email', 'carol@example.com', '--traffic', 'partial',
      '--expiration-date', new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10), '--creation-reason', 'e2e',
    ]);
    profiles.carol = /^Kept at (.+)\.$/m.exec(out)?.[1];
    expect(routeLines(readFileSync(profile('carol'), 'utf8'))).toEqual(
      ['10.40.0.0/16', '10.50.0.0/16', '10.70.0.0/16', '100.64.0.0/20', '192.168.10.0/24'].map(asRouteLine),
    );
    expect(basename(dirname(profile('carol')))).toMatch(/^p[0-9a-f]{24}$/);
  });

  it('given the instance role loses ec2:DescribeRouteTables, when ov_network_refresh runs, then it exits 5 with one line naming the permission and records nothing', async () => {
    ec2!.failWith('UnauthorizedOperation');
    try {
      const res = await cli('ov_network_refresh', []);
      expect(res.code).toBe(5);
      expect(res.stdout).toBe('');
      expect(res.stderr).toMatch(/^ov_network_refresh: network discovery failed: AWS refused ec2:DescribeRouteTables \(UnauthorizedOperation\): the instance role must allow ec2:DescribeRouteTables[^\n]*\n$/);
    } finally {
      ec2!.failWith(undefined);
    }
  });

  it('given EC2 throttles every call, when ov_network_refresh runs, then the SDK gives up after its bounded attempts and the command exits 1 saying so', async () => {
    ec2!.requests.length = 0;
    ec2!.throttleNext(1_000);
    try {
      const res = await cli('ov_network_refresh', []);
      expect(res.code).toBe(1);
      expect(res.stderr).toBe('ov_network_refresh: network discovery failed: EC2 kept throttling DescribeRouteTables (RequestLimitExceeded) after 4 attempts; try again in a minute\n');
      expect(ec2!.requests).toHaveLength(4);
    } finally {
      ec2!.throttleNext(0);
    }
  });
});

describe('ov_init with discovery asked for but impossible', () => {
  it('given VPC_ID but no credentials and no instance metadata, when ov_init runs, then it exits 5 before creating a CA, a key or a server config, and a corrected gateway.conf then initialises normally', async () => {
    assertCliBuilt();
    const work = mkdtempSync(join(tmpdir(), 'ovl-aws-nocreds-'));
    try {
      const configDir = join(work, 'config');
      mkdirSync(configDir);
      writeFileSync(join(configDir, 'gateway.conf'), 'VPC_ID=vpc-0a1b2c3d4e5f60718\nAWS_REGION=eu-west-1\n');
      const env: Record<string, string | undefined> = {};
      for (const key of Object.keys(process.env)) if (key.startsWith('AWS_')) env[key] = undefined;
      const res = await runCli('ov_init', ['--public-host', 'vpn.example.com'], {
        env: {
          ...env,
          AWS_EC2_METADATA_DISABLED: 'true',
          AWS_ENDPOINT_URL_EC2: 'http://127.0.0.1:9', // never reached: credentials fail first
          AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/ovpn-ledger-test/credentials',
          AWS_CONFIG_FILE: '/nonexistent/ovpn-ledger-test/config',
          OVL_STATE_DIR: join(work, 'state'),
          OVL_CONFIG_DIR: configDir,
        },
      });
      expect(res.code).toBe(5);
      expect(res.stderr).toBe(
        'ov_init: network discovery failed: no AWS credentials: attach an instance profile (IAM role) that allows ec2:DescribeRouteTables to this instance, or provide credentials the AWS SDK can find\n',
      );
      for (const file of ['keys/ca.key', 'keys/server.key', 'openvpn/ca.crt', 'openvpn/server.conf', 'openvpn/crl.pem']) {
        expect(existsSync(join(work, 'state', file)), file).toBe(false);
      }
      // Nothing was recorded either: with ROUTES set (discovery off), the same ov_init succeeds.
      writeFileSync(join(configDir, 'gateway.conf'), 'ROUTES="10.0.0.0/16"\nVPC_ID=vpc-0a1b2c3d4e5f60718\n');
      const again = await runCli('ov_init', ['--public-host', 'vpn.example.com'], {
        env: { ...env, AWS_EC2_METADATA_DISABLED: 'true', OVL_STATE_DIR: join(work, 'state'), OVL_CONFIG_DIR: configDir },
      });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/^Gateway initialised for vpn\.example\.com:1194\/udp\./);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
