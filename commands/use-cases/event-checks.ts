// The events half of ov_restore's checks, the same in whichever thread runs it: every line of
// events.ndjson read as the archive's format says (EventLineParser), every event upcast and
// replayed against the rules (LogReplay), every certificate the log introduces checked against
// what the event records and against the CA of its time. When a staging store is given, every
// event that passed goes into it as well, decoded once for both.
//
// What the checks of the other members (keys, profiles) need comes out as EventFacts: plain data,
// so that it can cross from the worker thread that reads the events to the main thread that reads
// the rest of the archive.
import { hash, X509Certificate, type KeyObject } from 'node:crypto';
import type { ArchivedEvent, ContentSummary } from '../../adapters/archive/backup-archive.js';
import { EventLineParser } from '../../adapters/archive/backup-archive.js';
import { certificateFacts, type RsaPublic } from '../../adapters/archive/certificate-facts.js';
import { SignatureThread } from '../../adapters/archive/signature-thread.js';
import type { Envelope } from '../../domain/events.js';
import { CURRENT_SCHEMAS, type EventType } from '../../domain/events.js';
import type { Traffic } from '../../domain/values.js';
import { HistoryError, LogReplay, type CertificateFact, type GatewayData, type NeededCertificate } from './log-replay.js';

const sha256 = (data: Buffer | string): string => hash('sha256', data);
const stripZeros = (hex: string) => hex.toLowerCase().replace(/^0+(?=.)/, '');

/** Identifies a public key: RSA by modulus and exponent, anything else by its SPKI. */
export const rsaKeyId = (r: RsaPublic): string => `rsa:${sha256(`${r.n}:${r.e}`)}`;
const hexOf = (base64url: string | undefined): string =>
  Buffer.from(base64url ?? '', 'base64url').toString('hex').replace(/^(00)+(?=.)/, '').replace(/^0(?=.)/, '');

export function publicKeyId(key: KeyObject): string {
  if (key.asymmetricKeyType === 'rsa') {
    const jwk = key.export({ format: 'jwk' });
    return rsaKeyId({ n: hexOf(jwk.n), e: hexOf(jwk.e) });
  }
  return `spki:${sha256(key.export({ type: 'spki', format: 'der' }))}`;
}

/** What a certificate of the log is, for the keys and profiles that must match it. */
export interface CertificateRecord {
  readonly keyId: string;
  readonly pemSha256: string;
  readonly profileId: string;
}

/** The log as replayed, for the checks of the other members and for the summary. */
export interface EventFacts {
  readonly count: number;
  readonly lastPosition: bigint;
  /** ProfileRevoked events: each published a CRL (the 1.0 format recorded no CRL number). */
  readonly revocations: number;
  /** Events stored at an older schema version, read through the upcasters. */
  readonly upcast: number;
  readonly gateway: GatewayData | undefined;
  /** Undefined when the log has no gateway. */
  readonly summary: ContentSummary | undefined;
  /** Certificates that could still connect when the backup was taken. */
  readonly needed: readonly NeededCertificate[];
  /** The records of the needed certificates. */
  readonly certificates: ReadonlyMap<string, CertificateRecord>;
  /** Every (email, traffic) pair with the profile id its stream was keyed by. */
  readonly pairs: readonly { readonly email: string; readonly traffic: Traffic; readonly profileId: string }[];
}

/** A certificate whose signature is being checked in the signature thread; false or an error when it failed. */
interface PendingSignature {
  readonly serial: string;
  readonly result: Promise<boolean | Error>;
}

/** Signature checks in flight at most; beyond that the reading waits for the older half. */
const MAX_PENDING_SIGNATURES = 256;

/** Replays events one by one and checks the certificates they introduce. */
export class EventChecker {
  readonly replay: LogReplay;
  upcast = 0;
  // Per certificate only digests (of its public key and its PEM), so a 100,000-profile log stays small.
  private readonly certificates = new Map<string, CertificateRecord>();
  private readonly caKeys = new Map<string, KeyObject>();
  /** In log order; `pendingHead` is the oldest not yet looked at. */
  private pending: PendingSignature[] = [];
  private pendingHead = 0;
  private readonly signatures = new SignatureThread();

  constructor() {
    this.replay = new LogReplay((c, gateway) => this.checkCertificate(c, gateway));
  }

  /** Applies one event; returns it decoded (upcast), or throws HistoryError saying where and why it cannot follow. */
  add(e: ArchivedEvent): Envelope {
    const decoded = this.replay.add(e);
    const current = CURRENT_SCHEMAS[e.type as EventType];
    if (current && e.schemaVersion < current.version) this.upcast++;
    return decoded;
  }

  /** A promise when too many signature checks are in flight: the next event should wait for it. */
  backlog(): Promise<void> | undefined {
    if (this.pending.length - this.pendingHead < MAX_PENDING_SIGNATURES) return undefined;
    return this.settle(MAX_PENDING_SIGNATURES / 2);
  }

  /** Waits for every signature check of the events so far; rejects with the first failure. */
  drain(): Promise<void> {
    return this.settle(0);
  }

  /** Stops the signature thread (after the last drain, or when giving up). */
  close(): Promise<void> {
    return this.signatures.close();
  }

  /** After the last event (and drain): what the other members are checked against, at `asOf` (when the backup was taken). */
  facts(asOf: string): EventFacts {
    const replay = this.replay;
    const needed = replay.gateway ? replay.neededCertificates(asOf) : [];
    const certificates = new Map<string, CertificateRecord>();
    for (const n of needed) {
      const record = this.certificates.get(n.serial);
      if (record) certificates.set(n.serial, record);
    }
    return {
      count: replay.count,
      lastPosition: replay.lastPosition,
      revocations: replay.revocations,
      upcast: this.upcast,
      gateway: replay.gateway,
      summary: replay.gateway ? replay.summary() : undefined,
      needed,
      certificates,
      pairs: [...replay.pairs()],
    };
  }

  /**
   * Waits until at most `keep` signature checks are still running. The first one that failed
   * (oldest first, as the events came) is thrown as a synchronous check would have thrown it.
   */
  private async settle(keep: number): Promise<void> {
    // The oldest may still be in the batch being gathered.
    if (this.pending.length - this.pendingHead > keep) this.signatures.flush();
    while (this.pending.length - this.pendingHead > keep) {
      const { serial, result } = this.pending[this.pendingHead]!;
      const ok = await result;
      this.pendingHead++;
      if (ok instanceof Error) throw ok;
      if (!ok) throw new HistoryError(`the certificate of serial ${serial} is not signed by the gateway's CA`);
    }
    if (this.pendingHead > 4096) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
  }

  private caKey(pem: string): KeyObject {
    let key = this.caKeys.get(pem);
    if (!key) {
      key = new X509Certificate(pem).publicKey;
      this.caKeys.set(pem, key);
    }
    return key;
  }

  private checkCertificate(c: CertificateFact, gateway: GatewayData): void {
    const fail = (why: string): never => {
      throw new HistoryError(`the certificate of serial ${c.serial} ${why}`);
    };
    const ca = this.caKey(gateway.caCertificatePem);
    // The fast reader covers what certificates.ts issues; anything else goes through OpenSSL.
    const facts = certificateFacts(c.pem);
    let keyId: string;
    if (facts) {
      if (stripZeros(facts.serial) !== stripZeros(c.serial)) fail(`has serial ${facts.serial} inside`);
      const wrong =
        facts.commonName !== c.profileId
          ? `is for ${facts.commonName ?? 'no common name'}, not profile ${c.profileId}`
          : facts.isCa
            ? 'is a CA certificate'
            : facts.notAfter.toISOString() !== c.notAfter
              ? `expires at ${facts.notAfter.toISOString()}, not ${c.notAfter} as recorded`
              : undefined;
      if (wrong !== undefined) {
        // A certificate that fails here is named for its signature first, as it always was.
        if (!facts.signedBy(ca)) fail("is not signed by the gateway's CA");
        fail(wrong);
      }
      // The signature is checked in the signature thread; settle() reports a failure in log order.
      this.pending.push({ serial: c.serial, result: this.signatures.check(facts.tbs, facts.signature, ca) });
      keyId = facts.rsa ? rsaKeyId(facts.rsa) : publicKeyId(new X509Certificate(c.pem).publicKey);
    } else {
      let x: X509Certificate;
      try {
        x = new X509Certificate(c.pem);
      } catch {
        return fail('in the event log does not parse');
      }
      if (stripZeros(x.serialNumber) !== stripZeros(c.serial)) fail(`has serial ${x.serialNumber.toLowerCase()} inside`);
      if (!x.verify(ca)) fail("is not signed by the gateway's CA");
      if (x.subject !== `CN=${c.profileId}`) fail(`is for ${x.subject.replace(/\n/g, ', ')}, not profile ${c.profileId}`);
      if (x.ca) fail('is a CA certificate');
      if (new Date(x.validTo).toISOString() !== c.notAfter) fail(`expires at ${x.validTo}, not ${c.notAfter} as recorded`);
      keyId = publicKeyId(x.publicKey);
    }
    this.certificates.set(c.serial, { keyId, pemSha256: sha256(c.pem.trim()), profileId: c.profileId });
  }
}

/** Where the events go once checked (the staging store's loader), if anywhere. */
export interface EventSink {
  add(e: ArchivedEvent, decoded: Envelope): void;
}

/**
 * events.ndjson's bytes, as they come, read and checked line by line, and handed on to `sink`.
 * The first problem stops the reading; it is what `facts()` rejects with.
 */
export class EventStage {
  private readonly parser: EventLineParser;
  private readonly checker = new EventChecker();
  private problem: unknown;

  constructor(
    formatVersion: string,
    private readonly sink: EventSink | undefined,
    private readonly onCount: ((count: number) => void) | undefined,
  ) {
    this.parser = new EventLineParser(formatVersion);
  }

  /** The next bytes; a promise when the caller must wait before handing over more. */
  bytes(chunk: Buffer): Promise<void> | undefined {
    if (this.problem !== undefined) return undefined;
    const events: ArchivedEvent[] = [];
    let lineProblem: unknown;
    try {
      this.parser.push(chunk, (e) => events.push(e));
    } catch (error) {
      lineProblem = error;
    }
    return this.visit(events, 0, lineProblem);
  }

  private visit(events: readonly ArchivedEvent[], from: number, lineProblem: unknown): Promise<void> | undefined {
    for (let i = from; i < events.length; i++) {
      const e = events[i]!;
      let decoded: Envelope;
      try {
        decoded = this.checker.add(e);
      } catch (error) {
        return this.stop(error);
      }
      this.sink?.add(e, decoded);
      const count = this.checker.replay.count;
      if (count % 50_000 === 0) this.onCount?.(count);
      const waiting = this.checker.backlog();
      if (waiting) return waiting.then(() => this.visit(events, i + 1, lineProblem), (error: unknown) => void (this.problem ??= error));
    }
    return lineProblem === undefined ? undefined : this.stop(lineProblem);
  }

  /** The first problem, unless a signature check of an earlier event failed: that one comes first. */
  private async stop(problem: unknown): Promise<void> {
    try {
      await this.checker.drain();
      this.problem ??= problem;
    } catch (earlier) {
      this.problem ??= earlier;
    }
  }

  /** Gives up: stops the signature thread. */
  close(): Promise<void> {
    return this.checker.close();
  }

  /** After the last byte: every signature check waited for; the facts, or the first problem thrown. */
  async facts(asOf: string): Promise<EventFacts> {
    try {
      return await this.verdict(asOf);
    } finally {
      await this.checker.close();
    }
  }

  private async verdict(asOf: string): Promise<EventFacts> {
    if (this.problem === undefined) {
      try {
        this.parser.end();
      } catch (error) {
        await this.stop(error);
      }
    }
    if (this.problem === undefined) {
      try {
        await this.checker.drain();
      } catch (error) {
        this.problem = error;
      }
    }
    if (this.problem !== undefined) throw this.problem;
    this.onCount?.(this.checker.replay.count);
    return this.checker.facts(asOf);
  }
}
