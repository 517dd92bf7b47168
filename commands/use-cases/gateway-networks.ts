// The gateway's networks and DNS as the use cases need them: which networks new partial profiles
// route, what clients are told about DNS, which partial profiles lack a network the gateway now
// serves, and recording a discovery in the gateway stream when it changed something.
import { existsSync, readFileSync } from 'node:fs';
import type { DiscoveredNetworks, DiscoveryFailure } from '../../adapters/aws/vpc-networks.js';
import { writeFileAtomic } from '../../adapters/fs/atomic-file.js';
import { ensureDirectory, MODE } from '../../adapters/fs/state-layout.js';
import { clientConfigDefault, clientConfigDir, renderClientConfigDefault, renderServerConfig } from '../../adapters/openvpn/server-config.js';
import { planDns, type DnsPlan } from '../../domain/dns.js';
import type { EventOf } from '../../domain/events.js';
import { effectiveRoutes, missingNetworks, normaliseCidrs, sameRoutes, vpcResolverOf, type RouteSource } from '../../domain/networks.js';
import type { GatewayRow } from '../../projections/gateway.js';
import { EXIT, misconfigured, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { appendAndProject, GATEWAY_STREAM } from './profile-stream.js';

/**
 * A failed discovery as a command's failure: what the operator must configure (settings,
 * credentials, permission) exits 5; what may pass by itself (throttling, network) exits 1.
 */
export function discoveryFailure(f: DiscoveryFailure): Failure {
  const message = `network discovery failed: ${f.message}`;
  return f.kind === 'throttled' || f.kind === 'unreachable' || f.kind === 'aws-error' ? { exitCode: EXIT.unexpected, message } : misconfigured(message);
}

/** The networks a partial profile issued now routes, and where that set comes from. */
export function currentRoutes(ledger: Ledger): { readonly routes: readonly string[]; readonly source: RouteSource } {
  return effectiveRoutes(ledger.settings.routes, ledger.projections.gateway()?.networks?.routes);
}

/** dns.conf over the recorded VPC: its resolver unless dns.conf names others. */
export function dnsPlanOf(ledger: Ledger, primaryCidr = ledger.projections.gateway()?.networks?.primaryCidr): DnsPlan {
  return planDns({
    configuredServers: ledger.settings.dns.servers,
    vpcResolver: primaryCidr === undefined ? undefined : vpcResolverOf(primaryCidr),
    domainRoutes: ledger.settings.dns.domainRoutes,
  });
}

export interface WrittenServerConfig {
  readonly serverConf: string;
  readonly clientConfigDefault: string;
  readonly dns: DnsPlan;
  /** server.conf changed: takes effect when OpenVPN restarts. */
  readonly serverConfChanged: boolean;
  /** ccd/DEFAULT changed: takes effect at each client's next connection. */
  readonly clientDefaultChanged: boolean;
}

/** Renders server.conf and ccd/DEFAULT from state; writes (atomically) only what changed. */
export function writeServerConfig(
  ledger: Ledger,
  base: Pick<GatewayRow, 'port' | 'proto' | 'vpnNetwork'>,
  dns: DnsPlan = dnsPlanOf(ledger),
): WrittenServerConfig {
  const { layout } = ledger;
  ensureDirectory(layout.openvpnDir, MODE.publicDir);
  ensureDirectory(clientConfigDir(layout), MODE.publicDir);
  const serverConfChanged = writeIfChanged(
    layout.serverConf,
    renderServerConfig({ layout, port: base.port, proto: base.proto, vpnNetwork: base.vpnNetwork, dns }),
  );
  const clientDefaultChanged = writeIfChanged(clientConfigDefault(layout), renderClientConfigDefault(dns));
  return { serverConf: layout.serverConf, clientConfigDefault: clientConfigDefault(layout), dns, serverConfChanged, clientDefaultChanged };
}

function writeIfChanged(path: string, text: string): boolean {
  if (existsSync(path) && readFileSync(path, 'utf8') === text) return false;
  writeFileAtomic(path, text, MODE.publicFile);
  return true;
}

export function networksDiscoveredEvent(found: DiscoveredNetworks): EventOf<'NetworksDiscovered'> {
  return {
    type: 'NetworksDiscovered',
    data: {
      routes: [...found.routes],
      source: 'ec2-route-tables',
      vpcId: found.vpcId,
      region: found.region,
      vpcCidrs: [...found.vpcCidrs],
      peeredCidrs: [...found.peeredCidrs],
      ...(found.primaryCidr === undefined ? {} : { primaryCidr: found.primaryCidr }),
    },
  };
}

/** True when a discovery says something the last recorded one did not. */
export function discoveryChanges(recorded: GatewayRow['networks'], found: DiscoveredNetworks): boolean {
  if (!recorded) return true;
  return (
    recorded.vpcId !== found.vpcId ||
    recorded.region !== found.region ||
    recorded.primaryCidr !== found.primaryCidr ||
    !sameRoutes(recorded.vpcCidrs, found.vpcCidrs) ||
    !sameRoutes(recorded.peeredCidrs, found.peeredCidrs)
  );
}

/** Appends NetworksDiscovered to the gateway stream when it changes something; returns whether it did. */
export async function recordDiscovery(ledger: Ledger, found: DiscoveredNetworks): Promise<boolean> {
  if (!discoveryChanges(ledger.projections.gateway()?.networks, found)) return false;
  const stream = await ledger.store.readStream(GATEWAY_STREAM);
  const last = stream.at(-1);
  await appendAndProject(ledger, GATEWAY_STREAM, last === undefined ? 'no_stream' : last.revision, [networksDiscoveredEvent(found)]);
  return true;
}

export interface StaleProfile {
  readonly email: string;
  readonly routes: readonly string[];
  readonly missing: readonly string[];
}

export interface StaleReport {
  readonly current: readonly string[];
  readonly source: RouteSource;
  readonly stale: readonly StaleProfile[];
  readonly partialProfiles: number;
  /** Rows projected before routes were kept in them: unknown until `ov_…` rebuilds the read models. */
  readonly unknown: number;
}

/**
 * Active partial profiles whose recorded routes lack a network the gateway now serves. Reads the
 * distinct route sets (a handful) and lists only the profiles of the stale ones.
 */
export function stalePartialProfiles(ledger: Ledger): StaleReport {
  const { routes: current, source } = currentRoutes(ledger);
  const stale: StaleProfile[] = [];
  let partialProfiles = 0;
  let unknown = 0;
  for (const set of ledger.projections.activePartialRouteSets()) {
    partialProfiles += set.count;
    if (set.routes === null) {
      unknown += set.count;
      continue;
    }
    const missing = missingNetworks(set.routes, current);
    if (missing.length === 0) continue;
    for (const u of ledger.projections.activePartialUsersWithRoutes(set.routes)) {
      stale.push({ email: u.email, routes: normaliseCidrs(set.routes), missing });
    }
  }
  stale.sort((a, b) => a.email.localeCompare(b.email));
  return { current, source, stale, partialProfiles, unknown };
}
