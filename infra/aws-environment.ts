// The AWS SDK's standard variables that network discovery honours, read once here and passed on
// explicitly (adapters never read the environment):
//   AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL   the EC2 endpoint (unless
//                                                 AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true)
//   AWS_EC2_METADATA_DISABLED=true                no instance metadata
//   AWS_EC2_METADATA_SERVICE_ENDPOINT             instance metadata elsewhere (default 169.254.169.254)
//   AWS_REGION, else AWS_DEFAULT_REGION           the region when gateway.conf has no AWS_REGION
// Credentials are left to the SDK's default chain, which reads its own variables.
import * as E from 'fp-ts/lib/Either.js';

export interface AwsEnvironment {
  readonly ec2Endpoint: string | undefined;
  /** undefined when instance metadata is disabled. */
  readonly instanceMetadataEndpoint: string | undefined;
  readonly region: string | undefined;
}

export const DEFAULT_INSTANCE_METADATA_ENDPOINT = 'http://169.254.169.254';

const truthy = (v: string | undefined) => v !== undefined && v !== '' && v.toLowerCase() !== 'false';

export function readAwsEnvironment(env: NodeJS.ProcessEnv): E.Either<string, AwsEnvironment> {
  const value = (k: string) => (env[k] === '' ? undefined : env[k]);
  const ignoreEndpoints = value('AWS_IGNORE_CONFIGURED_ENDPOINT_URLS')?.toLowerCase() === 'true';
  const endpointKey = value('AWS_ENDPOINT_URL_EC2') !== undefined ? 'AWS_ENDPOINT_URL_EC2' : 'AWS_ENDPOINT_URL';
  const ec2Endpoint = ignoreEndpoints ? undefined : value(endpointKey);
  if (ec2Endpoint !== undefined && !isHttpUrl(ec2Endpoint)) return E.left(`environment variable ${endpointKey} must be an http(s) URL`);
  const imds = value('AWS_EC2_METADATA_SERVICE_ENDPOINT');
  if (imds !== undefined && !isHttpUrl(imds)) return E.left('environment variable AWS_EC2_METADATA_SERVICE_ENDPOINT must be an http(s) URL');
  return E.right({
    ec2Endpoint,
    instanceMetadataEndpoint: truthy(value('AWS_EC2_METADATA_DISABLED')) ? undefined : (imds ?? DEFAULT_INSTANCE_METADATA_ENDPOINT),
    region: value('AWS_REGION') ?? value('AWS_DEFAULT_REGION'),
  });
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
