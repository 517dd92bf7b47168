// A lab that runs a real OpenVPN server and real clients inside a throwaway network namespace, so
// tests can prove that a profile we issue completes a handshake and that a revoked or expired one
// is refused.
//
// Safety model: everything runs inside a namespace that only has `lo`, so no packet can leave the
// machine whatever a profile says; clients additionally get --route-noexec, --ifconfig-noexec and
// --script-security 1 so a profile cannot touch routes, addresses or run scripts (the namespace
// shares the host's filesystem, so a profile's `up` script could otherwise edit e.g. resolv.conf).
// Every process and namespace we create is tracked and torn down on stop/destroy and, as a last
// resort, when the test process exits.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Finds an executable on PATH or in the sbin dirs, which a non-login shell's PATH often lacks. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this dir
    }
  }
  return undefined;
}

/**
 * Throws an Error listing every missing part of the lab and how to install it. Call it in
 * beforeAll: a machine without OpenVPN must fail the e2e tests loudly, never skip them silently.
 */
export function assertOpenvpnLabAvailable(): void {
  const problems: string[] = [];
  const uid = process.getuid?.();
  if (uid !== 0) {
    problems.push(
      `not running as root (uid ${uid ?? 'unknown'}): network namespaces and tun devices need root; ` +
        'run the tests as root (e.g. `sudo npx vitest run ...`)',
    );
  }
  if (!findExecutable('openvpn')) {
    problems.push('`openvpn` not found on PATH or in /usr/sbin, /sbin: install it with `apt-get install -y openvpn`');
  }
  if (!findExecutable('ip')) {
    problems.push('`ip` not found on PATH or in /usr/sbin, /sbin: install iproute2 with `apt-get install -y iproute2`');
  }
  if (!existsSync('/dev/net/tun')) {
    problems.push(
      '/dev/net/tun is missing: create it with `mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && chmod 600 /dev/net/tun` ' +
        '(in a container, also run it with --device /dev/net/tun or --cap-add NET_ADMIN)',
    );
  } else if (!statSync('/dev/net/tun').isCharacterDevice()) {
    problems.push(
      '/dev/net/tun exists but is not a character device: recreate it with ' +
        '`rm /dev/net/tun && mknod /dev/net/tun c 10 200 && chmod 600 /dev/net/tun`',
    );
  }
  if (problems.length > 0) {
    throw new Error(`OpenVPN lab unavailable:\n - ${problems.join('\n - ')}`);
  }
}

function requireExecutable(name: string): string {
  const path = findExecutable(name);
  if (!path) assertOpenvpnLabAvailable();
  if (!path) throw new Error(`\`${name}\` not found`);
  return path;
}

// ---------------------------------------------------------------------------------------------
// Last-resort cleanup: if a test forgets stop()/destroy() or the worker exits on an error, the
// openvpn processes and namespaces must not outlive it. Only synchronous work runs in 'exit'.

const liveChildren = new Set<ChildProcess>();
/** Namespace name -> temp dir with the logs and pid files of the processes run in it. */
const liveNamespaces = new Map<string, string>();
let exitHookInstalled = false;

const keepLogs = () => process.env.OVLAB_KEEP_LOGS === '1';

function cleanupSync(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const [name, dir] of liveNamespaces) {
    killNamespacePidsSync(name);
    spawnSync(requireExecutable('ip'), ['netns', 'delete', name], { stdio: 'ignore' });
    if (!keepLogs()) rmSync(dir, { recursive: true, force: true });
  }
  liveNamespaces.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', cleanupSync);
  // Vitest tears fork workers down with SIGTERM, which skips 'exit' handlers; a worker killed
  // while a test hangs must not leave openvpn running in an orphaned namespace.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanupSync();
      process.removeListener(sig, onSignal);
      // Re-raise so the default action still ends the process, unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function killNamespacePidsSync(name: string): void {
  const res = spawnSync(requireExecutable('ip'), ['netns', 'pids', name], { encoding: 'utf8' });
  for (const pid of (res.stdout ?? '').split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function runOrThrow(cmd: string, args: string[]): Promise<string> {
  const res = await run(cmd, args);
  if (res.code !== 0) {
    throw new Error(`\`${cmd} ${args.join(' ')}\` failed (exit ${res.code}): ${res.stderr.trim() || res.stdout.trim()}`);
  }
  return res.stdout;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Namespaces

export interface Netns {
  readonly name: string;
  /**
   * Kills whatever still runs in the namespace, deletes it and removes the logs of the processes
   * run in it (kept with OVLAB_KEEP_LOGS=1). Idempotent.
   */
  destroy(): Promise<void>;
}

let netnsCounter = 0;

/** Creates a fresh namespace with only `lo`, up. The name is unique per process and call. */
export async function createNetns(prefix = 'ovlab'): Promise<Netns> {
  const ip = requireExecutable('ip');
  installExitHook();
  const name = `${prefix}-${process.pid}-${++netnsCounter}-${randomBytes(3).toString('hex')}`;
  await runOrThrow(ip, ['netns', 'add', name]);
  liveNamespaces.set(name, mkdtempSync(join(tmpdir(), `${name}-`)));
  try {
    await runOrThrow(ip, ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    rmSync(liveNamespaces.get(name) ?? '', { recursive: true, force: true });
    liveNamespaces.delete(name);
    await run(ip, ['netns', 'delete', name]);
    throw err;
  }
  let destroyed = false;
  return {
    name,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      // `ip netns delete` only unlinks the name; processes inside would keep the namespace (and
      // their sockets) alive, so they go first.
      killNamespacePidsSync(name);
      await run(ip, ['netns', 'delete', name]);
      const dir = liveNamespaces.get(name);
      if (dir && !keepLogs()) rmSync(dir, { recursive: true, force: true });
      liveNamespaces.delete(name);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// openvpn processes

interface OpenvpnProcess {
  readonly child: ChildProcess;
  readonly logPath: string;
  readonly pidPath: string;
  log(): string;
  /** stdout/stderr: option errors are printed there before --log takes over. */
  output(): string;
  exited(): boolean;
  exitCode(): number | null;
  stop(): Promise<void>;
}

function readIfExists(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

function spawnOpenvpn(ns: Netns, role: string, args: (logPath: string, pidPath: string) => string[]): OpenvpnProcess {
  const ip = requireExecutable('ip');
  const openvpn = requireExecutable('openvpn');
  installExitHook();
  const nsDir = liveNamespaces.get(ns.name);
  if (!nsDir) throw new Error(`netns ${ns.name} was not made by createNetns or is already destroyed`);
  const dir = mkdtempSync(join(nsDir, `${role}-`));
  const logPath = join(dir, `${role}.log`);
  const pidPath = join(dir, `${role}.pid`);
  // `ip netns exec` execs (no fork), so child.pid is openvpn itself; --writepid is a cross-check.
  const child = spawn(ip, ['netns', 'exec', ns.name, openvpn, ...args(logPath, pidPath)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  let output = '';
  let exited = false;
  let exitCode: number | null = null;
  const exitPromise = new Promise<void>((resolve) => {
    child.on('exit', (code) => {
      exited = true;
      exitCode = code;
      liveChildren.delete(child);
      resolve();
    });
    child.on('error', (err) => {
      output += `spawn error: ${err.message}\n`;
      exited = true;
      liveChildren.delete(child);
      resolve();
    });
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));

  const stop = async (): Promise<void> => {
    const pidFromFile = Number(readIfExists(pidPath).trim());
    if (!exited) {
      child.kill('SIGTERM');
      const done = await Promise.race([exitPromise.then(() => true), sleep(5_000).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    }
    // Only if the pid file names a different, still-running process (an `ip` that forked).
    if (Number.isInteger(pidFromFile) && pidFromFile > 0 && pidFromFile !== child.pid) {
      try {
        process.kill(pidFromFile, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };

  return {
    child,
    logPath,
    pidPath,
    log: () => readIfExists(logPath),
    output: () => output,
    exited: () => exited,
    exitCode: () => exitCode,
    stop,
  };
}

function describeProcess(p: OpenvpnProcess): string {
  const out = p.output().trim();
  return (
    `--- log tail (${p.logPath}) ---\n${tail(p.log())}` +
    (out ? `\n--- stdout/stderr ---\n${tail(out)}` : '') +
    (p.exited() ? `\n(process exited with code ${p.exitCode()})` : '')
  );
}

const INIT_COMPLETED = /Initialization Sequence Completed/;

// ---------------------------------------------------------------------------------------------
// Server

export interface OpenvpnServer {
  readonly logPath: string;
  readonly pid: number;
  /** The whole server log so far. */
  log(): string;
  /** SIGTERM, then SIGKILL after 5 s. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `openvpn --config CONFIG` in the namespace and resolves once the server logs
 * "Initialization Sequence Completed". Extra args come after the config so they override it
 * (e.g. `['--local', '127.0.0.1']`).
 */
export async function startOpenvpnServer(
  ns: Netns,
  configPath: string,
  opts: { extraArgs?: string[]; timeoutMs?: number } = {},
): Promise<OpenvpnServer> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const proc = spawnOpenvpn(ns, 'server', (logPath, pidPath) => [
    '--config',
    configPath,
    // verb 3 so tryConnect can see per-client VERIFY lines; extraArgs may still lower it.
    '--verb',
    '3',
    '--log',
    logPath,
    '--writepid',
    pidPath,
    ...(opts.extraArgs ?? []),
  ]);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (INIT_COMPLETED.test(proc.log())) break;
    if (proc.exited()) {
      throw new Error(`openvpn server exited before initialising\n${describeProcess(proc)}`);
    }
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`openvpn server did not initialise within ${timeoutMs} ms\n${describeProcess(proc)}`);
    }
    await sleep(50);
  }
  return {
    logPath: proc.logPath,
    pid: proc.child.pid ?? -1,
    log: proc.log,
    stop: proc.stop,
  };
}

// ---------------------------------------------------------------------------------------------
// Clients

/**
 * Server-side lines that mean this handshake's client certificate was rejected. Only lines written
 * while the certificate is being checked: generic server "TLS Error" lines can belong to an older
 * client whose half-open handshake times out now, and would misattribute a refusal.
 */
const SERVER_REFUSAL = /VERIFY ERROR|certificate revoked|CRL CHECK FAILED|certificate has expired|certificate is not yet valid/;
/** Client-side lines that mean the attempt is over without a tunnel. */
const CLIENT_REFUSAL =
  /TLS Error|TLS key negotiation failed|TLS handshake failed|AUTH_FAILED|connect-retry-max|Exiting due to fatal error|SIGTERM\[soft|SIGUSR1\[soft/;

export interface ConnectResult {
  /** True iff the client logged "Initialization Sequence Completed". */
  readonly connected: boolean;
  /** What decided the outcome, for assertion messages. */
  readonly reason: string;
  /** The client's whole log. */
  readonly log: string;
  /** The server log written since this client was started. */
  readonly serverLogExcerpt: string;
}

export interface ClientOptions {
  /** Upper bound for the whole attempt; a refusal is normally detected within 1-2 s. */
  timeoutMs?: number;
  /** Appended after the lab's own client options, so they can override them. */
  extraArgs?: string[];
}

function clientArgs(profilePath: string, timeoutMs: number, extraArgs: string[]) {
  // A refused client hears nothing back (the server drops the handshake without a TLS alert), so
  // on its own side only the hand-window expiry ends the attempt. A loopback handshake takes
  // ~100 ms, so 5 s is ample and bounds refusals the server log does not explain.
  const window = String(Math.min(5, Math.max(2, Math.floor(timeoutMs / 1000) - 1)));
  return (logPath: string, pidPath: string) => [
    '--config',
    profilePath,
    // Options after --config win, so these hold whatever the profile says.
    '--route-noexec',
    // The client shares the namespace with the server, so the pushed address would sit on a
    // second tun in the server's own subnet; the handshake is what the tests prove anyway.
    '--ifconfig-noexec',
    '--script-security',
    '1',
    // One attempt only: a refused client must exit instead of retrying for minutes.
    '--connect-retry-max',
    '1',
    '--connect-retry',
    '1',
    '--resolv-retry',
    '0',
    '--server-poll-timeout',
    window,
    '--hand-window',
    window,
    '--tls-timeout',
    '1',
    '--verb',
    '3',
    '--log',
    logPath,
    '--writepid',
    pidPath,
    ...extraArgs,
  ];
}

interface Attempt {
  proc: OpenvpnProcess;
  serverOffset: number;
  result: ConnectResult;
}

async function attempt(ns: Netns, profilePath: string, server: OpenvpnServer, opts: ClientOptions): Promise<Attempt> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  // Assumes one client handshake per server at a time: the excerpt is everything after here.
  const serverOffset = server.log().length;
  const proc = spawnOpenvpn(ns, 'client', clientArgs(profilePath, timeoutMs, opts.extraArgs ?? []));
  const deadline = Date.now() + timeoutMs;
  const serverExcerpt = () => server.log().slice(serverOffset);
  let connected = false;
  let reason: string;
  for (;;) {
    const clientLog = proc.log();
    if (INIT_COMPLETED.test(clientLog)) {
      connected = true;
      reason = 'client logged "Initialization Sequence Completed"';
      break;
    }
    const excerpt = serverExcerpt();
    const serverHit = SERVER_REFUSAL.exec(excerpt);
    if (serverHit) {
      reason = `server logged "${lineOf(excerpt, serverHit.index)}"`;
      break;
    }
    const clientHit = CLIENT_REFUSAL.exec(clientLog);
    if (clientHit) {
      reason = `client logged "${lineOf(clientLog, clientHit.index)}"`;
      break;
    }
    if (proc.exited()) {
      reason = `client exited with code ${proc.exitCode()} without connecting`;
      break;
    }
    if (Date.now() > deadline) {
      reason = `no tunnel within ${timeoutMs} ms`;
      break;
    }
    await sleep(50);
  }
  return {
    proc,
    serverOffset,
    result: { connected, reason, log: proc.log(), serverLogExcerpt: serverExcerpt() },
  };
}

function lineOf(text: string, index: number): string {
  const start = text.lastIndexOf('\n', index) + 1;
  const end = text.indexOf('\n', index);
  return text.slice(start, end === -1 ? undefined : end).trim();
}

/**
 * Runs a client on `profilePath` (an inline .ovpn whose remote is reachable inside `ns`, i.e.
 * 127.0.0.1) until it either connects or is definitely refused, then stops it.
 */
export async function tryConnect(
  ns: Netns,
  profilePath: string,
  server: OpenvpnServer,
  opts: ClientOptions = {},
): Promise<ConnectResult> {
  const { proc, serverOffset, result } = await attempt(ns, profilePath, server, opts);
  await proc.stop();
  // Re-read after stopping: the deciding line is often followed by useful context.
  return { ...result, log: proc.log(), serverLogExcerpt: server.log().slice(serverOffset) };
}

export interface HeldConnection {
  readonly pid: number;
  /** The client's whole log so far. */
  log(): string;
  isRunning(): boolean;
  /** Resolves true once the client process has exited, false if it still runs after timeoutMs. */
  waitForExit(timeoutMs?: number): Promise<boolean>;
  /** Resolves with the matching line once the client log matches, rejects after timeoutMs. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Idempotent. */
  stop(): Promise<void>;
}

/**
 * Like tryConnect, but leaves the connected client running for tests that need a live session.
 * Throws (after stopping the client) with both logs if it does not connect.
 */
export async function connectAndHold(
  ns: Netns,
  profilePath: string,
  server: OpenvpnServer,
  opts: ClientOptions = {},
): Promise<HeldConnection> {
  const { proc, result } = await attempt(ns, profilePath, server, opts);
  if (!result.connected) {
    await proc.stop();
    throw new Error(
      `client did not connect: ${result.reason}\n${describeProcess(proc)}\n--- server log since start ---\n${tail(result.serverLogExcerpt)}`,
    );
  }
  return {
    pid: proc.child.pid ?? -1,
    log: proc.log,
    isRunning: () => !proc.exited(),
    async waitForExit(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!proc.exited()) {
        if (Date.now() > deadline) return false;
        await sleep(50);
      }
      return true;
    },
    async waitForLog(pattern, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = proc.log();
        const hit = pattern.exec(text);
        if (hit) return lineOf(text, hit.index);
        if (Date.now() > deadline) {
          throw new Error(`client log did not match ${pattern} within ${timeoutMs} ms\n${describeProcess(proc)}`);
        }
        await sleep(50);
      }
    },
    stop: proc.stop,
  };
}
