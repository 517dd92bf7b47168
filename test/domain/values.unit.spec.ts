// What counts as a valid value at every boundary: flags, config files, stored events.
import { describe, expect, it } from 'vitest';
import { CalendarDate, Email, PersonName, Reason, Traffic, addDays, endOfUtcDay, isRealCalendarDate } from '../../domain/values.js';

describe('email addresses', () => {
  it('are compared case-insensitively, so John@Example.com and john@example.com are one person', () => {
    expect(Email.parse(' John@Example.COM ')).toBe('john@example.com');
  });
  it.each(['john', 'john@', '@example.com', 'john@example', 'a b@example.com', 'john@example.com\nBcc: x@y.z'])(
    'refuse %j',
    (s) => {
      expect(Email.safeParse(s).success).toBe(false);
    },
  );
});

describe('calendar dates', () => {
  it.each(['2026-02-28', '2028-02-29', '2026-12-31'])('accept the real date %s', (d) => {
    expect(CalendarDate.safeParse(d).success).toBe(true);
  });
  it.each(['2026-02-29', '2026-02-30', '2026-13-01', '2026-04-31', '26-01-01', '2026-1-1', '2026-01-01T00:00:00Z'])(
    'refuse %s',
    (d) => {
      expect(CalendarDate.safeParse(d).success).toBe(false);
      expect(isRealCalendarDate(d)).toBe(false);
    },
  );
  it('end at 23:59:59 UTC, the notAfter of a certificate expiring that day', () => {
    expect(endOfUtcDay('2027-03-01').toISOString()).toBe('2027-03-01T23:59:59.000Z');
  });
  it('add days across month and leap-year ends', () => {
    expect(addDays('2028-02-28', 1)).toBe('2028-02-29');
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01');
  });
});

describe('names and reasons', () => {
  it.each(['Bob\u0007', 'Bob\nEve', 'Bob\u001b[31m', 'Bob\u2028', 'Bob\n', ''])('refuse the name %j', (s) => {
    expect(PersonName.safeParse(s).success).toBe(false);
  });
  it('accept names with accents and spaces', () => {
    expect(PersonName.parse('  Zoë Ana ')).toBe('Zoë Ana');
  });
  it('refuse a blank reason', () => {
    expect(Reason.safeParse('   ').success).toBe(false);
  });
});

describe('traffic modes', () => {
  it('are all or partial, nothing else', () => {
    expect(Traffic.safeParse('all').success).toBe(true);
    expect(Traffic.safeParse('partial').success).toBe(true);
    expect(Traffic.safeParse('both').success).toBe(false);
  });
});
