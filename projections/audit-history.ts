// The audit history: one record per lifecycle event, with who, when and what changed, in a shape
// an auditor reads. Certificates are reduced to their serial and validity: the PEM stays in the
// event log, where `--history` can still fetch it from the one stream it concerns.
import type { Envelope, LedgerEvent } from '../domain/events.js';

export interface AuditRecord {
  readonly position: bigint;
  readonly streamId: string;
  readonly type: LedgerEvent['type'];
  readonly at: string;
  readonly actor: string;
  readonly details: Record<string, unknown>;
}

export function auditRecordOf(event: Envelope): AuditRecord {
  return {
    position: event.position,
    streamId: event.streamId,
    type: event.type,
    at: event.metadata.at,
    actor: event.metadata.actor,
    details: detailsOf(event),
  };
}

function detailsOf(event: LedgerEvent): Record<string, unknown> {
  switch (event.type) {
    case 'ProfileIssued':
    case 'ProfileRenewed':
    case 'RenewalCertificateIssued': {
      const details = without(event.data, 'certificate');
      details['serial'] = event.data.certificate.serial;
      details['notAfter'] = event.data.certificate.notAfter;
      return details;
    }
    case 'GatewayInitialized':
      return without(event.data, 'caCertificatePem', 'serverCertificatePem');
    case 'ServerCertificateRenewed':
      return without(event.data, 'serverCertificatePem');
    default:
      // Read only, like the rest of the record: no copy needed.
      return event.data;
  }
}

/**
 * A copy of `data` without `omitted`, keys in their order. A loop rather than a rest pattern
 * (`const { certificate, ...rest } = data`), which Node 20's V8 runs on a slow path: a whole-log
 * pass makes one record per event.
 */
function without(data: object, ...omitted: string[]): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) if (!omitted.includes(key)) copy[key] = value;
  return copy;
}

/** One line of what changed, for the text view of `--history`. */
export function describeAuditRecord(r: AuditRecord): string {
  const d = r.details;
  switch (r.type) {
    case 'ProfileIssued':
      return `issued generation ${String(d['generation'])}, serial ${String(d['serial'])}, expires ${String(d['expirationDate'])}, auto-renew ${d['autoRenew'] ? 'on' : 'off'}, reason: ${String(d['reason'])}`;
    case 'ProfileRenewed':
      return `renewed: serial ${String(d['previousSerial'])} → ${String(d['serial'])}, expires ${String(d['expirationDate'])}`;
    case 'ProfileRevoked':
      return `revoked serial(s) ${(d['serials'] as string[]).join(', ')} (${String(d['crlReason'])}), reason: ${String(d['reason'])}`;
    case 'ProfileResent':
      return `resent serial ${String(d['serial'])} via ${String(d['via'])}`;
    case 'ProfileDeliveryFailed':
      return `delivery of ${String(d['delivery'])} profile failed: ${String(d['error'])}`;
    case 'RenewalFailed':
      return `renewal failed: ${String(d['reason'])}`;
    case 'RenewalCertificateIssued':
      return `renewal certificate signed: serial ${String(d['serial'])}, expires ${String(d['expirationDate'])}`;
    case 'AutoRenewEnabled':
      return 'auto-renew enabled';
    case 'AutoRenewDisabled':
      return 'auto-renew disabled';
    case 'GatewayInitialized':
      return `gateway initialised for ${String(d['publicHost'])}:${String(d['port'])}`;
    case 'NetworksDiscovered':
      return `networks of ${String(d['vpcId'])} recorded: ${(d['routes'] as string[]).join(' ')}`;
    case 'ServerCertificateRenewed':
      return `server certificate renewed: serial ${String(d['previousSerial'] ?? '?')} → ${String(d['serial'])}, valid until ${String(d['notAfter'])}`;
  }
}
