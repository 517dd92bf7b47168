// The text view of user lists: aligned columns, one profile per line.
import type { ListedUser } from '../use-cases/list-users.js';

export function renderUserTable(users: readonly ListedUser[], emptyMessage: string): string {
  if (users.length === 0) return emptyMessage;
  const header = ['EMAIL', 'TRAFFIC', 'NAME', 'EXPIRES', 'CREATED', 'AUTO-RENEW'];
  const rows = users.map((u) => [
    u.email,
    u.traffic,
    `${u.firstName} ${u.lastName}`,
    u.expirationDate,
    u.createdAt.replace(/\.\d{3}Z$/, 'Z'),
    u.autoRenew ? 'yes' : 'no',
  ]);
  // A loop, not Math.max(...column): spreading one argument per row overflows the call stack
  // ("Maximum call stack size exceeded") somewhere past ~120,000 profiles.
  const widths = header.map((h) => h.length);
  for (const r of rows) {
    for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i]!, (r[i] ?? '').length);
  }
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}
