// ov_network_refresh (at boot, and by hand): discover the VPC's networks again, record them when
// they changed, regenerate the server config (the VPC resolver may have moved with the primary
// block), and say which partial profiles now lack a network.
import * as E from 'fp-ts/lib/Either.js';
import type { DiscoveredNetworks, NetworkDiscovery } from '../../adapters/aws/vpc-networks.js';
import { diffRoutes, type RouteSource } from '../../domain/networks.js';
import { refused, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import {
  currentRoutes,
  discoveryFailure,
  recordDiscovery,
  stalePartialProfiles,
  writeServerConfig,
  type StaleReport,
  type WrittenServerConfig,
} from './gateway-networks.js';

export interface RefreshResult {
  readonly found: DiscoveredNetworks;
  /** A NetworksDiscovered event was appended (something changed since the last one). */
  readonly recorded: boolean;
  /** Against the networks recorded before this run. */
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly current: { readonly routes: readonly string[]; readonly source: RouteSource };
  readonly config: WrittenServerConfig;
  readonly stale: StaleReport;
}

export async function refreshNetworks(ledger: Ledger, discover: NetworkDiscovery): Promise<E.Either<Failure, RefreshResult>> {
  const gateway = ledger.projections.gateway();
  if (!gateway) return E.left(refused('this gateway is not initialised: run ov_init first'));
  const before = gateway.networks?.routes ?? [];
  const found = await discover();
  if (E.isLeft(found)) return E.left(discoveryFailure(found.left));
  const recorded = await recordDiscovery(ledger, found.right);
  const { added, removed } = diffRoutes(before, found.right.routes);
  ledger.log.info({ vpcId: found.right.vpcId, routes: found.right.routes, recorded, added, removed }, 'networks refreshed');
  const config = writeServerConfig(ledger, gateway);
  return E.right({ found: found.right, recorded, added, removed, current: currentRoutes(ledger), config, stale: stalePartialProfiles(ledger) });
}

export interface DnsApplyResult {
  readonly config: WrittenServerConfig;
}

/** ov_dns_apply: dns.conf (already loaded into the settings) into server.conf and ccd/DEFAULT. */
export function applyDns(ledger: Ledger): E.Either<Failure, DnsApplyResult> {
  const gateway = ledger.projections.gateway();
  if (!gateway) return E.left(refused('this gateway is not initialised: run ov_init first'));
  return E.right({ config: writeServerConfig(ledger, gateway) });
}
