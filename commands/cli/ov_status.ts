import * as E from 'fp-ts/lib/Either.js';
import { gatewayStatus, SEVERITY_EXIT, type GatewayStatus } from '../use-cases/gateway-status.js';
import { JsonFlag, jsonFlag } from './flags.js';
import type { CommandSpec } from './run-cli.js';

export const spec: CommandSpec<typeof JsonFlag> = {
  name: 'ov_status',
  description: 'the gateway\'s health: CRL, server certificate, CA, expiring profiles, stuck renewals, connected clients, stale partial profiles (exit 0 ok, 1 warning, 2 critical)',
  open: 'existing',
  schema: JsonFlag,
  flags: jsonFlag,
  run: async (input, { ledger }) => {
    const status = await gatewayStatus(ledger);
    return E.right({ text: input.json ? JSON.stringify(status, null, 2) : renderStatus(status), exitCode: SEVERITY_EXIT[status.status] });
  },
};

function renderStatus(s: GatewayStatus): string {
  const width = Math.max(...s.checks.map((c) => c.name.length));
  const lines = [
    `Gateway status: ${s.status.toUpperCase()} (${s.checkedAt})`,
    ...s.checks.map((c) => `  ${c.status.padEnd(8)}  ${c.name.padEnd(width)}  ${c.summary}`),
  ];
  if (s.openvpn.reachable && s.openvpn.clients.length > 0) {
    lines.push('Connected:');
    for (const c of s.openvpn.clients) {
      const who = c.email ? `${c.email} (${c.traffic ?? '?'})` : `${c.commonName} (unknown profile)`;
      lines.push(`  ${who} from ${c.realAddress} as ${c.virtualAddress}, since ${c.connectedSince}`);
    }
  }
  if (s.expiringProfiles.profiles.length > 0) {
    lines.push(`Expiring within ${s.expiringProfiles.windowDays} days:`);
    for (const p of s.expiringProfiles.profiles) lines.push(`  ${p.email} (${p.traffic}) on ${p.expirationDate}, auto-renew ${p.autoRenew ? 'on' : 'off'}`);
  }
  if (s.stuckRenewals.length > 0) {
    lines.push('Failed renewals:');
    for (const r of s.stuckRenewals) lines.push(`  ${r.email} (${r.traffic}) since ${r.since}: ${r.reason}`);
  }
  if (s.networks.stale.length > 0) {
    lines.push('Partial profiles lacking networks:');
    for (const p of s.networks.stale) lines.push(`  ${p.email} lacks ${p.missing.join(' ')} (routes ${p.routes.join(' ') || 'none'})`);
  }
  if (s.networks.unknown > 0) {
    lines.push(`(${s.networks.unknown} partial profile(s) projected before routes were kept in the user list are not checked.)`);
  }
  return lines.join('\n');
}
