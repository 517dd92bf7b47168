import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { loadEmailSettings } from '../../infra/composition-root.js';
import { EXIT } from '../failure.js';
import { renewDueProfiles, type RenewDueResult } from '../use-cases/renew-due-profiles.js';
import type { CommandSpec } from './run-cli.js';

const Schema = z.object({
  windowDays: z.number({ error: 'must be a whole number of days' }).int('must be a whole number of days').min(0, 'must not be negative').max(365, 'must be at most 365').optional(),
  json: z.boolean().default(false),
});

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_user_renew_due',
  description: 'the daily job: renew and mail every auto-renewing profile inside the renewal window',
  open: 'existing',
  schema: Schema,
  flags: (y) =>
    y
      .option('window-days', { type: 'number', describe: 'renew profiles expiring within this many days (default: RENEWAL_WINDOW_DAYS in gateway.conf, 10)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the outcome as JSON' }),
  precheck: (_input, env) => loadEmailSettings(env),
  run: async (input, { ledger, env }) => {
    const email = loadEmailSettings(env);
    if (E.isLeft(email)) return email;
    const result = await renewDueProfiles(ledger, { windowDays: input.windowDays ?? ledger.settings.renewalWindowDays, email: email.right });
    if (E.isLeft(result)) return result;
    const text = input.json ? JSON.stringify(result.right, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) : render(result.right);
    // A failed renewal makes the run fail, after everything else was done and reported.
    return result.right.failed.length > 0
      ? E.left({ exitCode: EXIT.deliveryFailed, message: `${result.right.failed.length} renewal(s) failed; see ov_user_audit --stuck`, output: text })
      : E.right(text);
  },
};

function render(r: RenewDueResult): string {
  const lines = [
    `Renewal run for ${r.today} (window ${r.windowDays} days): ${r.renewed.length} renewed, ${r.failed.length} failed, ${r.skipped} skipped.`,
  ];
  for (const x of r.renewed) lines.push(`  renewed ${x.email} (${x.traffic}): serial ${x.previousSerial} → ${x.serial}, expires ${x.expirationDate}; ${x.delivery}`);
  for (const x of r.failed) lines.push(`  FAILED  ${x.email} (${x.traffic}): ${x.reason}`);
  if (r.crl) lines.push(`CRL #${r.crl.number} re-signed (next update ${r.crl.nextUpdate.toISOString()}).`);
  return lines.join('\n');
}
