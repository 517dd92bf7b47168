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
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}
