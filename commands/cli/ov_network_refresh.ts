import * as E from 'fp-ts/lib/Either.js';
import { networkDiscoveryFor } from '../../infra/composition-root.js';
import type { WrittenServerConfig } from '../use-cases/gateway-networks.js';
import { refreshNetworks, type RefreshResult } from '../use-cases/refresh-networks.js';
import { JsonFlag, jsonFlag } from './flags.js';
import type { CommandSpec } from './run-cli.js';
import { configLines } from './server-config-lines.js';

export const spec: CommandSpec<typeof JsonFlag> = {
  name: 'ov_network_refresh',
  description: "read the VPC's networks again (route tables: own and peered CIDRs), record changes, regenerate the server config",
  open: 'existing',
  schema: JsonFlag,
  flags: jsonFlag,
  run: async (input, { ledger, env }) =>
    E.map((r: RefreshResult) => (input.json ? JSON.stringify(asJson(r), null, 2) : render(r)))(
      await refreshNetworks(ledger, networkDiscoveryFor(env, ledger.settings)),
    ),
};

function render(r: RefreshResult): string {
  const f = r.found;
  const lines = [
    `Networks of ${f.vpcId} (${f.region}), from ${f.routeTables} route table(s): ${f.routes.join(' ')} (VPC ${f.vpcCidrs.join(' ')}; peered ${f.peeredCidrs.join(' ') || 'none'}).`,
    r.recorded
      ? `Recorded (NetworksDiscovered): added ${r.added.join(' ') || 'none'}; removed ${r.removed.join(' ') || 'none'}.`
      : 'Unchanged since the last discovery: nothing recorded.',
    r.current.source === 'gateway.conf'
      ? `ROUTES in gateway.conf overrides discovery: new partial profiles route ${r.current.routes.join(' ')}.`
      : `New partial profiles route ${r.current.routes.join(' ')}.`,
    ...configLines(r.config),
  ];
  if (r.stale.stale.length > 0) {
    lines.push(`${r.stale.stale.length} partial profile(s) lack a network; reissue them (ov_user_delete, ov_user_add):`);
    for (const p of r.stale.stale) lines.push(`  ${p.email} lacks ${p.missing.join(' ')}`);
  }
  return lines.join('\n');
}

function asJson(r: RefreshResult): Record<string, unknown> {
  const config: WrittenServerConfig = r.config;
  return {
    vpcId: r.found.vpcId,
    region: r.found.region,
    routes: r.found.routes,
    vpcCidrs: r.found.vpcCidrs,
    peeredCidrs: r.found.peeredCidrs,
    primaryCidr: r.found.primaryCidr ?? null,
    recorded: r.recorded,
    added: r.added,
    removed: r.removed,
    newProfilesRoute: r.current,
    dns: config.dns,
    serverConfChanged: config.serverConfChanged,
    clientDefaultChanged: config.clientDefaultChanged,
    stale: r.stale.stale,
  };
}
