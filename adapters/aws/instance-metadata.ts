// The EC2 instance metadata service, IMDSv2 only: a session token first (PUT), then GETs that
// carry it. Enough to learn which VPC, primary CIDR and region this gateway runs in. The endpoint
// is passed in by the composition root (AWS_EC2_METADATA_SERVICE_ENDPOINT, or 169.254.169.254);
// nothing here reads the environment.

export interface InstanceMetadataOptions {
  /** e.g. http://169.254.169.254 */
  readonly endpoint: string;
  /** Per request; off EC2 the address does not answer at all, so keep it short. */
  readonly timeoutMs?: number;
}

export interface InstanceNetwork {
  readonly vpcId: string;
  /** The VPC's primary IPv4 CIDR (the resolver lives at its base + 2). */
  readonly primaryCidr: string | undefined;
  readonly region: string | undefined;
}

export class InstanceMetadataError extends Error {
  override readonly name = 'InstanceMetadataError';
}

const TOKEN_TTL_SECONDS = 60;

export async function readInstanceNetwork(options: InstanceMetadataOptions): Promise<InstanceNetwork> {
  const base = options.endpoint.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 1_000;
  const call = async (method: 'PUT' | 'GET', path: string, headers: Record<string, string>): Promise<Response> => {
    try {
      return await fetch(`${base}${path}`, { method, headers, signal: AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      const e = error as Error & { cause?: { code?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message);
      throw new InstanceMetadataError(`instance metadata at ${base} is unreachable (${why})`);
    }
  };

  const tokenResponse = await call('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) });
  if (!tokenResponse.ok) {
    throw new InstanceMetadataError(`instance metadata at ${base} refused an IMDSv2 token (HTTP ${tokenResponse.status})`);
  }
  const token = (await tokenResponse.text()).trim();
  const get = async (path: string, required: boolean): Promise<string | undefined> => {
    const r = await call('GET', `/latest/meta-data/${path}`, { 'x-aws-ec2-metadata-token': token });
    if (r.ok) return (await r.text()).trim();
    if (required) throw new InstanceMetadataError(`instance metadata has no ${path} (HTTP ${r.status})`);
    return undefined;
  };

  const mac = await get('mac', true);
  const vpcId = await get(`network/interfaces/macs/${mac}/vpc-id`, true);
  if (!vpcId || !/^vpc-[0-9a-f]+$/.test(vpcId)) throw new InstanceMetadataError(`instance metadata gave an unexpected VPC id ${JSON.stringify(vpcId)}`);
  const primaryCidr = await get(`network/interfaces/macs/${mac}/vpc-ipv4-cidr-block`, false);
  const region = await get('placement/region', false);
  return { vpcId, primaryCidr, region };
}
