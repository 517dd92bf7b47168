// ov_follow: the long-running follower of a fleet's shared event store (see
// commands/use-cases/follow.ts). Runs until SIGTERM or SIGINT, printing one line per thing done.
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { follow, type FollowSummary } from '../use-cases/follow.js';
import type { CommandSpec } from './run-cli.js';

const Schema = z.object({
  pollMs: z.number().int('must be a whole number of milliseconds').min(50, 'must be at least 50').max(3_600_000).optional(),
});

/**
 * The command, stopped by `stop` (the bin aborts it on SIGTERM/SIGINT, from the very start, so a
 * signal during the first catch-up also ends in a clean stop once that catch-up's page is done).
 */
export function followSpec(stop: AbortSignal): CommandSpec<typeof Schema> {
  return {
    name: 'ov_follow',
    description:
      "keep this gateway's users, audit history and CRL current with events from every gateway sharing its event store (runs until SIGTERM)",
    open: 'existing',
    schema: Schema,
    flags: (y) =>
      y.option('poll-ms', {
        type: 'number',
        describe: 'poll the store at this interval instead of subscribing (the embedded store is always polled, every 1000 ms)',
      }),
    run: async (input, { ledger }) =>
      E.map(
        (s: FollowSummary) =>
          `ov_follow: stopped at position ${s.checkpoint} (${s.mode}): ${s.applied} event(s) applied, ` +
          `CRL written ${s.crlsWritten} time(s), ${s.reconnects} reconnection(s).`,
      )(
        await follow(ledger, {
          signal: stop,
          pollMs: input.pollMs,
          report: (line) => process.stdout.write(`ov_follow: ${line}\n`),
        }),
      ),
  };
}
