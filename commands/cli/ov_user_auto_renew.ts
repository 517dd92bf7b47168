import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { toggleAutoRenew } from '../use-cases/toggle-auto-renew.js';
import { PairFlags, pairFlags } from './flags.js';
import type { CommandSpec } from './run-cli.js';

const Schema = PairFlags.extend({ enable: z.boolean().optional(), disable: z.boolean().optional() }).check((ctx) => {
  const { enable, disable } = ctx.value;
  if ((enable === true) === (disable === true)) {
    ctx.issues.push({ code: 'custom', path: ['enable'], input: enable, message: 'or --disable: give exactly one of them' });
  }
});

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_user_auto_renew',
  description: 'switch automatic renewal of a profile on or off (the certificate is not reissued)',
  open: 'existing',
  schema: Schema,
  flags: (y) =>
    pairFlags(y)
      .option('enable', { type: 'boolean', describe: 'turn auto-renew on' })
      .option('disable', { type: 'boolean', describe: 'turn auto-renew off' }),
  run: async (input, { ledger }) => {
    const on = input.enable === true;
    return E.map((r: { changed: boolean }) =>
      r.changed
        ? `Auto-renew ${on ? 'enabled' : 'disabled'} for the ${input.traffic} profile of ${input.email}.`
        : `Auto-renew was already ${on ? 'enabled' : 'disabled'} for the ${input.traffic} profile of ${input.email}; nothing changed.`,
    )(await toggleAutoRenew(ledger, { email: input.email, traffic: input.traffic, enable: on }));
  },
};
