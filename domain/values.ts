// Value types of the profile lifecycle. Each is a zod schema so that every boundary where
// untyped data enters (CLI flags, config files, stored and imported events) validates the same way.
import { z } from 'zod';

export const TRAFFIC_MODES = ['all', 'partial'] as const;
export const Traffic = z.enum(TRAFFIC_MODES, {
  error: () => `must be "all" or "partial"`,
});
export type Traffic = z.infer<typeof Traffic>;

// Addresses are compared case-insensitively by every mail system we deliver to, so one person
// must not get two "different" profiles by a change of case.
export const Email = z
  .string()
  .trim()
  .max(254, 'is longer than 254 characters')
  .regex(/^[^\s@<>(),;:"[\]\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, 'is not a valid email address')
  .transform((s) => s.toLowerCase());
export type Email = z.infer<typeof Email>;

// Names end up in mail headers, in log lines and in terminal tables: control characters there
// would let one field forge another.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// Checked before trimming: a trailing newline is as much a forgery attempt as an embedded one.
const freeText = (max: number) =>
  z
    .string()
    .refine((s) => !CONTROL_CHARACTERS.test(s), 'must not contain control characters')
    .transform((s) => s.trim())
    .pipe(z.string().min(1, 'must not be empty').max(max, `is longer than ${max} characters`));

export const PersonName = freeText(100);
export type PersonName = z.infer<typeof PersonName>;

export const Reason = freeText(500);
export type Reason = z.infer<typeof Reason>;

/** A calendar date YYYY-MM-DD that exists (no 2026-02-30). */
export const CalendarDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date in YYYY-MM-DD format')
  .refine(isRealCalendarDate, 'is not a real calendar date');
export type CalendarDate = z.infer<typeof CalendarDate>;

export function isRealCalendarDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1) return false;
  return d <= new Date(Date.UTC(y, mo, 0)).getUTCDate();
}

/** The UTC calendar date of an instant. */
export function utcDateOf(instant: Date): CalendarDate {
  return instant.toISOString().slice(0, 10);
}

/** The last second of a calendar date in UTC: a profile is valid through its whole expiration day. */
export function endOfUtcDay(date: CalendarDate): Date {
  return new Date(`${date}T23:59:59.000Z`);
}

export function addDays(date: CalendarDate, days: number): CalendarDate {
  const t = Date.parse(`${date}T00:00:00Z`) + days * 86_400_000;
  return new Date(t).toISOString().slice(0, 10);
}

export function daysBetween(from: CalendarDate, to: CalendarDate): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000);
}

/** Certificate serial as lower-case hex of a positive, minimally encoded DER integer. */
export const SerialHex = z.string().regex(/^[0-9a-f]{2,40}$/, 'is not a hex certificate serial');
export type SerialHex = z.infer<typeof SerialHex>;

/** A profile's key: one person may hold one `all` and one `partial` profile. */
export interface ProfileKey {
  readonly email: Email;
  readonly traffic: Traffic;
}

export const CRL_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
] as const;
export const CrlReason = z.enum(CRL_REASONS);
export type CrlReason = z.infer<typeof CrlReason>;
