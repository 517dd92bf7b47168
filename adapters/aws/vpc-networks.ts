// Network discovery: which networks a partial profile must route, read from the VPC's route
// tables with ec2:DescribeRouteTables and nothing else (the one permission the gateway's instance
// role has). The rules live in domain/networks.ts; this file talks to AWS and turns every way
// that can fail into one line an operator can act on.
//
// Everything it needs arrives as settings from the composition root (VPC_ID and AWS_REGION from
// gateway.conf, AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL and the instance-metadata endpoint from
// the environment). Credentials come from the SDK's default chain (environment, shared files,
// instance profile), unless a test passes its own.
import * as E from 'fp-ts/lib/Either.js';
import type { EC2ClientConfig, RouteTable } from '@aws-sdk/client-ec2';
import { classifyRoutes, normaliseCidrs } from '../../domain/networks.js';
import { InstanceMetadataError, readInstanceNetwork, type InstanceNetwork } from './instance-metadata.js';

export interface VpcDiscoverySettings {
  /** VPC_ID in gateway.conf; else the instance's own VPC from instance metadata. */
  readonly vpcId: string | undefined;
  /** AWS_REGION in gateway.conf; else the instance's region from instance metadata. */
  readonly region: string | undefined;
  /** AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL; undefined = the region's public endpoint. */
  readonly endpoint: string | undefined;
  /** The IMDS endpoint, or undefined when instance metadata is disabled (AWS_EC2_METADATA_DISABLED). */
  readonly instanceMetadataEndpoint: string | undefined;
  /** Attempts per request, throttling retries included (the SDK's standard retry mode). */
  readonly maxAttempts?: number;
  /** Route tables per page (EC2 allows 5–100). */
  readonly pageSize?: number;
  /** Tests pass static credentials; the gateway uses the SDK's default chain (its instance role). */
  readonly credentials?: EC2ClientConfig['credentials'];
  readonly imdsTimeoutMs?: number;
}

export interface DiscoveredNetworks {
  readonly vpcId: string;
  readonly region: string;
  /** Known from instance metadata; otherwise the first VPC CIDR the route tables name. */
  readonly primaryCidr: string | undefined;
  readonly vpcCidrs: readonly string[];
  readonly peeredCidrs: readonly string[];
  /** vpcCidrs and peeredCidrs together, normalised: what partial profiles route. */
  readonly routes: readonly string[];
  readonly routeTables: number;
  readonly pages: number;
}

export type DiscoveryFailureKind =
  | 'no-vpc'
  | 'no-region'
  | 'no-credentials'
  | 'access-denied'
  | 'bad-credentials'
  | 'throttled'
  | 'unreachable'
  | 'no-route-tables'
  | 'aws-error';

export interface DiscoveryFailure {
  readonly kind: DiscoveryFailureKind;
  /** One line, naming what to fix. */
  readonly message: string;
}

export type NetworkDiscovery = () => Promise<E.Either<DiscoveryFailure, DiscoveredNetworks>>;

export const DEFAULT_MAX_ATTEMPTS = 4;

const fail = (kind: DiscoveryFailureKind, message: string): E.Either<DiscoveryFailure, never> =>
  E.left({ kind, message: message.replace(/\s+/g, ' ').trim() });

export async function discoverVpcNetworks(settings: VpcDiscoverySettings): Promise<E.Either<DiscoveryFailure, DiscoveredNetworks>> {
  // Instance metadata fills in what gateway.conf leaves out, and knows which block is primary.
  let instance: InstanceNetwork | undefined;
  let metadataProblem: string | undefined;
  if (settings.instanceMetadataEndpoint) {
    try {
      instance = await readInstanceNetwork({ endpoint: settings.instanceMetadataEndpoint, timeoutMs: settings.imdsTimeoutMs });
    } catch (error) {
      if (!(error instanceof InstanceMetadataError)) throw error;
      metadataProblem = error.message;
    }
  } else {
    metadataProblem = 'instance metadata is disabled (AWS_EC2_METADATA_DISABLED)';
  }
  const vpcId = settings.vpcId ?? instance?.vpcId;
  if (!vpcId) return fail('no-vpc', `cannot tell which VPC to read: ${metadataProblem ?? 'no VPC id'}; set VPC_ID in gateway.conf`);
  const region = settings.region ?? instance?.region;
  if (!region) return fail('no-region', `cannot tell the AWS region: ${metadataProblem ?? 'no region'}; set AWS_REGION in gateway.conf`);
  const primaryFromMetadata = instance && instance.vpcId === vpcId ? instance.primaryCidr : undefined;

  // Loaded here, not at the top: the SDK is large, and only discovery needs it.
  const { EC2Client, paginateDescribeRouteTables } = await import('@aws-sdk/client-ec2');
  const client = new EC2Client({
    region,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    maxAttempts: settings.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    retryMode: 'standard',
  });
  const tables: RouteTable[] = [];
  let pages = 0;
  try {
    const paginator = paginateDescribeRouteTables(
      { client, pageSize: settings.pageSize ?? 100 },
      { Filters: [{ Name: 'vpc-id', Values: [vpcId] }] },
    );
    for await (const page of paginator) {
      pages++;
      tables.push(...(page.RouteTables ?? []));
    }
  } catch (error) {
    return E.left(describeAwsError(error, { vpcId, region, endpoint: settings.endpoint }));
  } finally {
    client.destroy();
  }

  if (tables.length === 0) {
    return fail('no-route-tables', `VPC ${vpcId} has no route tables in ${region} (or this account cannot see it): check VPC_ID and AWS_REGION in gateway.conf`);
  }
  // Route tables of other VPCs must not leak in, whatever the endpoint answered.
  const own = tables.filter((t) => t.VpcId === undefined || t.VpcId === vpcId);
  const { vpcCidrs, peeredCidrs } = classifyRoutes(
    own.flatMap((t) =>
      (t.Routes ?? []).map((r) => ({
        destinationCidrBlock: r.DestinationCidrBlock,
        gatewayId: r.GatewayId,
        vpcPeeringConnectionId: r.VpcPeeringConnectionId,
        state: r.State,
      })),
    ),
  );
  if (vpcCidrs.length === 0) {
    return fail('no-route-tables', `the route tables of VPC ${vpcId} have no local route: check VPC_ID in gateway.conf`);
  }
  const primaryCidr = primaryFromMetadata && vpcCidrs.includes(primaryFromMetadata) ? primaryFromMetadata : firstLocalCidr(own);
  return E.right({
    vpcId,
    region,
    primaryCidr,
    vpcCidrs,
    peeredCidrs,
    routes: normaliseCidrs([...vpcCidrs, ...peeredCidrs]),
    routeTables: own.length,
    pages,
  });
}

function firstLocalCidr(tables: readonly RouteTable[]): string | undefined {
  for (const t of tables) {
    for (const r of t.Routes ?? []) if (r.GatewayId === 'local' && r.DestinationCidrBlock) return r.DestinationCidrBlock;
  }
  return undefined;
}

const THROTTLING = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'TooManyRequestsException']);
const DENIED = new Set(['UnauthorizedOperation', 'AccessDenied', 'AccessDeniedException']);
const BAD_CREDENTIALS = new Set(['AuthFailure', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'ExpiredToken', 'RequestExpired']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

function describeAwsError(error: unknown, where: { vpcId: string; region: string; endpoint: string | undefined }): DiscoveryFailure {
  const e = error as Error & { code?: string; $metadata?: { attempts?: number; httpStatusCode?: number } };
  const name = e.name ?? 'Error';
  const attempts = e.$metadata?.attempts;
  const firstLine = (s: string | undefined) => (s ?? '').split('\n')[0]?.trim() ?? '';
  const target = where.endpoint ?? `the EC2 endpoint of ${where.region}`;
  const line = (kind: DiscoveryFailureKind, message: string): DiscoveryFailure => ({ kind, message: message.replace(/\s+/g, ' ').trim() });
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(e.message ?? '')) {
    return line(
      'no-credentials',
      'no AWS credentials: attach an instance profile (IAM role) that allows ec2:DescribeRouteTables to this instance, or provide credentials the AWS SDK can find',
    );
  }
  if (DENIED.has(name)) {
    return line('access-denied', `AWS refused ec2:DescribeRouteTables (${name}): the instance role must allow ec2:DescribeRouteTables (see the README, "IAM")`);
  }
  if (BAD_CREDENTIALS.has(name)) {
    return line('bad-credentials', `AWS rejected the credentials (${name}: ${firstLine(e.message)}); check the instance role or the credentials in use`);
  }
  if (THROTTLING.has(name)) {
    return line('throttled', `EC2 kept throttling DescribeRouteTables (${name}) after ${attempts ?? 'several'} attempts; try again in a minute`);
  }
  if ((e.code && NETWORK_CODES.has(e.code)) || name === 'TimeoutError' || name === 'RequestTimeout') {
    return line('unreachable', `cannot reach ${target} (${e.code ?? name}); check the network or AWS_ENDPOINT_URL_EC2`);
  }
  return line('aws-error', `DescribeRouteTables for ${where.vpcId} failed: ${name}: ${firstLine(e.message)}`);
}
