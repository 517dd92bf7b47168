// The lifecycle events, their current schemas and schema versions. Older versions of a schema
// live in domain/upcasters.ts with the function that lifts them to the next version.
import { z } from 'zod';
import { CalendarDate, CrlReason, Email, PersonName, Reason, SerialHex, Traffic } from './values.js';

const IsoInstant = z.iso.datetime({ offset: false });

export const IssuedCertificate = z.object({
  serial: SerialHex,
  notBefore: IsoInstant,
  notAfter: IsoInstant,
  /** The public certificate; private keys never enter an event. */
  pem: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
});
export type IssuedCertificate = z.infer<typeof IssuedCertificate>;

/** An IPv4 network in CIDR notation, as pushed to partial (split-tunnel) profiles. */
export const Cidr = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/, 'is not an IPv4 CIDR like 10.0.0.0/16')
  .refine((s) => {
    const parts = s.split(/[./]/).map(Number);
    return parts.slice(0, 4).every((n) => n <= 255) && (parts[4] ?? 99) <= 32;
  }, 'is not an IPv4 CIDR like 10.0.0.0/16');

export const ProfileIssuedV2 = z.object({
  /** Opaque id of the (email, traffic) pair; also the certificate's common name. */
  profileId: z.string().regex(/^p[0-9a-f]{24}$/),
  generation: z.number().int().min(1),
  email: Email,
  traffic: Traffic,
  firstName: PersonName,
  lastName: PersonName,
  expirationDate: CalendarDate,
  reason: Reason,
  autoRenew: z.boolean(),
  certificate: IssuedCertificate,
  /** Networks routed through the tunnel for a partial profile; empty for `all`. */
  routes: z.array(Cidr),
});

export const ProfileRenewedV1 = z.object({
  previousSerial: SerialHex,
  expirationDate: CalendarDate,
  certificate: IssuedCertificate,
});

export const ProfileRevokedV1 = z.object({
  serials: z.array(SerialHex).min(1),
  reason: Reason,
  crlReason: CrlReason,
});

export const DeliveryVia = z.enum(['smtp', 'outbox']);

export const ProfileResentV1 = z.object({
  serial: SerialHex,
  via: DeliveryVia,
});

/**
 * A certificate signed for a renewal, recorded before it leaves the gateway: every certificate
 * that could ever connect is in the log, so a delete can revoke it even if the renewal then failed.
 */
export const RenewalCertificateIssuedV1 = z.object({
  expirationDate: CalendarDate,
  certificate: IssuedCertificate,
});

export const RenewalFailedV1 = z.object({
  reason: z.string().min(1),
  lastLogLine: z.string(),
  /** The certificate signed for the failed attempt, if it got that far; it is never the current one. */
  abandonedSerial: SerialHex.optional(),
});

export const AutoRenewToggledV1 = z.object({});

export const ProfileDeliveryFailedV1 = z.object({
  serial: SerialHex,
  delivery: z.enum(['issued', 'resent', 'renewed']),
  error: z.string().min(1),
});

export const GatewayInitializedV1 = z.object({
  publicHost: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  proto: z.enum(['udp', 'tcp']),
  vpnNetwork: Cidr,
  routes: z.array(Cidr),
  caCertificatePem: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
  serverCertificatePem: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
  serverCommonName: z.string().min(1),
});

/**
 * The networks found in the VPC's route tables (ov_init, ov_network_refresh), recorded in the
 * gateway stream whenever they change: the set new partial profiles route and the one ov_status
 * holds recorded profile routes against.
 */
export const NetworksDiscoveredV1 = z.object({
  /** vpcCidrs and peeredCidrs together, normalised: what partial profiles route. */
  routes: z.array(Cidr),
  /** How they were found; only EC2 route tables so far. */
  source: z.enum(['ec2-route-tables']),
  vpcId: z.string().regex(/^vpc-[0-9a-f]+$/),
  region: z.string().min(1),
  vpcCidrs: z.array(Cidr),
  peeredCidrs: z.array(Cidr),
  /** The VPC's primary block (its resolver is at base + 2), when known. */
  primaryCidr: Cidr.optional(),
});

/** A new server key and certificate signed by the unchanged CA, keeping the common name profiles verify. */
export const ServerCertificateRenewedV1 = z.object({
  serverCertificatePem: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
  serverCommonName: z.string().min(1),
  serial: SerialHex,
  previousSerial: SerialHex.optional(),
  notAfter: IsoInstant,
});

/** Every event type with its current schema and version; the single source of truth. */
export const CURRENT_SCHEMAS = {
  GatewayInitialized: { version: 1, schema: GatewayInitializedV1 },
  ProfileIssued: { version: 2, schema: ProfileIssuedV2 },
  ProfileRenewed: { version: 1, schema: ProfileRenewedV1 },
  RenewalCertificateIssued: { version: 1, schema: RenewalCertificateIssuedV1 },
  ProfileRevoked: { version: 1, schema: ProfileRevokedV1 },
  ProfileResent: { version: 1, schema: ProfileResentV1 },
  ProfileDeliveryFailed: { version: 1, schema: ProfileDeliveryFailedV1 },
  RenewalFailed: { version: 1, schema: RenewalFailedV1 },
  AutoRenewEnabled: { version: 1, schema: AutoRenewToggledV1 },
  AutoRenewDisabled: { version: 1, schema: AutoRenewToggledV1 },
  NetworksDiscovered: { version: 1, schema: NetworksDiscoveredV1 },
  ServerCertificateRenewed: { version: 1, schema: ServerCertificateRenewedV1 },
} as const;

export type EventType = keyof typeof CURRENT_SCHEMAS;
export const EVENT_TYPES = Object.keys(CURRENT_SCHEMAS) as EventType[];

export type LedgerEvent = {
  [K in EventType]: { type: K; data: z.infer<(typeof CURRENT_SCHEMAS)[K]['schema']> };
}[EventType];

export type EventOf<T extends EventType> = Extract<LedgerEvent, { type: T }>;

/** Events of the gateway stream (the gateway's own settings and material), not of a profile. */
export const GATEWAY_EVENT_TYPES = ['GatewayInitialized', 'NetworksDiscovered', 'ServerCertificateRenewed'] as const;
export type GatewayEvent = Extract<LedgerEvent, { type: (typeof GATEWAY_EVENT_TYPES)[number] }>;
export const isGatewayEvent = <T extends { type: string }>(event: T): event is Extract<T, { type: GatewayEvent['type'] }> =>
  (GATEWAY_EVENT_TYPES as readonly string[]).includes(event.type);

export type ProfileEvent = Exclude<LedgerEvent, GatewayEvent>;

export const EventMetadata = z.object({
  /** Who did it: the operator behind sudo, else the user running the command. */
  actor: z.string().min(1),
  /** When it happened, from the (possibly overridden) clock. */
  at: IsoInstant,
  /** Which program wrote it, for support questions about old data. */
  tool: z.string().min(1),
});
export type EventMetadata = z.infer<typeof EventMetadata>;

/** An event as the domain sees it after parsing and upcasting. */
export type Envelope<E extends LedgerEvent = LedgerEvent> = E & {
  readonly metadata: EventMetadata;
  readonly streamId: string;
  readonly revision: bigint;
  readonly position: bigint;
};
