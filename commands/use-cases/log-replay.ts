// Replays a whole event log, in global order, the way ov_backup exports it and ov_restore reads it
// back: every event is upcast and checked (positions increase, each stream's revisions run from 0
// without a gap, each event follows from the state before it), and what a backup must hold and a
// restore must reproduce falls out of it: the certificates still needed, the CRL's serials, the
// summary both commands print.
import { createHash } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { ContentSummary } from '../../adapters/archive/backup-archive.js';
import { isGatewayEvent, type Envelope, type GatewayEvent, type ProfileEvent } from '../../domain/events.js';
import { historyViolation } from '../../domain/history-check.js';
import { evolve, initialState, type ProfileState } from '../../domain/profile-decider.js';
import { decodeStoredEvent, describeDecodeError, type StoredEventLike } from '../../domain/upcasters.js';
import type { Traffic } from '../../domain/values.js';
import { evolveGateway, type GatewayRow } from '../../projections/gateway.js';
import { GATEWAY_STREAM } from './profile-stream.js';

export class HistoryError extends Error {
  override readonly name = 'HistoryError';
}

/** The gateway as its stream says so far (the gateway projection's row: CA, current server certificate, …). */
export type GatewayData = GatewayRow;

export interface CertificateFact {
  readonly serial: string;
  readonly streamId: string;
  readonly profileId: string;
  readonly pem: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

export interface NeededCertificate {
  readonly serial: string;
  readonly profileId: string;
  readonly email: string;
  readonly traffic: Traffic;
  /** The current certificate of an active profile: its key and profile must be in a backup. */
  readonly required: boolean;
}

interface StreamFacts {
  revision: bigint;
  state: ProfileState;
  profileId: string;
  email: string;
  traffic: Traffic;
  renewals: number;
  abandoned: Set<string> | undefined;
}

const PROFILE_STREAM = /^profile-p[0-9a-f]{24}$/;

export class LogReplay {
  count = 0;
  lastPosition = 0n;
  revocations = 0;
  gateway: GatewayData | undefined;
  private gatewayRevision = -1n;
  private readonly streams = new Map<string, StreamFacts>();
  private readonly serials = new Map<string, string>();
  private readonly revoked = new Set<string>();

  constructor(
    /** Called for every certificate the log introduces (issue and renewal), with the CA current then. */
    private readonly onCertificate?: (certificate: CertificateFact, gateway: GatewayData) => void,
  ) {}

  /** Applies one stored event; throws HistoryError saying where and why when it cannot follow. */
  add(stored: StoredEventLike): Envelope {
    // The place is spelled out only when something fails: a million events are replayed.
    const fail = (why: string): never => {
      throw new HistoryError(`event at position ${stored.position} (stream ${stored.streamId}, revision ${stored.revision}): ${why}`);
    };
    if (stored.position <= this.lastPosition) fail(`positions must increase, and the previous event is at ${this.lastPosition}`);
    const decoded = decodeStoredEvent(stored);
    if (E.isLeft(decoded)) return fail(describeDecodeError(decoded.left));
    const event = decoded.right;

    if (stored.streamId === GATEWAY_STREAM) {
      if (!isGatewayEvent(event)) fail(`${event.type} in the gateway stream`);
      if (stored.revision !== this.gatewayRevision + 1n) fail(`expected revision ${this.gatewayRevision + 1n} of the gateway stream`);
      if (!this.gateway && event.type !== 'GatewayInitialized') fail(`${event.type} before GatewayInitialized`);
      this.gatewayRevision = stored.revision;
      this.gateway = evolveGateway(this.gateway, event as Envelope<GatewayEvent>);
    } else {
      // The name is checked when a stream first appears: a known one passed already.
      if (!this.streams.has(stored.streamId) && !PROFILE_STREAM.test(stored.streamId)) fail('not a stream this ledger writes');
      if (isGatewayEvent(event)) fail(`${event.type} outside the gateway stream`);
      if (!this.gateway) fail('a profile event before the gateway was initialised');
      this.applyProfileEvent(stored.streamId, stored.revision, event as Envelope<ProfileEvent>, fail);
    }
    this.lastPosition = stored.position;
    this.count++;
    return event;
  }

  private applyProfileEvent(streamId: string, revision: bigint, event: Envelope<ProfileEvent>, fail: (why: string) => never): void {
    const facts = this.streams.get(streamId);
    const expected = facts ? facts.revision + 1n : 0n;
    if (revision !== expected) fail(`expected revision ${expected} of this stream (revisions start at 0 and have no gaps)`);
    const state = facts?.state ?? initialState();
    const violation = historyViolation(state, event, streamId);
    if (violation) fail(violation);

    let next: StreamFacts;
    if (event.type === 'ProfileIssued') {
      const d = event.data;
      if (facts && (facts.email !== d.email || facts.traffic !== d.traffic)) fail('ProfileIssued for another (email, traffic) pair than this stream');
      next = facts ?? { revision, state, profileId: d.profileId, email: d.email, traffic: d.traffic, renewals: 0, abandoned: undefined };
      this.introduce(streamId, d.profileId, d.certificate, fail);
    } else {
      next = facts!;
      const active = state.status === 'active';
      if (event.type === 'RenewalCertificateIssued') this.introduce(streamId, next.profileId, event.data.certificate, fail);
      if (event.type === 'ProfileRenewed') next.renewals++;
      if (event.type === 'RenewalFailed' && active && event.data.abandonedSerial !== undefined) {
        (next.abandoned ??= new Set()).add(event.data.abandonedSerial);
      }
      if (event.type === 'ProfileRevoked') {
        this.revocations++;
        for (const serial of event.data.serials) this.revoked.add(serial);
      }
    }
    next.revision = revision;
    next.state = evolve(state, event);
    this.streams.set(streamId, next);
  }

  private introduce(streamId: string, profileId: string, c: { serial: string; pem: string; notBefore: string; notAfter: string }, fail: (why: string) => never): void {
    if (this.serials.has(c.serial)) fail(`certificate serial ${c.serial} was already issued (in ${this.serials.get(c.serial)})`);
    this.serials.set(c.serial, streamId);
    this.onCertificate?.({ serial: c.serial, streamId, profileId, pem: c.pem, notBefore: c.notBefore, notAfter: c.notAfter }, this.gateway!);
  }

  /** Every (email, traffic) pair with the profile id its stream was keyed by. */
  *pairs(): IterableIterator<{ readonly email: string; readonly traffic: Traffic; readonly profileId: string }> {
    for (const s of this.streams.values()) yield { email: s.email, traffic: s.traffic, profileId: s.profileId };
  }

  /** The stream a serial was issued in, if any. */
  streamOfSerial(serial: string): string | undefined {
    return this.serials.get(serial);
  }

  /**
   * Certificates that can still connect at `asOf` (not revoked, not expired, not an abandoned
   * renewal): their private keys and profiles are what a backup must carry.
   */
  neededCertificates(asOf: string): NeededCertificate[] {
    const out: NeededCertificate[] = [];
    for (const s of this.streams.values()) {
      if (s.state.status !== 'active') continue;
      const p = s.state.profile;
      for (const c of p.certificates) {
        if (c.notAfter < asOf || s.abandoned?.has(c.serial) || this.revoked.has(c.serial)) continue;
        out.push({ serial: c.serial, profileId: p.profileId, email: p.email, traffic: p.traffic, required: c.serial === p.currentSerial });
      }
    }
    return out.sort((a, b) => (a.profileId === b.profileId ? cmp(a.serial, b.serial) : cmp(a.profileId, b.profileId)));
  }

  /** Serials on the CRL, sorted. */
  revokedSerials(): string[] {
    return [...this.revoked].sort(cmp);
  }

  summary(): ContentSummary {
    if (!this.gateway) throw new HistoryError('the log has no GatewayInitialized event: there is no gateway to restore');
    const users = { all: { active: 0, revoked: 0 }, partial: { active: 0, revoked: 0 } };
    let renewed = 0;
    let renewals = 0;
    for (const s of this.streams.values()) {
      if (s.state.status === 'never-issued') continue;
      users[s.traffic][s.state.status === 'active' ? 'active' : 'revoked']++;
      if (s.renewals > 0) renewed++;
      renewals += s.renewals;
    }
    const serials = this.revokedSerials();
    const g = this.gateway;
    return {
      gateway: `${g.publicHost}:${g.port}/${g.proto}`,
      users,
      renewed,
      renewals,
      crl: { serials: serials.length, sha256: serialDigest(serials) },
      caFingerprint: certificateFingerprint(g.caCertificatePem),
      events: this.count,
    };
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** SHA-256 of the sorted serials, one per line (each followed by a newline): diffable, order-free. */
export function serialDigest(sortedSerials: readonly string[]): string {
  const hash = createHash('sha256');
  for (const s of sortedSerials) hash.update(`${s}\n`);
  return hash.digest('hex');
}

/** SHA-256 of a certificate's DER, as `openssl x509 -fingerprint -sha256` prints it. */
export function certificateFingerprint(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

export interface SummaryHeader {
  readonly hostname: string;
  readonly createdAt: string;
  readonly formatVersion: string;
  readonly ledgerVersion: string;
  readonly lastPosition: bigint;
}

/**
 * The summary block ov_backup and ov_restore both print, line for line the same for the same
 * archive, so `diff` between the two outputs' blocks is empty when nothing was lost.
 */
export function renderSummary(header: SummaryHeader, s: ContentSummary, archive: { size: number; sha256: string }): string {
  const users = (t: 'all' | 'partial') => `${s.users[t].active} active, ${s.users[t].revoked} revoked`;
  const active = s.users.all.active + s.users.partial.active;
  const revoked = s.users.all.revoked + s.users.partial.revoked;
  return [
    'Summary',
    `  host:             ${header.hostname}`,
    `  taken:            ${header.createdAt}`,
    `  format:           ${header.formatVersion} (written by ovpn-ledger ${header.ledgerVersion})`,
    `  gateway:          ${s.gateway}`,
    `  users (all):      ${users('all')}`,
    `  users (partial):  ${users('partial')}`,
    `  profiles:         ${active} active, ${revoked} revoked, ${s.renewed} renewed (${s.renewals} renewal${s.renewals === 1 ? '' : 's'})`,
    `  CRL:              ${s.crl.serials} revoked serial${s.crl.serials === 1 ? '' : 's'}, SHA-256 of the sorted serials ${s.crl.sha256}`,
    `  CA fingerprint:   ${s.caFingerprint}`,
    `  events:           ${s.events} (last position ${header.lastPosition})`,
    `  archive:          ${archive.size} bytes, SHA-256 ${archive.sha256}`,
  ].join('\n');
}

