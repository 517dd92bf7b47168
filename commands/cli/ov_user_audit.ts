import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { CalendarDate, Email, Traffic } from '../../domain/values.js';
import { audit, CRL_WARNING_DAYS, type AuditLens, type AuditResult } from '../use-cases/audit.js';
import type { CommandSpec } from './run-cli.js';

const LENSES = ['summary', 'expiring', 'renewed', 'revoked', 'history', 'stuck'] as const;
type LensName = (typeof LENSES)[number];

/** Which lenses each lens-specific flag goes with. */
const FLAG_LENSES = {
  days: ['expiring', 'summary'],
  since: ['renewed', 'revoked'],
  until: ['renewed'],
  email: ['history'],
  traffic: ['history'],
} as const satisfies Record<string, readonly LensName[]>;

const flagList = (names: readonly string[]) =>
  names.length === 1 ? `--${names[0]}` : `${names.slice(0, -1).map((n) => `--${n}`).join(', ')} or --${names.at(-1)}`;

const Schema = z
  .object({
    summary: z.boolean().optional(),
    expiring: z.boolean().optional(),
    renewed: z.boolean().optional(),
    revoked: z.boolean().optional(),
    history: z.boolean().optional(),
    stuck: z.boolean().optional(),
    days: z
      .number({ error: 'must be a whole number of days' })
      .int('must be a whole number of days')
      .min(0, 'must not be negative')
      .max(3650, 'must be at most 3650')
      .optional(),
    since: CalendarDate.optional(),
    until: CalendarDate.optional(),
    email: Email.optional(),
    traffic: Traffic.optional(),
    asOf: z.iso
      .datetime({ offset: true, error: 'must be an ISO 8601 instant like 2026-03-01T12:00:00Z' })
      .refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 instant like 2026-03-01T12:00:00Z')
      .optional(),
    json: z.boolean().default(false),
  })
  .check((ctx) => {
    const v = ctx.value;
    const issue = (path: PropertyKey[], message: string) => ctx.issues.push({ code: 'custom', path, input: v, message });
    const given = LENSES.filter((l) => v[l] === true);
    const [lens, second] = given;
    if (lens === undefined) {
      issue([], `give one lens: ${flagList(LENSES)} (see --help)`);
      return;
    }
    if (second !== undefined) {
      issue([lens], `and --${second} cannot be combined: give exactly one lens`);
      return;
    }
    for (const [flag, lenses] of Object.entries(FLAG_LENSES) as [keyof typeof FLAG_LENSES, readonly LensName[]][]) {
      if (v[flag] !== undefined && !lenses.includes(lens)) issue([flag], `goes only with ${flagList(lenses)}, not with --${lens}`);
    }
    if (lens === 'history' && v.email === undefined) issue(['email'], 'is required with --history');
    if (v.since !== undefined && v.until !== undefined && v.until < v.since) issue(['until'], `(${v.until}) is before --since (${v.since})`);
  });

type Input = z.output<typeof Schema>;

function lensOf(input: Input): AuditLens {
  const lens = LENSES.find((l) => input[l] === true);
  switch (lens) {
    case 'summary':
    case 'expiring':
      return { lens, days: input.days };
    case 'renewed':
      return { lens, since: input.since, until: input.until };
    case 'revoked':
      return { lens, since: input.since };
    case 'history':
      // The schema's check guarantees --email with --history.
      return { lens, email: input.email ?? '', traffic: input.traffic };
    case 'stuck':
    case undefined:
      return { lens: 'stuck' };
  }
}

export const spec: CommandSpec<typeof Schema> = {
  name: 'ov_user_audit',
  description: 'read-only lenses over the profiles and their history (never writes an event or a file)',
  open: 'existing',
  schema: Schema,
  flags: (y) =>
    y
      .option('summary', { type: 'boolean', describe: `one line of counts (active, expiring, revoked, renewed, stuck) and the CRL's next update, with a warning when it is less than ${CRL_WARNING_DAYS} days away` })
      .option('expiring', {
        type: 'boolean',
        describe: 'active profiles expiring from today to today + --days, both inclusive (already expired ones are not listed: see ov_user_list_expired)',
      })
      .option('renewed', { type: 'boolean', describe: 'renewals (ProfileRenewed) between --since and --until' })
      .option('revoked', { type: 'boolean', describe: 'revocations (ProfileRevoked) since --since' })
      .option('history', { type: 'boolean', describe: 'every event of the profile(s) of --email, in order, with who and what changed' })
      .option('stuck', { type: 'boolean', describe: 'active profiles whose last renewal attempt failed and that were not renewed since, with the last log line' })
      .group(LENSES.map((l) => l), 'Lenses (give exactly one):')
      .option('days', { type: 'number', describe: 'with --expiring or --summary: the window in days (default RENEWAL_WINDOW_DAYS in gateway.conf, 10)' })
      .option('since', { type: 'string', describe: 'with --renewed or --revoked: from this date (YYYY-MM-DD, UTC, inclusive)' })
      .option('until', { type: 'string', describe: 'with --renewed: up to this date (YYYY-MM-DD, UTC, inclusive)' })
      .option('email', { type: 'string', describe: 'with --history: the user\'s email address' })
      .option('traffic', { type: 'string', describe: 'with --history: all or partial (default: both)' })
      .option('as-of', {
        type: 'string',
        describe:
          'answer from the events up to this ISO 8601 instant (e.g. 2026-03-01T00:00:00Z); "today" is its UTC date. ' +
          'Reads the whole event log, unlike the other answers, which come from the read models',
      })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON instead of text' })
      .epilogue('Dates are UTC calendar dates; times are ISO 8601 UTC. Today is the UTC date of the clock (OVL_NOW if set).'),
  run: async (input, { ledger }) => {
    const result = await audit(ledger, lensOf(input), input.asOf === undefined ? undefined : new Date(input.asOf));
    return E.right(input.json ? JSON.stringify(result, null, 2) : render(result));
  },
};

// ---- text ----------------------------------------------------------------------------------

/** Free text from events (error messages, reasons) on one line, without control characters. */
// eslint-disable-next-line no-control-regex
const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
const time = (iso: string) => iso.replace(/\.000Z$/, 'Z');
const plural = (n: number, word: string, words = `${word}s`) => `${n} ${n === 1 ? word : words}`;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line)];
}

export function render(r: AuditResult): string {
  const lines: string[] = r.asOf === null ? [] : [`As of ${time(r.asOf)} (the events up to that instant):`];
  switch (r.lens) {
    case 'summary': {
      lines.push(
        `active ${r.active}, expiring ${r.expiring} (within ${plural(r.windowDays, 'day')} of ${r.today}), revoked ${r.revoked}, ` +
          `renewed ${plural(r.renewedProfiles, 'profile')} (${plural(r.renewals, 'renewal')}), stuck ${r.stuck}`,
      );
      lines.push(
        r.crl
          ? `CRL #${r.crl.number}: ${plural(r.crlEntries, 'entry', 'entries')}, next update ${time(r.crl.nextUpdate)} (in ${plural(r.crl.daysLeft, 'day')})`
          : r.asOf !== null
            ? `CRL: ${plural(r.crlEntries, 'entry', 'entries')} by then (the CRL's next update at that time is not in the event log)`
            : `CRL: ${plural(r.crlEntries, 'entry', 'entries')}, never written`,
      );
      for (const w of r.warnings) lines.push(`WARNING: ${w}`);
      break;
    }
    case 'expiring':
      if (r.profiles.length === 0) lines.push(`No active profile expires from ${r.today} to ${r.to}.`);
      else {
        lines.push(`Active profiles expiring from ${r.today} to ${r.to} (${plural(r.windowDays, 'day')}): ${r.profiles.length}`);
        lines.push(
          ...table(
            ['EMAIL', 'TRAFFIC', 'NAME', 'EXPIRES', 'DAYS LEFT', 'AUTO-RENEW'],
            r.profiles.map((p) => [p.email, p.traffic, `${p.firstName} ${p.lastName}`, p.expirationDate, String(p.daysLeft), p.autoRenew ? 'yes' : 'no']),
          ),
        );
      }
      break;
    case 'renewed': {
      const window = [r.since === null ? '' : ` since ${r.since}`, r.until === null ? '' : ` until ${r.until}`].join('');
      if (r.renewals.length === 0) lines.push(`No renewals${window}.`);
      else {
        lines.push(`Renewals${window}: ${r.renewals.length}`);
        lines.push(
          ...table(
            ['AT', 'EMAIL', 'TRAFFIC', 'PREVIOUS SERIAL', 'SERIAL', 'EXPIRES', 'ACTOR'],
            r.renewals.map((x) => [time(x.at), x.email, x.traffic, x.previousSerial, x.serial, x.expirationDate, x.actor]),
          ),
        );
      }
      break;
    }
    case 'revoked': {
      const window = r.since === null ? '' : ` since ${r.since}`;
      if (r.revocations.length === 0) lines.push(`No revocations${window}.`);
      else {
        lines.push(`Revocations${window}: ${r.revocations.length}`);
        lines.push(
          ...table(
            ['AT', 'EMAIL', 'TRAFFIC', 'CRL REASON', 'ACTOR', 'SERIALS', 'REASON'],
            r.revocations.map((x) => [time(x.at), x.email, x.traffic, x.crlReason, x.actor, x.serials.join(','), oneLine(x.reason)]),
          ),
        );
      }
      break;
    }
    case 'history':
      if (r.events.length === 0) lines.push(`No events for ${r.email} (${r.traffic.join(', ')}).`);
      else {
        lines.push(`History of ${r.email} (${r.traffic.join(', ')}): ${plural(r.events.length, 'event')}`);
        lines.push(
          ...table(
            ['AT', 'TRAFFIC', 'ACTOR', 'WHAT'],
            r.events.map((e) => [time(e.at), e.traffic, e.actor, oneLine(e.description)]),
          ),
        );
      }
      break;
    case 'stuck':
      if (r.profiles.length === 0) lines.push('No stuck profiles.');
      else {
        lines.push(`Stuck profiles (last renewal attempt failed, not renewed since): ${r.profiles.length}`);
        for (const p of r.profiles) {
          lines.push(
            `${p.email} (${p.traffic}), expires ${p.expirationDate}, auto-renew ${p.autoRenew ? 'on' : 'off'}: renewal failed at ${time(p.failedAt)}: ${oneLine(p.reason)}`,
          );
          lines.push(`  last log line: ${oneLine(p.lastLogLine)}`);
        }
      }
      break;
  }
  return lines.join('\n');
}
