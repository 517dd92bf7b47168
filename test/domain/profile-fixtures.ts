// Plain-data events and commands for the rule book; no I/O, no clock.
import type { EventOf, IssuedCertificate } from '../../domain/events.js';
import type { ProfileCommand } from '../../domain/profile-decider.js';

export const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

export const certificate = (serial: string, notAfter = '2027-12-31T23:59:59.000Z'): IssuedCertificate => ({
  serial,
  notBefore: '2026-11-01T00:00:00.000Z',
  notAfter,
  pem: PEM,
});

export const issued = (overrides: Partial<EventOf<'ProfileIssued'>['data']> = {}): EventOf<'ProfileIssued'> => ({
  type: 'ProfileIssued',
  data: {
    profileId: 'p0123456789abcdef01234567',
    generation: 1,
    email: 'ada@example.com',
    traffic: 'all',
    firstName: 'Ada',
    lastName: 'Lovelace',
    expirationDate: '2027-12-31',
    reason: 'remote access',
    autoRenew: false,
    certificate: certificate('11'),
    routes: [],
    ...overrides,
  },
});

export const issue = (overrides: Partial<Extract<ProfileCommand, { type: 'IssueProfile' }>> = {}): ProfileCommand => ({
  type: 'IssueProfile',
  profileId: 'p0123456789abcdef01234567',
  email: 'ada@example.com',
  traffic: 'all',
  firstName: 'Ada',
  lastName: 'Lovelace',
  expirationDate: '2027-12-31',
  reason: 'remote access',
  autoRenew: false,
  routes: ['10.0.0.0/16'],
  certificate: certificate('11'),
  today: '2026-11-21',
  ...overrides,
});

export const renewed = (serial: string, previousSerial: string, notAfter: string): EventOf<'ProfileRenewed'> => ({
  type: 'ProfileRenewed',
  data: { previousSerial, expirationDate: notAfter.slice(0, 10), certificate: certificate(serial, notAfter) },
});

export const revoked = (serials: string[]): EventOf<'ProfileRevoked'> => ({
  type: 'ProfileRevoked',
  data: { serials, reason: 'left the company', crlReason: 'cessationOfOperation' },
});
