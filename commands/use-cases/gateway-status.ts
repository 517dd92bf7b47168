// ov_status: the gateway's health in one look, for an operator and for a monitoring system.
// Every check says ok, warning or critical; the worst one decides the exit code (0, 1, 2).
//
//   crl                  the CRL file OpenVPN enforces: an expired one makes OpenVPN refuse everyone
//   server-certificate   the file OpenVPN loads, and that it matches its key (ov_server_renew)
//   ca                   the CA every profile chains to
//   expiring-profiles    active profiles expiring within the renewal window (information)
//   stuck-renewals       profiles whose last automatic renewal failed
//   openvpn              connected clients, from the management interface
//   networks             partial profiles whose recorded routes lack a network the gateway serves
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readConnectedClients, type StatusOutcome } from '../../adapters/openvpn/management-status.js';
import { readCrlFile } from '../../adapters/pki/crl-reader.js';
import { addDays, utcDateOf } from '../../domain/values.js';
import type { Ledger } from '../ledger.js';
import { stalePartialProfiles, type StaleReport } from './gateway-networks.js';

export type Severity = 'ok' | 'warning' | 'critical';

export const SEVERITY_EXIT: Record<Severity, number> = { ok: 0, warning: 1, critical: 2 };

/** Inside this many days an expiry is critical, whatever the warning windows say. */
export const CRITICAL_DAYS = 7;

export interface StatusCheck {
  readonly name: 'crl' | 'server-certificate' | 'ca' | 'expiring-profiles' | 'stuck-renewals' | 'openvpn' | 'networks';
  readonly status: Severity;
  /** One line. */
  readonly summary: string;
}

export interface CertificateStatus {
  readonly path: string;
  readonly commonName: string | undefined;
  readonly serial: string | undefined;
  readonly notAfter: string | undefined;
  readonly daysLeft: number | undefined;
}

export interface GatewayStatus {
  readonly status: Severity;
  readonly checkedAt: string;
  readonly checks: readonly StatusCheck[];
  readonly crl: { readonly path: string; readonly number: string | undefined; readonly thisUpdate: string | undefined; readonly nextUpdate: string | undefined; readonly daysLeft: number | undefined; readonly entries: number };
  readonly serverCertificate: CertificateStatus & { readonly matchesKey: boolean | undefined };
  readonly ca: CertificateStatus;
  readonly expiringProfiles: { readonly windowDays: number; readonly profiles: ReadonlyArray<{ email: string; traffic: string; expirationDate: string; autoRenew: boolean }> };
  readonly stuckRenewals: ReadonlyArray<{ email: string; traffic: string; since: string; reason: string }>;
  readonly openvpn:
    | { readonly reachable: true; readonly connected: number; readonly clients: ReadonlyArray<{ commonName: string; email: string | undefined; traffic: string | undefined; realAddress: string; virtualAddress: string; connectedSince: string }> }
    | { readonly reachable: false; readonly reason: string };
  readonly networks: StaleReport;
}

export interface StatusOptions {
  /** Replaces the management interface, for tests. */
  readonly readClients?: (socketPath: string) => Promise<StatusOutcome>;
}

const DAY_MS = 86_400_000;

export async function gatewayStatus(ledger: Ledger, options: StatusOptions = {}): Promise<GatewayStatus> {
  const now = ledger.clock.now();
  const { layout, settings } = ledger;
  const warn = settings.warnDays;
  const checks: StatusCheck[] = [];
  // Whole days, towards zero: 3.9 days left is 3, 1.2 days ago is -1.
  const daysUntil = (d: Date) => Math.trunc((d.getTime() - now.getTime()) / DAY_MS);
  const expiry = (daysLeft: number, warnDays: number): Severity => (daysLeft < CRITICAL_DAYS ? 'critical' : daysLeft < warnDays ? 'warning' : 'ok');
  const inDays = (d: Date) => {
    const ms = d.getTime() - now.getTime();
    if (ms >= 0) return `${Math.floor(ms / DAY_MS)} day(s) left`;
    const ago = Math.floor(-ms / DAY_MS);
    return ago === 0 ? 'expired less than a day ago' : `expired ${ago} day(s) ago`;
  };

  // CRL
  let crl: GatewayStatus['crl'] = { path: layout.crl, number: undefined, thisUpdate: undefined, nextUpdate: undefined, daysLeft: undefined, entries: ledger.projections.crlEntryCount() };
  if (!existsSync(layout.crl)) {
    checks.push({ name: 'crl', status: 'critical', summary: `no CRL at ${layout.crl}: OpenVPN refuses every client (run ov_init)` });
  } else {
    try {
      const t = readCrlFile(layout.crl);
      const daysLeft = t.nextUpdate ? daysUntil(t.nextUpdate) : undefined;
      crl = { ...crl, number: t.number?.toString(), thisUpdate: t.thisUpdate.toISOString(), nextUpdate: t.nextUpdate?.toISOString(), daysLeft };
      const lags = ledger.crl.isStale();
      const status: Severity = daysLeft === undefined ? 'ok' : expiry(daysLeft, warn.crl);
      const when = t.nextUpdate ? `next update ${t.nextUpdate.toISOString()} (${inDays(t.nextUpdate)})` : 'no next update';
      const passed = t.nextUpdate !== undefined && t.nextUpdate.getTime() <= now.getTime();
      const advice = status === 'ok' ? '' : passed ? '; OpenVPN refuses every client: run ov_user_renew_due to re-sign it' : '; run ov_user_renew_due to re-sign it';
      checks.push(
        lags && status === 'ok'
          ? { name: 'crl', status: 'warning', summary: `CRL #${crl.number ?? '?'} lags the log (a revocation is not in the file yet): run ov_user_renew_due to rewrite it` }
          : { name: 'crl', status, summary: `CRL #${crl.number ?? '?'}, ${crl.entries} revoked, ${when}${advice}` },
      );
    } catch (error) {
      checks.push({ name: 'crl', status: 'critical', summary: `cannot read ${layout.crl}: ${(error as Error).message}` });
    }
  }

  // Server certificate and CA: the files OpenVPN loads.
  const server = readCertificate(layout.serverCert, daysUntil);
  let matchesKey: boolean | undefined;
  try {
    matchesKey =
      server.x509 !== undefined &&
      createPublicKey(createPrivateKey(readFileSync(layout.serverKey))).export({ format: 'der', type: 'spki' }).equals(server.x509.publicKey.export({ format: 'der', type: 'spki' }));
  } catch {
    matchesKey = undefined;
  }
  if (server.status.daysLeft === undefined) {
    checks.push({ name: 'server-certificate', status: 'critical', summary: `cannot read the server certificate ${layout.serverCert}` });
  } else if (matchesKey === false) {
    checks.push({ name: 'server-certificate', status: 'critical', summary: `${layout.serverCert} does not match ${layout.serverKey}: run ov_server_renew` });
  } else {
    const status = expiry(server.status.daysLeft, warn.serverCertificate);
    checks.push({
      name: 'server-certificate',
      status,
      summary: `server certificate ${server.status.commonName ?? '?'} valid until ${server.status.notAfter ?? '?'} (${inDays(new Date(server.status.notAfter ?? 0))})${status === 'ok' ? '' : '; run ov_server_renew'}`,
    });
  }
  const ca = readCertificate(layout.caCert, daysUntil);
  if (ca.status.daysLeft === undefined) {
    checks.push({ name: 'ca', status: 'critical', summary: `cannot read the CA certificate ${layout.caCert}` });
  } else {
    const status = expiry(ca.status.daysLeft, warn.ca);
    checks.push({
      name: 'ca',
      status,
      summary: `CA valid until ${ca.status.notAfter ?? '?'} (${inDays(new Date(ca.status.notAfter ?? 0))})${status === 'ok' ? '' : '; every profile chains to it: plan a new CA and reissue every profile'}`,
    });
  }

  // Profiles
  const today = utcDateOf(now);
  const expiring = ledger.projections
    .activeExpiringBetween(today, addDays(today, settings.renewalWindowDays))
    .map((u) => ({ email: u.email, traffic: u.traffic, expirationDate: u.expirationDate, autoRenew: u.autoRenew }));
  const manual = expiring.filter((p) => !p.autoRenew).length;
  checks.push({
    name: 'expiring-profiles',
    status: 'ok',
    summary: `${expiring.length} profile(s) expire within ${settings.renewalWindowDays} days${manual > 0 ? ` (${manual} without auto-renew)` : ''}`,
  });
  const stuck = ledger.projections
    .stuckUsers()
    .map((u) => ({ email: u.email, traffic: u.traffic, since: u.lastRenewalFailure?.at ?? '', reason: u.lastRenewalFailure?.reason ?? '' }));
  checks.push(
    stuck.length === 0
      ? { name: 'stuck-renewals', status: 'ok', summary: 'no failed renewal' }
      : { name: 'stuck-renewals', status: 'warning', summary: `${stuck.length} renewal(s) failed and not retried successfully since: see ov_user_audit --stuck` },
  );

  // OpenVPN
  let openvpn: GatewayStatus['openvpn'];
  if (!existsSync(layout.managementSocket)) {
    openvpn = { reachable: false, reason: `no management socket at ${layout.managementSocket}` };
    checks.push({ name: 'openvpn', status: 'warning', summary: `OpenVPN is not running (no management socket at ${layout.managementSocket})` });
  } else {
    const answer = await (options.readClients ?? readConnectedClients)(layout.managementSocket);
    if (answer.kind === 'unreachable') {
      openvpn = { reachable: false, reason: answer.reason };
      checks.push({ name: 'openvpn', status: 'warning', summary: `the OpenVPN management interface does not answer (${answer.reason})` });
    } else {
      const rows = new Map(ledger.projections.usersByProfileIds([...new Set(answer.clients.map((c) => c.commonName))]).map((u) => [u.profileId, u]));
      const clients = answer.clients.map((c) => ({
        commonName: c.commonName,
        email: rows.get(c.commonName)?.email,
        traffic: rows.get(c.commonName)?.traffic,
        realAddress: c.realAddress,
        virtualAddress: c.virtualAddress,
        connectedSince: c.connectedSince,
      }));
      openvpn = { reachable: true, connected: clients.length, clients };
      checks.push({ name: 'openvpn', status: 'ok', summary: `OpenVPN answers: ${clients.length} client(s) connected` });
    }
  }

  // Networks
  const networks = stalePartialProfiles(ledger);
  checks.push(
    networks.stale.length === 0
      ? {
          name: 'networks',
          status: 'ok',
          summary: `partial profiles route ${networks.current.join(' ') || 'no network'} (${networks.source}); none lacks one`,
        }
      : {
          name: 'networks',
          status: 'warning',
          summary: `${networks.stale.length} partial profile(s) lack ${[...new Set(networks.stale.flatMap((s) => s.missing))].join(' ')}: reissue them (ov_user_delete, ov_user_add)`,
        },
  );

  const worst = checks.reduce<Severity>((w, c) => (SEVERITY_EXIT[c.status] > SEVERITY_EXIT[w] ? c.status : w), 'ok');
  return {
    status: worst,
    checkedAt: now.toISOString(),
    checks,
    crl,
    serverCertificate: { ...server.status, matchesKey },
    ca: ca.status,
    expiringProfiles: { windowDays: settings.renewalWindowDays, profiles: expiring },
    stuckRenewals: stuck,
    openvpn,
    networks,
  };
}

function readCertificate(path: string, daysUntil: (d: Date) => number): { status: CertificateStatus; x509: X509Certificate | undefined } {
  try {
    const x509 = new X509Certificate(readFileSync(path));
    const notAfter = new Date(x509.validTo);
    return {
      x509,
      status: {
        path,
        commonName: /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1],
        serial: x509.serialNumber.toLowerCase(),
        notAfter: notAfter.toISOString(),
        daysLeft: daysUntil(notAfter),
      },
    };
  } catch {
    return { x509: undefined, status: { path, commonName: undefined, serial: undefined, notAfter: undefined, daysLeft: undefined } };
  }
}
