// Test doubles of the two AWS endpoints network discovery talks to, on 127.0.0.1 only:
//
// - an EC2 endpoint speaking the EC2 query protocol (POST, form-encoded Action=DescribeRouteTables,
//   Filter.N.Name / Filter.N.Value.M, MaxResults, NextToken) and answering with EC2's documented
//   XML (DescribeRouteTablesResponse / routeTableSet / item / routeSet / item, nextToken) or its
//   error document (Response / Errors / Error / Code, Message; RequestID);
// - an instance-metadata service (IMDSv2: PUT /latest/api/token, then GETs carrying the token),
//   including the instance-profile credentials the AWS SDK's default chain reads.
//
// Point the real SDK at them with AWS_ENDPOINT_URL_EC2 / an explicit endpoint, and with
// AWS_EC2_METADATA_SERVICE_ENDPOINT (or turn instance metadata off): no test reaches AWS.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRoute {
  readonly cidr?: string;
  readonly ipv6Cidr?: string;
  readonly prefixListId?: string;
  /** `local` for the VPC's own blocks, `igw-…` for an internet gateway. */
  readonly gatewayId?: string;
  readonly peeringId?: string;
  readonly natGatewayId?: string;
  readonly transitGatewayId?: string;
  readonly state?: 'active' | 'blackhole';
  readonly origin?: 'CreateRouteTable' | 'CreateRoute' | 'EnableVgwRoutePropagation';
}

export interface FakeRouteTable {
  readonly id: string;
  readonly vpcId: string;
  readonly main?: boolean;
  readonly subnetIds?: readonly string[];
  readonly routes: readonly FakeRoute[];
}

export interface RecordedEc2Request {
  readonly action: string | undefined;
  readonly params: Readonly<Record<string, string>>;
  readonly authorization: string | undefined;
  readonly answer: 'page' | 'throttled' | 'denied' | 'auth-failure' | 'bad-request';
}

export type Ec2Failure = 'UnauthorizedOperation' | 'AuthFailure';

export interface FakeEc2 {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly requests: RecordedEc2Request[];
  setRouteTables(tables: readonly FakeRouteTable[]): void;
  /** The next `count` DescribeRouteTables calls are answered 503 RequestLimitExceeded. */
  throttleNext(count: number, code?: 'RequestLimitExceeded' | 'Throttling'): void;
  /** Every call fails this way until cleared with undefined. */
  failWith(failure: Ec2Failure | undefined): void;
  close(): Promise<void>;
}

const XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const el = (name: string, value: string | undefined) => (value === undefined ? '' : `<${name}>${escapeXml(value)}</${name}>`);

function routeXml(r: FakeRoute): string {
  return [
    '<item>',
    el('destinationCidrBlock', r.cidr),
    el('destinationIpv6CidrBlock', r.ipv6Cidr),
    el('destinationPrefixListId', r.prefixListId),
    el('gatewayId', r.gatewayId),
    el('natGatewayId', r.natGatewayId),
    el('transitGatewayId', r.transitGatewayId),
    el('vpcPeeringConnectionId', r.peeringId),
    el('state', r.state ?? 'active'),
    el('origin', r.origin ?? (r.gatewayId === 'local' ? 'CreateRouteTable' : 'CreateRoute')),
    '</item>',
  ].join('');
}

function routeTableXml(t: FakeRouteTable): string {
  const associations = [
    ...(t.main ? [{ id: `rtbassoc-${t.id.slice(4)}m`, main: true, subnetId: undefined }] : []),
    ...(t.subnetIds ?? []).map((s, i) => ({ id: `rtbassoc-${t.id.slice(4)}${i}`, main: false, subnetId: s })),
  ];
  return [
    '<item>',
    el('routeTableId', t.id),
    el('vpcId', t.vpcId),
    el('ownerId', '123456789012'),
    '<routeSet>',
    ...t.routes.map(routeXml),
    '</routeSet>',
    '<associationSet>',
    ...associations.map((a) =>
      [
        '<item>',
        el('routeTableAssociationId', a.id),
        el('routeTableId', t.id),
        el('subnetId', a.subnetId),
        el('main', String(a.main)),
        '<associationState><state>associated</state></associationState>',
        '</item>',
      ].join(''),
    ),
    '</associationSet>',
    '<propagatingVgwSet/>',
    '<tagSet/>',
    '</item>',
  ].join('');
}

function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${randomUuid()}</RequestID></Response>`;
}

function randomUuid(): string {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/** `Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1` → { 'vpc-id': ['vpc-1'] } */
function filtersOf(params: Record<string, string>): Map<string, string[]> {
  const filters = new Map<string, string[]>();
  for (const [key, name] of Object.entries(params)) {
    const m = /^Filter\.(\d+)\.Name$/.exec(key);
    if (!m) continue;
    const values = Object.entries(params)
      .filter(([k]) => k.startsWith(`Filter.${m[1]}.Value.`))
      .map(([, v]) => v);
    filters.set(name, values);
  }
  return filters;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * An EC2 endpoint for DescribeRouteTables. Pages hold `pageSize` route tables (whatever
 * MaxResults asks for, as EC2 may return fewer than asked); the NextToken is opaque.
 */
export async function startFakeEc2(options: { routeTables: readonly FakeRouteTable[]; pageSize?: number }): Promise<FakeEc2> {
  let tables = [...options.routeTables];
  const pageSize = options.pageSize ?? 2;
  const requests: RecordedEc2Request[] = [];
  let throttles = 0;
  let throttleCode: 'RequestLimitExceeded' | 'Throttling' = 'RequestLimitExceeded';
  let failure: Ec2Failure | undefined;
  const tokens = new Map<string, number>();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = req.method === 'POST' ? await readBody(req) : (req.url ?? '').split('?')[1] ?? '';
    const params = Object.fromEntries(new URLSearchParams(body));
    const action = params['Action'];
    const record = (answer: RecordedEc2Request['answer']) => requests.push({ action, params, authorization: req.headers.authorization, answer });
    const send = (status: number, xml: string) => {
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': randomUuid() });
      res.end(xml);
    };
    if (action !== 'DescribeRouteTables') {
      record('bad-request');
      return send(400, errorXml('InvalidAction', `The action ${action ?? '(none)'} is not valid for this web service.`));
    }
    if (!req.headers.authorization?.startsWith('AWS4-HMAC-SHA256 Credential=')) {
      record('auth-failure');
      return send(401, errorXml('AuthFailure', 'AWS was not able to validate the provided access credentials'));
    }
    if (failure === 'UnauthorizedOperation') {
      record('denied');
      return send(403, errorXml('UnauthorizedOperation', 'You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/gateway/i-0abc is not authorized to perform: ec2:DescribeRouteTables'));
    }
    if (failure === 'AuthFailure') {
      record('auth-failure');
      return send(401, errorXml('AuthFailure', 'AWS was not able to validate the provided access credentials'));
    }
    if (throttles > 0) {
      throttles--;
      record('throttled');
      return send(503, errorXml(throttleCode, 'Request limit exceeded.'));
    }
    const filters = filtersOf(params);
    const vpcs = filters.get('vpc-id');
    const matching = tables.filter((t) => vpcs === undefined || vpcs.includes(t.vpcId));
    const token = params['NextToken'];
    let start = 0;
    if (token !== undefined) {
      const at = tokens.get(token);
      if (at === undefined) {
        record('bad-request');
        return send(400, errorXml('InvalidParameterValue', `The value for NextToken is invalid: ${token}`));
      }
      start = at;
    }
    const page = matching.slice(start, start + pageSize);
    let next: string | undefined;
    if (start + pageSize < matching.length) {
      next = randomBytes(12).toString('base64url');
      tokens.set(next, start + pageSize);
    }
    record('page');
    send(
      200,
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        `<DescribeRouteTablesResponse xmlns="${XMLNS}">`,
        el('requestId', randomUuid()),
        '<routeTableSet>',
        ...page.map(routeTableXml),
        '</routeTableSet>',
        el('nextToken', next),
        '</DescribeRouteTablesResponse>',
      ].join('\n'),
    );
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.writeHead(500);
      res.end(String(error));
    });
  });
  const url = await listen(server);
  return {
    url,
    requests,
    setRouteTables: (t) => {
      tables = [...t];
    },
    throttleNext: (count, code = 'RequestLimitExceeded') => {
      throttles = count;
      throttleCode = code;
    },
    failWith: (f) => {
      failure = f;
    },
    close: () => closeServer(server),
  };
}

// ---------------------------------------------------------------------------------------------
// Instance metadata (IMDSv2 only: a GET without a token gets 401, as on an instance that
// requires IMDSv2)

export interface FakeImdsOptions {
  readonly vpcId: string;
  readonly primaryCidr: string;
  readonly region: string;
  readonly mac?: string;
  /** Instance-profile credentials served to the SDK's default chain; none = no role attached. */
  readonly roleCredentials?: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly token: string };
}

export interface RecordedImdsRequest {
  readonly method: string;
  readonly path: string;
  readonly hadToken: boolean;
}

export interface FakeImds {
  readonly url: string;
  readonly requests: RecordedImdsRequest[];
  close(): Promise<void>;
}

export async function startFakeImds(options: FakeImdsOptions): Promise<FakeImds> {
  const mac = options.mac ?? '0e:12:34:56:78:9a';
  const role = 'ovpn-gateway';
  const tokens = new Set<string>();
  const requests: RecordedImdsRequest[] = [];
  const values: Record<string, string> = {
    mac,
    [`network/interfaces/macs/${mac}/vpc-id`]: options.vpcId,
    [`network/interfaces/macs/${mac}/vpc-ipv4-cidr-block`]: options.primaryCidr,
    'placement/region': options.region,
  };
  if (options.roleCredentials) {
    const c = options.roleCredentials;
    values['iam/security-credentials/'] = role;
    values[`iam/security-credentials/${role}`] = JSON.stringify({
      Code: 'Success',
      LastUpdated: new Date().toISOString(),
      Type: 'AWS-HMAC',
      AccessKeyId: c.accessKeyId,
      SecretAccessKey: c.secretAccessKey,
      Token: c.token,
      Expiration: new Date(Date.now() + 6 * 3_600_000).toISOString(),
    });
  }
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const token = req.headers['x-aws-ec2-metadata-token'];
    requests.push({ method: req.method ?? '', path, hadToken: typeof token === 'string' && tokens.has(token) });
    if (req.method === 'PUT' && path === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) {
        res.writeHead(400);
        return res.end();
      }
      const t = randomBytes(24).toString('base64');
      tokens.add(t);
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(t);
    }
    if (req.method !== 'GET') {
      res.writeHead(405);
      return res.end();
    }
    if (typeof token !== 'string' || !tokens.has(token)) {
      res.writeHead(401);
      return res.end();
    }
    const value = values[path.replace(/^\/latest\/meta-data\//, '')];
    if (!path.startsWith('/latest/meta-data/') || value === undefined) {
      res.writeHead(404, { 'content-type': 'text/html' });
      return res.end('<html><body><h1>404 - Not Found</h1></body></html>');
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(value);
  });
  const url = await listen(server);
  return { url, requests, close: () => closeServer(server) };
}

// ---------------------------------------------------------------------------------------------
// A VPC as the specs use it: a primary and a secondary block, two peerings (one gone), spread
// over several route tables and pages.

export const SAMPLE_VPC = 'vpc-0a1b2c3d4e5f60718';

export function sampleRouteTables(vpcId = SAMPLE_VPC): FakeRouteTable[] {
  const local = [
    { cidr: '10.40.0.0/16', gatewayId: 'local' },
    { cidr: '100.64.0.0/20', gatewayId: 'local' },
    { ipv6Cidr: '2600:1f18:abcd:1200::/56', gatewayId: 'local' },
  ];
  return [
    { id: 'rtb-0main000000000001', vpcId, main: true, routes: [...local, { cidr: '0.0.0.0/0', gatewayId: 'igw-0f00d' }] },
    {
      id: 'rtb-0public0000000002',
      vpcId,
      subnetIds: ['subnet-0aaa'],
      routes: [...local, { cidr: '0.0.0.0/0', gatewayId: 'igw-0f00d' }, { cidr: '10.50.0.0/16', peeringId: 'pcx-0active00000001' }],
    },
    {
      id: 'rtb-0private000000003',
      vpcId,
      subnetIds: ['subnet-0bbb', 'subnet-0ccc'],
      routes: [
        ...local,
        { cidr: '0.0.0.0/0', natGatewayId: 'nat-0beef' },
        { cidr: '10.50.0.0/16', peeringId: 'pcx-0active00000001' },
        // A peering that was deleted: its route stays behind as a blackhole.
        { cidr: '172.31.0.0/16', peeringId: 'pcx-0deleted0000002', state: 'blackhole' },
        { prefixListId: 'pl-63a5400a', gatewayId: 'vpce-0s3' },
      ],
    },
    {
      id: 'rtb-0data000000000004',
      vpcId,
      subnetIds: ['subnet-0ddd'],
      routes: [...local, { cidr: '192.168.10.0/24', peeringId: 'pcx-0active00000003' }, { cidr: '10.60.0.0/16', transitGatewayId: 'tgw-0t' }],
    },
    // Another VPC of the same account: never part of the answer for SAMPLE_VPC.
    { id: 'rtb-0other00000000005', vpcId: 'vpc-0ffffffffffffffff', main: true, routes: [{ cidr: '10.99.0.0/16', gatewayId: 'local' }] },
  ];
}

/** What discovery must find in sampleRouteTables(). */
export const SAMPLE_NETWORKS = {
  vpcCidrs: ['10.40.0.0/16', '100.64.0.0/20'],
  peeredCidrs: ['10.50.0.0/16', '192.168.10.0/24'],
  routes: ['10.40.0.0/16', '10.50.0.0/16', '100.64.0.0/20', '192.168.10.0/24'],
  primaryCidr: '10.40.0.0/16',
  resolver: '10.40.0.2',
} as const;
