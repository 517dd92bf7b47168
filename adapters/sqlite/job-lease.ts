// A named lease in the gateway's SQLite file, so that two copies of a job (a timer run and an
// operator's manual run) never work at the same time. A lease whose holder died (killed, machine
// rebooted) is taken over: its process is gone, or it has not been renewed within its term.
import type BetterSqlite3 from 'better-sqlite3';
import { immediateTransaction } from './open-database.js';

export type LeaseResult = { readonly acquired: true; release(): void } | { readonly acquired: false; readonly holderPid: number; readonly since: string };

export function acquireLease(
  db: BetterSqlite3.Database,
  name: string,
  options: { now: Date; termMs: number; pid?: number; isAlive?: (pid: number) => boolean },
): LeaseResult {
  const pid = options.pid ?? process.pid;
  const isAlive = options.isAlive ?? processIsAlive;
  db.exec(`CREATE TABLE IF NOT EXISTS job_leases (name TEXT PRIMARY KEY, pid INTEGER NOT NULL, since TEXT NOT NULL, expires_at TEXT NOT NULL)`);
  return immediateTransaction(db, (): LeaseResult => {
    const held = db.prepare<[string], { pid: number; since: string; expires_at: string }>('SELECT pid, since, expires_at FROM job_leases WHERE name = ?').get(name);
    // Wall time, not OVL_NOW: a lease is about processes running now, not the business clock.
    const wallNow = Date.now();
    if (held && held.pid !== pid && isAlive(held.pid) && Date.parse(held.expires_at) > wallNow) {
      return { acquired: false, holderPid: held.pid, since: held.since };
    }
    db.prepare('INSERT INTO job_leases (name, pid, since, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, since = excluded.since, expires_at = excluded.expires_at').run(
      name,
      pid,
      options.now.toISOString(),
      new Date(wallNow + options.termMs).toISOString(),
    );
    return {
      acquired: true,
      release: () => {
        db.prepare('DELETE FROM job_leases WHERE name = ? AND pid = ?').run(name, pid);
      },
    };
  });
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
