// Old event shapes and the pure functions that lift them one version at a time, so that events
// written by any earlier release still read as today's. Adding a version means: bump it in
// CURRENT_SCHEMAS, move the old schema here, add one upcaster from it, add one fixture.
import * as E from 'fp-ts/lib/Either.js';
import { z } from 'zod';
import { CURRENT_SCHEMAS, EventMetadata, type Envelope, type EventType, type LedgerEvent, IssuedCertificate, Cidr } from './events.js';
import { CalendarDate, Email, PersonName, Reason, Traffic } from './values.js';

/**
 * ProfileIssued as release 1.0 wrote it: no auto-renew yet, the name as one object and the
 * expiration under `expires`, the reason under `creationReason`.
 */
export const ProfileIssuedV1 = z.object({
  profileId: z.string().regex(/^p[0-9a-f]{24}$/),
  generation: z.number().int().min(1),
  email: Email,
  traffic: Traffic,
  name: z.object({ first: PersonName, last: PersonName }),
  expires: CalendarDate,
  creationReason: Reason,
  certificate: IssuedCertificate,
  routes: z.array(Cidr),
});

export interface Upcaster {
  readonly type: EventType;
  readonly from: number;
  readonly schema: z.ZodType;
  readonly up: (data: never) => unknown;
}

function upcaster<S extends z.ZodType>(type: EventType, from: number, schema: S, up: (data: z.infer<S>) => unknown): Upcaster {
  return { type, from, schema, up: up as (data: never) => unknown };
}

export const UPCASTERS: readonly Upcaster[] = [
  upcaster('ProfileIssued', 1, ProfileIssuedV1, (v1) => ({
    profileId: v1.profileId,
    generation: v1.generation,
    email: v1.email,
    traffic: v1.traffic,
    firstName: v1.name.first,
    lastName: v1.name.last,
    expirationDate: v1.expires,
    reason: v1.creationReason,
    // 1.0 had no auto-renewal: every profile it issued renews by hand.
    autoRenew: false,
    certificate: v1.certificate,
    routes: v1.routes,
  })),
];

/** Start-up check: every type reaches its current version from 1 with no gap and no duplicate. */
export function verifyUpcasterChain(upcasters: readonly Upcaster[] = UPCASTERS): E.Either<string, true> {
  for (const [type, { version }] of Object.entries(CURRENT_SCHEMAS)) {
    for (let v = 1; v < version; v++) {
      const found = upcasters.filter((u) => u.type === type && u.from === v);
      if (found.length !== 1) {
        return E.left(`${type}: ${found.length === 0 ? 'no' : 'more than one'} upcaster from version ${v} to ${v + 1}`);
      }
    }
    const beyond = upcasters.find((u) => u.type === type && u.from >= version);
    if (beyond) return E.left(`${type}: upcaster from version ${beyond.from} but the current version is ${version}`);
  }
  for (const u of upcasters) {
    if (!(u.type in CURRENT_SCHEMAS)) return E.left(`upcaster for unknown event type ${u.type}`);
  }
  return E.right(true);
}

export type DecodeError =
  | { kind: 'UnknownEventType'; type: string }
  | { kind: 'NewerSchemaVersion'; type: string; version: number; supported: number }
  | { kind: 'InvalidEventData'; type: string; version: number; issues: string }
  | { kind: 'InvalidMetadata'; issues: string };

export function describeDecodeError(e: DecodeError): string {
  switch (e.kind) {
    case 'UnknownEventType':
      return `unknown event type ${JSON.stringify(e.type)}`;
    case 'NewerSchemaVersion':
      return `${e.type} version ${e.version} is newer than this ovpn-ledger understands (up to ${e.supported}); upgrade ovpn-ledger`;
    case 'InvalidEventData':
      return `${e.type} version ${e.version} does not match its schema: ${e.issues}`;
    case 'InvalidMetadata':
      return `event metadata does not match its schema: ${e.issues}`;
  }
}

function issuesOf(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
}

/** Parses stored data of any known version into today's event, through the upcaster chain. */
export function decodeEventData(type: string, version: number, data: unknown): E.Either<DecodeError, LedgerEvent> {
  if (!(type in CURRENT_SCHEMAS)) return E.left({ kind: 'UnknownEventType', type });
  const t = type as EventType;
  const current = CURRENT_SCHEMAS[t];
  if (!Number.isInteger(version) || version < 1) {
    return E.left({ kind: 'InvalidEventData', type, version, issues: 'schema version must be a positive integer' });
  }
  if (version > current.version) {
    return E.left({ kind: 'NewerSchemaVersion', type, version, supported: current.version });
  }
  let value = data;
  for (let v = version; v < current.version; v++) {
    const step = UPCASTERS.find((u) => u.type === t && u.from === v);
    if (!step) return E.left({ kind: 'InvalidEventData', type, version, issues: `no upcaster from version ${v}` });
    const parsed = step.schema.safeParse(value);
    if (!parsed.success) return E.left({ kind: 'InvalidEventData', type, version: v, issues: issuesOf(parsed.error) });
    value = step.up(parsed.data as never);
  }
  const parsed = current.schema.safeParse(value);
  if (!parsed.success) {
    return E.left({ kind: 'InvalidEventData', type, version: current.version, issues: issuesOf(parsed.error) });
  }
  return E.right({ type: t, data: parsed.data } as LedgerEvent);
}

export function decodeMetadata(metadata: unknown): E.Either<DecodeError, EventMetadata> {
  const parsed = EventMetadata.safeParse(metadata);
  return parsed.success ? E.right(parsed.data) : E.left({ kind: 'InvalidMetadata', issues: issuesOf(parsed.error) });
}

/** The stored shape of an event, as any event-store adapter returns it. */
export interface StoredEventLike {
  readonly streamId: string;
  readonly revision: bigint;
  readonly position: bigint;
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: unknown;
  readonly metadata: unknown;
}

/** A stored event, upcast and validated, with its place in the log. */
export function decodeStoredEvent(stored: StoredEventLike): E.Either<DecodeError, Envelope> {
  const event = decodeEventData(stored.type, stored.schemaVersion, stored.data);
  if (E.isLeft(event)) return event;
  const metadata = decodeMetadata(stored.metadata);
  if (E.isLeft(metadata)) return metadata;
  // Spelled out rather than `{ ...event.right, metadata, … }`: Node 20's V8 takes a slow path for
  // a spread followed by more properties (about 15 µs here), once per event of every replay.
  return E.right({
    type: event.right.type,
    data: event.right.data,
    metadata: metadata.right,
    streamId: stored.streamId,
    revision: stored.revision,
    position: stored.position,
  } as Envelope);
}
