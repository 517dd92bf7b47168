import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { applyDns, type DnsApplyResult } from '../use-cases/refresh-networks.js';
import type { CommandSpec } from './run-cli.js';
import { configLines } from './server-config-lines.js';

const Schema = z.object({});

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_dns_apply',
  description: 'apply dns.conf (VPN_DNS_DOMAIN_ROUTES, VPN_DNS_SERVERS): regenerate the server config; clients get it at their next connection',
  open: 'existing',
  schema: Schema,
  flags: (y) => y,
  run: async (_input, { ledger }) => E.map((r: DnsApplyResult) => configLines(r.config).join('\n'))(applyDns(ledger)),
};
