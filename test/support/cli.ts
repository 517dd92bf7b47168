// Runs the built CLI (dist/bin/<command>.js) as a child process, the way an operator
// does, so e2e tests exercise argument parsing, exit codes and output exactly as shipped.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type CliCommand =
  | 'ov_init'
  | 'ov_user_add'
  | 'ov_user_delete'
  | 'ov_user_list'
  | 'ov_user_list_expired'
  | 'ov_user_resend'
  | 'ov_user_auto_renew'
  | 'ov_user_renew_due'
  | 'ov_user_audit'
  | 'ov_status'
  | 'ov_server_renew'
  | 'ov_network_refresh'
  | 'ov_dns_apply';

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The repository root, whether this file runs from test/support or from dist/test/support. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error(`could not find the repository root above ${fileURLToPath(import.meta.url)}`);
}

export function cliBinPath(command: CliCommand): string {
  return join(repoRoot(), 'dist', 'bin', `${command}.js`);
}

/** Throws unless every command has been built; call it in beforeAll. */
export function assertCliBuilt(): void {
  const missing = (
    ['ov_init', 'ov_user_add', 'ov_user_delete', 'ov_user_list', 'ov_user_list_expired', 'ov_user_resend', 'ov_user_auto_renew'] as const
  )
    .map(cliBinPath)
    .filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(`the CLI is not built (missing ${missing.join(', ')}): run npm run build first`);
  }
}

export interface RunCliOptions {
  /** Added to (and overriding) the test process's environment. `undefined` removes a variable. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Kills the command after this long; defaults to 60 s (ov_init makes a 3072-bit RSA key). */
  readonly timeoutMs?: number;
}

/** Runs `node dist/bin/<command>.js ...args` and resolves with its exit code and output. */
export function runCli(command: CliCommand, args: readonly string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const bin = cliBinPath(command);
  if (!existsSync(bin)) {
    return Promise.reject(new Error(`${bin} does not exist: run npm run build first`));
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
        return;
      }
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** Like runCli, but throws with the command's output unless it exits 0; resolves with stdout. */
export async function runCliOk(command: CliCommand, args: readonly string[], opts: RunCliOptions = {}): Promise<string> {
  const res = await runCli(command, args, opts);
  if (res.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  }
  return res.stdout;
}

/**
 * Starts a command without waiting for it, for tests that race commands or kill one mid-way.
 * `done` resolves when it has exited (by code or by signal) and its output is complete.
 */
export function spawnCli(
  command: CliCommand,
  args: readonly string[],
  opts: Pick<RunCliOptions, 'env'> = {},
): { readonly child: ChildProcess; readonly done: Promise<CliResult & { readonly signal: NodeJS.Signals | null }> } {
  const bin = cliBinPath(command);
  if (!existsSync(bin)) throw new Error(`${bin} does not exist: run npm run build first`);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/** What snapshotTree records of one file: enough to tell that nothing wrote to it. */
export interface FileFacts {
  /** Permission bits, e.g. 0o600. */
  readonly mode: number;
  readonly size: number;
  readonly sha256: string;
  readonly mtimeMs: number;
}

/**
 * Every regular file under `dir` (recursively), by path relative to `dir`, in sorted order. Two
 * equal snapshots mean no file was created, removed, rewritten, touched or re-moded. Directories
 * are not recorded: SQLite creates and removes its -wal/-shm files beside the database whenever
 * it is opened, which bumps the directory's mtime without changing anything inside. Returns an
 * empty map when `dir` does not exist.
 */
export function snapshotTree(dir: string): Map<string, FileFacts> {
  const files = new Map<string, FileFacts>();
  if (!existsSync(dir)) return files;
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = rel === '' ? entry.name : join(rel, entry.name);
      if (entry.isDirectory()) {
        walk(path);
        continue;
      }
      const abs = join(dir, path);
      const st = lstatSync(abs);
      files.set(path, {
        mode: st.mode & 0o7777,
        size: st.size,
        sha256: st.isFile() ? createHash('sha256').update(readFileSync(abs)).digest('hex') : `symlink:${readlinkSync(abs)}`,
        mtimeMs: st.mtimeMs,
      });
    }
  };
  walk('');
  return files;
}
