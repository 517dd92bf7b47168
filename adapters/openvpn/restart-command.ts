// Restarting OpenVPN the way this gateway runs it (RESTART_COMMAND in gateway.conf, e.g.
// `systemctl restart ovpn-ledger-openvpn`): the fallback when the management interface does not
// answer, and how a renewed server certificate is loaded. Every session ends; clients reconnect
// by themselves, and a revoked one is then refused by the CRL.
import { spawn } from 'node:child_process';

export type RestartOutcome =
  | { readonly kind: 'restarted'; readonly command: string }
  | { readonly kind: 'failed'; readonly command: string; readonly reason: string }
  | { readonly kind: 'not-configured' };

export type RestartOpenvpn = () => Promise<RestartOutcome>;

/** Runs the command through /bin/sh (gateway.conf is root's file), bounded by a timeout. */
export function restartCommand(command: string | undefined, timeoutMs = 60_000): RestartOpenvpn {
  return () =>
    new Promise((resolve) => {
      if (command === undefined) return resolve({ kind: 'not-configured' });
      const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => {
        if (stderr.length < 2_000) stderr += d;
      });
      child.on('error', (error) => resolve({ kind: 'failed', command, reason: error.message }));
      child.on('close', (code, signal) => {
        if (code === 0) return resolve({ kind: 'restarted', command });
        const last = stderr.trim().split('\n').at(-1)?.trim();
        const why = signal ? `killed by ${signal}` : `exit ${code}`;
        resolve({ kind: 'failed', command, reason: last ? `${why}: ${last}` : why });
      });
    });
}
