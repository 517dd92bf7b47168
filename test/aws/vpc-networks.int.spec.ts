// Network discovery with the real AWS SDK against EC2- and IMDS-shaped endpoints of this test's
// own on 127.0.0.1: the XML EC2 documents, pages, throttling, refused permissions, missing
// credentials. No request leaves the machine: every endpoint is given explicitly, credentials are
// static test values or come from the IMDS double, and the SDK's own look-ups (shared config
// files, instance metadata) are pointed at nothing.
import * as E from 'fp-ts/lib/Either.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { discoverVpcNetworks, type DiscoveredNetworks, type DiscoveryFailure, type VpcDiscoverySettings } from '../../adapters/aws/vpc-networks.js';
import { SAMPLE_NETWORKS, SAMPLE_VPC, sampleRouteTables, startFakeEc2, startFakeImds, type FakeEc2, type FakeImds } from '../support/fake-ec2.js';

const TEST_CREDENTIALS = { accessKeyId: 'AKIDTESTONLY0000', secretAccessKey: 'test-secret-not-real' };

// The SDK reads a few variables itself (credentials, shared files, instance metadata): give it a
// hermetic environment for this file and put the original back afterwards.
const savedEnv = { ...process.env };
beforeAll(() => {
  for (const key of Object.keys(process.env)) if (key.startsWith('AWS_')) delete process.env[key];
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/ovpn-ledger-test/credentials';
  process.env.AWS_CONFIG_FILE = '/nonexistent/ovpn-ledger-test/config';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
});
afterAll(() => {
  for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
  Object.assign(process.env, savedEnv);
});

let ec2: FakeEc2;
let imds: FakeImds | undefined;
beforeAll(async () => {
  ec2 = await startFakeEc2({ routeTables: sampleRouteTables(), pageSize: 2 });
});
afterAll(async () => {
  await ec2.close();
});
afterEach(async () => {
  ec2.requests.length = 0;
  ec2.throttleNext(0);
  ec2.failWith(undefined);
  ec2.setRouteTables(sampleRouteTables());
  await imds?.close();
  imds = undefined;
});

const configured = (over: Partial<VpcDiscoverySettings> = {}): VpcDiscoverySettings => ({
  vpcId: SAMPLE_VPC,
  region: 'eu-west-1',
  endpoint: ec2.url,
  instanceMetadataEndpoint: undefined,
  credentials: TEST_CREDENTIALS,
  pageSize: 5,
  ...over,
});

async function found(settings: VpcDiscoverySettings): Promise<DiscoveredNetworks> {
  const result = await discoverVpcNetworks(settings);
  if (E.isLeft(result)) throw new Error(`discovery failed: ${result.left.kind}: ${result.left.message}`);
  return result.right;
}

async function failure(settings: VpcDiscoverySettings): Promise<DiscoveryFailure> {
  const result = await discoverVpcNetworks(settings);
  if (E.isRight(result)) throw new Error(`discovery unexpectedly found ${result.right.routes.join(' ')}`);
  return result.left;
}

describe('VPC network discovery (real @aws-sdk/client-ec2, EC2 and IMDS doubles on 127.0.0.1)', () => {
  it('given VPC_ID and AWS_REGION, when its four route tables come in two pages, then it finds the primary and secondary blocks and the actively peered VPCs, and nothing else', async () => {
    const n = await found(configured());
    expect(n.vpcId).toBe(SAMPLE_VPC);
    expect(n.region).toBe('eu-west-1');
    expect(n.vpcCidrs).toEqual(SAMPLE_NETWORKS.vpcCidrs);
    // 10.50.0.0/16 appears in two tables (once); 172.31.0.0/16 is a blackhole of a deleted peering;
    // the transit-gateway, NAT, internet and prefix-list routes are not networks of the VPC.
    expect(n.peeredCidrs).toEqual(SAMPLE_NETWORKS.peeredCidrs);
    expect(n.routes).toEqual(SAMPLE_NETWORKS.routes);
    expect(n.routes).not.toContain('10.99.0.0/16');
    expect(n.routes).not.toContain('172.31.0.0/16');
    expect(n.routeTables).toBe(4);
    expect(n.pages).toBe(2);
    // Without instance metadata the primary block is the first local route named.
    expect(n.primaryCidr).toBe(SAMPLE_NETWORKS.primaryCidr);
  });

  it('then every request is a signed DescribeRouteTables filtered on the VPC, and each page after the first carries the previous NextToken', async () => {
    ec2.setRouteTables(sampleRouteTables());
    await found(configured());
    expect(ec2.requests.map((r) => r.action)).toEqual(['DescribeRouteTables', 'DescribeRouteTables']);
    for (const r of ec2.requests) {
      expect(r.params['Filter.1.Name']).toBe('vpc-id');
      expect(r.params['Filter.1.Value.1']).toBe(SAMPLE_VPC);
      expect(r.params['Version']).toBe('2016-11-15');
      expect(r.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTESTONLY0000\/\d{8}\/eu-west-1\/ec2\/aws4_request/);
    }
    expect(ec2.requests[0]?.params['NextToken']).toBeUndefined();
    expect(ec2.requests[1]?.params['NextToken']).toMatch(/\S+/);
  });

  it('given an endpoint that returns one table per page whatever MaxResults asks, then discovery follows every NextToken (four pages)', async () => {
    const small = await startFakeEc2({ routeTables: sampleRouteTables(), pageSize: 1 });
    try {
      const n = await found(configured({ endpoint: small.url }));
      expect(n.pages).toBe(4);
      expect(n.routes).toEqual(SAMPLE_NETWORKS.routes);
      expect(small.requests).toHaveLength(4);
    } finally {
      await small.close();
    }
  });

  it('given no VPC_ID or AWS_REGION, when instance metadata answers (IMDSv2), then the VPC, its region and its primary block come from there, every read carrying the session token', async () => {
    imds = await startFakeImds({ vpcId: SAMPLE_VPC, primaryCidr: '100.64.0.0/20', region: 'ap-southeast-2' });
    const n = await found(configured({ vpcId: undefined, region: undefined, instanceMetadataEndpoint: imds.url }));
    expect(n.vpcId).toBe(SAMPLE_VPC);
    expect(n.region).toBe('ap-southeast-2');
    // Instance metadata knows which block is primary, whatever order the route tables list them in.
    expect(n.primaryCidr).toBe('100.64.0.0/20');
    expect(imds.requests[0]).toMatchObject({ method: 'PUT', path: '/latest/api/token' });
    const reads = imds.requests.filter((r) => r.method === 'GET');
    expect(reads.map((r) => r.path)).toEqual(
      expect.arrayContaining(['/latest/meta-data/mac', expect.stringMatching(/\/vpc-id$/), '/latest/meta-data/placement/region']),
    );
    expect(reads.every((r) => r.hadToken)).toBe(true);
    expect(ec2.requests[0]?.authorization).toContain('/ap-southeast-2/ec2/aws4_request');
  });

  it('given no static credentials, when the SDK\'s default chain reads the instance role from instance metadata, then discovery signs with the role\'s credentials', async () => {
    imds = await startFakeImds({
      vpcId: SAMPLE_VPC,
      primaryCidr: '10.40.0.0/16',
      region: 'eu-west-1',
      roleCredentials: { accessKeyId: 'ASIAROLETESTONLY', secretAccessKey: 'role-secret-not-real', token: 'role-session-token' },
    });
    process.env.AWS_EC2_METADATA_DISABLED = 'false';
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
    try {
      const n = await found(configured({ credentials: undefined, instanceMetadataEndpoint: imds.url }));
      expect(n.routes).toEqual(SAMPLE_NETWORKS.routes);
      expect(ec2.requests[0]?.authorization).toMatch(/Credential=ASIAROLETESTONLY\//);
      expect(imds.requests.some((r) => r.path === '/latest/meta-data/iam/security-credentials/ovpn-gateway')).toBe(true);
    } finally {
      process.env.AWS_EC2_METADATA_DISABLED = 'true';
      delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    }
  });

  it('given EC2 throttles twice (503 RequestLimitExceeded), when discovery runs with 4 attempts, then the SDK retries and succeeds', async () => {
    ec2.throttleNext(2);
    const n = await found(configured({ maxAttempts: 4 }));
    expect(n.routes).toEqual(SAMPLE_NETWORKS.routes);
    expect(ec2.requests.map((r) => r.answer)).toEqual(['throttled', 'throttled', 'page', 'page']);
  });

  it('given EC2 keeps throttling, when the attempts are used up, then it stops after exactly maxAttempts and says so in one line', async () => {
    ec2.throttleNext(100, 'Throttling');
    const f = await failure(configured({ maxAttempts: 3 }));
    expect(f.kind).toBe('throttled');
    expect(f.message).toBe('EC2 kept throttling DescribeRouteTables (Throttling) after 3 attempts; try again in a minute');
    expect(ec2.requests).toHaveLength(3);
  });

  it('given the role lacks ec2:DescribeRouteTables (403 UnauthorizedOperation), then it fails at once, without retrying, naming the permission', async () => {
    ec2.failWith('UnauthorizedOperation');
    const f = await failure(configured());
    expect(f.kind).toBe('access-denied');
    expect(f.message).toMatch(/^AWS refused ec2:DescribeRouteTables \(UnauthorizedOperation\): the instance role must allow ec2:DescribeRouteTables/);
    expect(f.message).not.toContain('\n');
    expect(ec2.requests).toHaveLength(1);
  });

  it('given EC2 rejects the credentials (401 AuthFailure), then it says the credentials are wrong', async () => {
    ec2.failWith('AuthFailure');
    const f = await failure(configured());
    expect(f.kind).toBe('bad-credentials');
    expect(f.message).toMatch(/^AWS rejected the credentials \(AuthFailure: AWS was not able to validate/);
  });

  it('given no credentials anywhere (no environment keys, no shared files, instance metadata off), then it says so before any request', async () => {
    const f = await failure(configured({ credentials: undefined }));
    expect(f.kind).toBe('no-credentials');
    expect(f.message).toMatch(/^no AWS credentials: attach an instance profile \(IAM role\) that allows ec2:DescribeRouteTables/);
    expect(ec2.requests).toHaveLength(0);
  });

  it('given neither VPC_ID nor instance metadata, then it asks for VPC_ID', async () => {
    const f = await failure(configured({ vpcId: undefined }));
    expect(f).toEqual({
      kind: 'no-vpc',
      message: 'cannot tell which VPC to read: instance metadata is disabled (AWS_EC2_METADATA_DISABLED); set VPC_ID in gateway.conf',
    });
  });

  it('given instance metadata that does not answer, then the message names it and asks for VPC_ID', async () => {
    const closed = await startFakeImds({ vpcId: SAMPLE_VPC, primaryCidr: '10.40.0.0/16', region: 'eu-west-1' });
    const url = closed.url;
    await closed.close();
    const f = await failure(configured({ vpcId: undefined, instanceMetadataEndpoint: url }));
    expect(f.kind).toBe('no-vpc');
    expect(f.message).toMatch(new RegExp(`^cannot tell which VPC to read: instance metadata at ${url} is unreachable \\(ECONNREFUSED\\); set VPC_ID in gateway.conf$`));
  });

  it('given an EC2 endpoint that is down, then it says it cannot reach it', async () => {
    const down = await startFakeEc2({ routeTables: [] });
    const url = down.url;
    await down.close();
    const f = await failure(configured({ endpoint: url, maxAttempts: 2 }));
    expect(f.kind).toBe('unreachable');
    expect(f.message).toBe(`cannot reach ${url} (ECONNREFUSED); check the network or AWS_ENDPOINT_URL_EC2`);
  });

  it('given a VPC id the account does not have, then it says no route tables were found', async () => {
    const f = await failure(configured({ vpcId: 'vpc-0123456789abcdef0' }));
    expect(f.kind).toBe('no-route-tables');
    expect(f.message).toContain('VPC vpc-0123456789abcdef0 has no route tables in eu-west-1');
  });
});
