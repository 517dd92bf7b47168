import { resolve } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { openFreshState } from '../../infra/composition-root.js';
import { eventStoreIdentity, openRemoteEventStore } from '../../infra/event-store-selection.js';
import { restoreBackup, type RestoreResult } from '../use-cases/restore.js';
import { renderSummary } from '../use-cases/log-replay.js';
import { terminalProgress } from './progress.js';
import type { StandaloneCommandSpec } from './run-cli.js';
import { requireRootForSystemState } from './system-state.js';

const Schema = z
  .object({
    file: z.string().optional(),
    dryRun: z.boolean().default(false),
    force: z.boolean().default(false),
  })
  .superRefine((v, ctx) => {
    if (v.file === undefined || v.file === '') {
      ctx.addIssue({ code: 'custom', message: 'the archive to restore is required: ov_restore [--dry-run] [--force] FILE', path: [] });
    }
  });

/**
 * The command; `stagingWorker` is the script of the worker thread that fills the staging store
 * (commands/bin/ov_restore.ts passes the one built beside it).
 */
export const restoreCommand = (stagingWorker?: URL): StandaloneCommandSpec<typeof Schema> => ({
  name: 'ov_restore',
  description: 'restore a gateway from an ov_backup archive: checks everything first, then replaces the state in one step',
  open: 'none',
  schema: Schema,
  flags: (y) =>
    y
      .command('$0 [file]', false, (c) => c.positional('file', { type: 'string', describe: 'the archive written by ov_backup' }))
      .option('dry-run', { type: 'boolean', default: false, describe: 'check the archive completely and write nothing' })
      .option('force', { type: 'boolean', default: false, describe: 'replace a gateway that already has state (kept aside as <state>.before-restore-<time>)' }),
  precheck: (_input, env) => requireRootForSystemState('ov_restore', env),
  run: async (input, { env }) => {
    // OVL_EVENT_STORE: the log goes to that EventStoreDB (which must hold no events yet).
    const opened = await openRemoteEventStore(env);
    if (E.isLeft(opened)) return opened;
    const store = opened.right;
    const remote = store ? { store, target: store.target, identity: eventStoreIdentity(env) } : undefined;
    const progress = terminalProgress('ov_restore');
    try {
      const result = await restoreBackup(
        {
          archivePath: resolve(input.file ?? ''),
          stateDir: env.stateDir,
          configDir: env.configDir,
          dryRun: input.dryRun,
          force: input.force,
          now: env.now ?? new Date(),
          onProgress: progress?.update,
        },
        openFreshState,
        { stagingWorker, remote },
      );
      return E.map(render)(result);
    } finally {
      progress?.clear();
      await store?.close();
    }
  },
});

export const spec = restoreCommand();

function render(r: RestoreResult): string {
  const lines: string[] = [];
  const read = `${r.summary.events} events${r.upcast > 0 ? ` (${r.upcast} read through the upcasters from an older schema)` : ''}, ${r.clientKeys} client keys, ${r.profiles} profiles`;
  if (r.dryRun) {
    lines.push(`Dry run: the archive passed every check (${read}); nothing was written.`);
    if (r.remote) {
      lines.push(
        r.remote.heldEvents
          ? `EventStoreDB at ${r.remote.target} already holds events: a restore into it would be refused (it needs an empty database).`
          : `Would append the ${r.summary.events} events to EventStoreDB at ${r.remote.target}, which holds none yet.`,
      );
    }
    if (r.targetHadState) lines.push(`${r.stateDir} already holds a gateway's state: restoring needs --force (it would be kept as ${r.stateDir}.before-restore-<time>).`);
    for (const c of r.config) if (c.action !== 'unchanged') lines.push(`Would ${c.action === 'create' ? 'write' : 'replace'} ${c.path}${c.action === 'replace' ? ' (needs --force)' : ''}.`);
  } else {
    lines.push(`Restored into ${r.stateDir}: ${read}.`);
    if (r.remote) lines.push(`Appended ${r.remote.appended} events to EventStoreDB at ${r.remote.target}; the local read models were built from it.`);
    if (r.keptAside) lines.push(`The previous state is kept at ${r.keptAside}.`);
    if (r.crl) lines.push(`CRL #${r.crl.number} written with ${r.crl.entries} entries (next update ${r.crl.nextUpdate.toISOString()}).`);
    for (const c of r.config) {
      if (c.action === 'unchanged') lines.push(`${c.path} already matched the archive's.`);
      else lines.push(`Wrote ${c.path}${c.keptAs ? ` (the previous one is kept as ${c.keptAs})` : ''}.`);
    }
  }
  lines.push('', renderSummary(r.header, r.summary, r.archive));
  if (!r.dryRun) {
    lines.push(
      '',
      `Restart OpenVPN so it serves the restored keys: openvpn --config ${r.serverConf} (or restart its systemd unit).`,
      'Then check the users with ov_user_list, and connect a test client.',
    );
  }
  return lines.join('\n');
}
