import { existsSync, statSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { resolve } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { ownerOf } from '../../adapters/fs/owner-home.js';
import { EXIT, refused } from '../failure.js';
import { backupGateway, type BackupResult } from '../use-cases/backup.js';
import { renderSummary } from '../use-cases/log-replay.js';
import { terminalProgress } from './progress.js';
import type { CommandSpec } from './run-cli.js';
import { requireRootForSystemState } from './system-state.js';

const Schema = z.object({
  outputDir: z.string().min(1, 'must not be empty').optional(),
});

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_backup',
  description: 'write the event log and every key of this gateway into one archive, to restore it elsewhere with ov_restore',
  open: 'existing',
  schema: Schema,
  flags: (y) =>
    y.option('output-dir', {
      type: 'string',
      describe: "where to write backup-<host>-<time>.tar.gz (default: the home directory of the state directory's owner)",
    }),
  precheck: (input, env) => {
    const root = requireRootForSystemState('ov_backup', env);
    if (E.isLeft(root)) return root;
    if (input.outputDir !== undefined) {
      const dir = resolve(input.outputDir);
      if (!existsSync(dir) || !statSync(dir).isDirectory()) return E.left({ exitCode: EXIT.usage, message: `--output-dir ${dir} is not an existing directory` });
    }
    return E.right(true);
  },
  run: async (input, { ledger, env }) => {
    const owner = ownerOf(env.stateDir);
    const outputDir = input.outputDir !== undefined ? resolve(input.outputDir) : (owner?.home ?? homedir());
    if (!existsSync(outputDir)) return E.left(refused(`${outputDir}, the home directory of the state's owner, does not exist: pass --output-dir DIR`));
    const host = hostname();
    const progress = terminalProgress('ov_backup');
    try {
      const result = await backupGateway(ledger, { outputDir, hostname: host, configDir: env.configDir, onProgress: progress?.update });
      return E.map((r: BackupResult) => render(r, owner?.name ?? 'root', host))(result);
    } finally {
      progress?.clear();
    }
  },
};

function render(r: BackupResult, user: string, host: string): string {
  const file = r.path.split('/').at(-1) ?? r.path;
  return [
    `Backup written to ${r.path} (mode 0600): ${r.summary.events} events, ${r.clientKeys} client keys, ${r.profiles} profiles, CRL #${r.crlNumber}.`,
    ...(r.source === 'the embedded store' ? [] : [`The events are those of ${r.source} up to position ${r.header.lastPosition}, its head when the backup started.`]),
    '',
    renderSummary(r.header, r.summary, r),
    '',
    'WARNING: this archive is a master secret. It holds the CA key, every client key and the SMTP',
    'password: anyone who has it can impersonate this gateway and its users. Store it encrypted, never',
    'email it, put it in chat or commit it; if it ever leaks, rotate the CA and reissue every user.',
    '',
    'Copy it off this machine (run on your workstation):',
    `  scp ${user}@${host}:${r.path} .`,
    'Then onto the new gateway, and restore it there:',
    `  scp ${file} root@NEW-GATEWAY:`,
    `  ssh root@NEW-GATEWAY sudo ov_restore ${file}`,
  ].join('\n');
}
