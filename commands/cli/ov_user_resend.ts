import * as E from 'fp-ts/lib/Either.js';
import { loadEmailSettings } from '../../infra/composition-root.js';
import { resendProfile, type ResendResult } from '../use-cases/resend-profile.js';
import { PairFlags, pairFlags } from './flags.js';
import type { CommandSpec } from './run-cli.js';

export const spec: CommandSpec<typeof PairFlags> = {
  name: 'ov_user_resend',
  description: 'deliver the existing profile again, unchanged (no new certificate)',
  open: 'existing',
  schema: PairFlags,
  flags: pairFlags,
  precheck: (_input, env) => loadEmailSettings(env),
  run: async (input, { ledger, env }) => {
    const email = loadEmailSettings(env);
    if (E.isLeft(email)) return email;
    return E.map((r: ResendResult) => `Resent ${input.traffic} profile of ${input.email} (serial ${r.serial}): ${r.delivery}.`)(
      await resendProfile(ledger, input, email.right),
    );
  },
};
