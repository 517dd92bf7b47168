// Flag schemas shared by several commands: the same --email and --traffic rules everywhere.
import type { Argv } from 'yargs';
import { z } from 'zod';
import { Email, Traffic } from '../../domain/values.js';

export const PairFlags = z.object({ email: Email, traffic: Traffic });

export function pairFlags(y: Argv): Argv {
  return y
    .option('email', { type: 'string', demandOption: true, describe: "the user's email address" })
    .option('traffic', { type: 'string', demandOption: true, describe: 'all (full tunnel) or partial (split tunnel)' });
}

export const JsonFlag = z.object({ json: z.boolean().default(false) });

export function jsonFlag(y: Argv): Argv {
  return y.option('json', { type: 'boolean', default: false, describe: 'print JSON instead of a table' });
}
