import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { CalendarDate, Email, PersonName, Reason, Traffic } from '../../domain/values.js';
import { loadEmailSettings } from '../../infra/composition-root.js';
import { addUser } from '../use-cases/add-user.js';
import type { CommandSpec } from './run-cli.js';

const Schema = z.object({
  firstName: PersonName,
  lastName: PersonName,
  email: Email,
  traffic: Traffic,
  expirationDate: CalendarDate,
  creationReason: Reason,
  autoRenew: z.enum(['yes', 'no'], { error: () => 'must be "yes" or "no"' }).default('no'),
});

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_user_add',
  description: 'issue a VPN profile for a user and email it',
  open: 'existing',
  schema: Schema,
  flags: (y) =>
    y
      .option('first-name', { type: 'string', demandOption: true, describe: "user's first name" })
      .option('last-name', { type: 'string', demandOption: true, describe: "user's last name" })
      .option('email', { type: 'string', demandOption: true, describe: "user's email address (where the profile is sent)" })
      .option('traffic', { type: 'string', demandOption: true, describe: 'all: full tunnel; partial: only the gateway networks' })
      .option('expiration-date', { type: 'string', demandOption: true, describe: 'last day the profile works, YYYY-MM-DD (UTC)' })
      .option('creation-reason', { type: 'string', demandOption: true, describe: 'why this profile exists (kept for audits)' })
      .option('auto-renew', { type: 'string', default: 'no', describe: 'yes: a fresh profile is mailed before this one expires' }),
  precheck: (_input, env) => loadEmailSettings(env),
  run: async (input, { ledger, env }) => {
    const email = loadEmailSettings(env);
    if (E.isLeft(email)) return email;
    const result = await addUser(
      ledger,
      {
        firstName: input.firstName,
        lastName: input.lastName,
        email: input.email,
        traffic: input.traffic,
        expirationDate: input.expirationDate,
        reason: input.creationReason,
        autoRenew: input.autoRenew === 'yes',
      },
      email.right,
    );
    return E.map((r: { serial: string; notAfter: string; delivery: string; profilePath: string }) =>
      [
        `Issued ${input.traffic} profile for ${input.email}: serial ${r.serial}, valid until ${r.notAfter}.`,
        `Profile ${r.delivery}.`,
        `Kept at ${r.profilePath}.`,
      ].join('\n'),
    )(result);
  },
};
