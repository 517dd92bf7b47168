// X.509 v2 CRL (RFC 5280 section 5) written directly as DER and signed with Node's crypto.
//
// Why not a library: node-forge cannot produce CRLs, and @peculiar/x509 is super-linear (a
// 100,000-entry CRL never finished). Why this shape: a revoked entry's DER never changes once
// written, so callers encode each entry once (encodeRevokedEntry), keep the bytes, and each new
// CRL is one linear pass that concatenates them into a single preallocated buffer and signs it.
//
// Two interoperability traps this file exists to avoid:
// - serials must be minimal INTEGERs, or OpenSSL 3 refuses the whole CRL (see der.ts);
// - the issuer Name is the CA certificate's subject copied byte for byte; re-encoding it (say,
//   PrintableString as UTF8String) would not be the Name the certificate carries.

import { createPrivateKey, sign, X509Certificate, type KeyObject } from 'node:crypto';
import {
  NULL,
  Tag,
  enumerated,
  explicit,
  headerLength,
  implicitPrimitive,
  integer,
  minimalSerialHex,
  octetString,
  oid,
  readCertificateFields,
  readCrlNumberFromDer,
  sequence,
  time,
  timeText,
  writeHeader,
} from './der.js';

export type CrlReason = 'unspecified' | 'keyCompromise' | 'affiliationChanged' | 'superseded' | 'cessationOfOperation';

export interface RevokedEntry {
  serialHex: string;
  revokedAt: Date;
  reason: CrlReason;
}

const REASON_CODES: Readonly<Record<CrlReason, number>> = {
  unspecified: 0,
  keyCompromise: 1,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
};

// crlEntryExtensions for each reason, built once: entries are encoded by the hundred thousand.
// RFC 5280 5.3.1 says the reasonCode 'unspecified' SHOULD be absent rather than present.
const REASON_EXTENSIONS: ReadonlyMap<CrlReason, Buffer> = new Map(
  (Object.entries(REASON_CODES) as [CrlReason, number][])
    .filter(([reason]) => reason !== 'unspecified')
    .map(([reason, code]) => [reason, sequence(sequence(oid('2.5.29.21'), octetString(enumerated(code))))]),
);

/** DER of one element of revokedCertificates (SEQUENCE { serial, revocationDate, [crlEntryExtensions with reasonCode when reason !== 'unspecified'] }). */
export function encodeRevokedEntry(entry: RevokedEntry): Buffer {
  if (!Object.hasOwn(REASON_CODES, entry.reason)) throw new Error(`unknown CRL reason ${JSON.stringify(entry.reason)}`);
  const serialHex = minimalSerialHex(entry.serialHex);
  const serialLength = serialHex.length / 2;
  const revocationDate = timeText(entry.revokedAt);
  const reasonExtension = REASON_EXTENSIONS.get(entry.reason);
  // Written straight into one buffer instead of nesting tlv() calls: this runs once per revoked
  // certificate, and per-field allocations made it the dominant cost for large CRLs.
  const contentLength =
    headerLength(serialLength) + serialLength + 2 + revocationDate.text.length + (reasonExtension?.length ?? 0);
  const out = Buffer.allocUnsafe(headerLength(contentLength) + contentLength);
  let at = writeHeader(out, 0, Tag.SEQUENCE, contentLength);
  at = writeHeader(out, at, Tag.INTEGER, serialLength);
  at += out.write(serialHex, at, 'hex');
  at = writeHeader(out, at, revocationDate.tag, revocationDate.text.length);
  at += out.write(revocationDate.text, at, 'latin1');
  if (reasonExtension !== undefined) at += reasonExtension.copy(out, at);
  if (at !== out.length) throw new Error(`internal error: revoked entry is ${at} bytes, expected ${out.length}`);
  return out;
}

export interface CrlIssuer {
  subjectDer: Buffer;
  subjectKeyIdentifier?: Buffer;
  privateKey: KeyObject;
}

export function issuerFromCertificate(caCertificatePem: string, caPrivateKeyPem: string): CrlIssuer {
  const certificate = new X509Certificate(caCertificatePem);
  const privateKey = createPrivateKey(caPrivateKeyPem);
  // A key/certificate mix-up would still produce a well-formed CRL that every verifier rejects,
  // silently leaving revoked users connected; fail here instead.
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new Error(`the CA private key does not belong to the CA certificate ${certificate.subject.replace(/\n/g, ', ')}`);
  }
  if (!certificate.ca) throw new Error('the certificate given as CRL issuer is not a CA certificate (basicConstraints CA:TRUE missing)');
  const { subjectDer, subjectKeyIdentifier } = readCertificateFields(certificate.raw);
  return subjectKeyIdentifier === undefined ? { subjectDer, privateKey } : { subjectDer, subjectKeyIdentifier, privateKey };
}

export interface CrlToSign {
  issuer: CrlIssuer;
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Outputs of encodeRevokedEntry, in order. */
  entries: Iterable<Buffer>;
}

interface SignatureScheme {
  readonly algorithmIdentifier: Buffer;
  /** Upper bound on crypto.sign's output, so the output buffer can be allocated before signing. */
  readonly maxSignatureLength: number;
}

function signatureScheme(privateKey: KeyObject): SignatureScheme {
  if (privateKey.type !== 'private') throw new Error(`a CRL must be signed with a private key, got a ${privateKey.type} key`);
  const details = privateKey.asymmetricKeyDetails ?? {};
  if (privateKey.asymmetricKeyType === 'rsa' && details.modulusLength !== undefined) {
    // sha256WithRSAEncryption; RFC 4055 requires the explicit NULL parameters.
    return { algorithmIdentifier: sequence(oid('1.2.840.113549.1.1.11'), NULL), maxSignatureLength: Math.ceil(details.modulusLength / 8) };
  }
  if (privateKey.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') {
    // ecdsa-with-SHA256 takes no parameters (RFC 5758). crypto.sign emits the DER
    // Ecdsa-Sig-Value X.509 wants; two 33-byte INTEGERs in a SEQUENCE is at most 72 bytes.
    return { algorithmIdentifier: sequence(oid('1.2.840.10045.4.3.2')), maxSignatureLength: 72 };
  }
  throw new Error(
    `unsupported CA key: ${privateKey.asymmetricKeyType ?? 'unknown'}${details.namedCurve ? ` ${details.namedCurve}` : ''} (RSA or ECDSA P-256 expected)`,
  );
}

const OID_AUTHORITY_KEY_IDENTIFIER = oid('2.5.29.35');
const OID_CRL_NUMBER = oid('2.5.29.20');
const VERSION_2 = integer(1n);
// RFC 5280 5.2.3: a CRL number is at most 20 octets.
const MAX_CRL_NUMBER = (1n << 159n) - 1n;

function crlExtensions(issuer: CrlIssuer, crlNumber: bigint): Buffer {
  const extensions: Buffer[] = [];
  // Without an SKI on the CA there is no identifier a verifier could match a keyid against,
  // so the extension is left out rather than filled with a made-up value.
  if (issuer.subjectKeyIdentifier !== undefined) {
    const authorityKeyIdentifier = sequence(implicitPrimitive(0, issuer.subjectKeyIdentifier));
    extensions.push(sequence(OID_AUTHORITY_KEY_IDENTIFIER, octetString(authorityKeyIdentifier)));
  }
  extensions.push(sequence(OID_CRL_NUMBER, octetString(integer(crlNumber))));
  return explicit(0, sequence(...extensions));
}

/** Version 2 CRL, sha256WithRSAEncryption (RSA keys) or ecdsa-with-SHA256 (P-256 keys), extensions: cRLNumber and authorityKeyIdentifier (keyIdentifier from the CA's SKI when present). Omits revokedCertificates entirely when there are no entries (an empty SEQUENCE is not allowed). Returns DER. Linear in the number of entries. */
export function signCrl(crl: CrlToSign): Buffer {
  const { issuer, crlNumber, thisUpdate, nextUpdate } = crl;
  if (crlNumber < 0n || crlNumber > MAX_CRL_NUMBER) throw new Error(`CRL number ${crlNumber} is outside 0..2^159-1 (RFC 5280 allows at most 20 octets)`);
  if (!(nextUpdate.getTime() > thisUpdate.getTime())) throw new Error('nextUpdate must be later than thisUpdate');
  const scheme = signatureScheme(issuer.privateKey);

  // TBSCertList fields before and after revokedCertificates; both are small.
  const head = [VERSION_2, scheme.algorithmIdentifier, issuer.subjectDer, time(thisUpdate), time(nextUpdate)];
  const tail = crlExtensions(issuer, crlNumber);

  // The single pass over the entries: only references and a running length.
  const entries: Buffer[] = [];
  let revokedLength = 0;
  for (const entry of crl.entries) {
    if (entry[0] !== Tag.SEQUENCE) throw new Error(`revoked entry #${entries.length} is not a DER SEQUENCE; pass outputs of encodeRevokedEntry`);
    entries.push(entry);
    revokedLength += entry.length;
  }

  let tbsContentLength = tail.length;
  for (const part of head) tbsContentLength += part.length;
  if (entries.length > 0) tbsContentLength += headerLength(revokedLength) + revokedLength;
  const tbsLength = headerLength(tbsContentLength) + tbsContentLength;
  const maxBitStringLength = headerLength(1 + scheme.maxSignatureLength) + 1 + scheme.maxSignatureLength;
  const maxOuterContentLength = tbsLength + scheme.algorithmIdentifier.length + maxBitStringLength;

  // One buffer for the whole CRL. The outer SEQUENCE header goes in front of the TBS, but its
  // length is only known after signing (ECDSA signatures vary in size), so room for the longest
  // possible header is reserved and the result starts wherever the real header ends up.
  const reserved = headerLength(maxOuterContentLength);
  const out = Buffer.alloc(reserved + maxOuterContentLength);
  const tbsStart = reserved;
  let at = writeHeader(out, tbsStart, Tag.SEQUENCE, tbsContentLength);
  for (const part of head) at += part.copy(out, at);
  if (entries.length > 0) {
    at = writeHeader(out, at, Tag.SEQUENCE, revokedLength);
    for (const entry of entries) at += entry.copy(out, at);
  }
  at += tail.copy(out, at);
  if (at !== tbsStart + tbsLength) throw new Error(`internal error: TBSCertList is ${at - tbsStart} bytes, expected ${tbsLength}`);

  const signature = sign('sha256', out.subarray(tbsStart, at), issuer.privateKey);
  if (signature.length > scheme.maxSignatureLength) throw new Error(`internal error: ${signature.length}-byte signature exceeds the reserved ${scheme.maxSignatureLength}`);
  at += scheme.algorithmIdentifier.copy(out, at);
  at = writeHeader(out, at, Tag.BIT_STRING, 1 + signature.length);
  out[at++] = 0; // no unused bits
  at += signature.copy(out, at);

  const outerContentLength = at - tbsStart;
  const start = tbsStart - headerLength(outerContentLength);
  writeHeader(out, start, Tag.SEQUENCE, outerContentLength);
  return out.subarray(start, at);
}

export function crlDerToPem(der: Buffer): string {
  const base64 = der.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  return `-----BEGIN X509 CRL-----\n${lines.join('\n')}\n-----END X509 CRL-----\n`;
}

const PEM_CRL = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/;

/** The cRLNumber of an existing CRL (PEM or DER), or undefined when absent/unparseable. */
export function readCrlNumber(crl: Buffer | string): bigint | undefined {
  try {
    let der: Buffer;
    if (typeof crl === 'string' || crl[0] !== Tag.SEQUENCE) {
      const match = PEM_CRL.exec(typeof crl === 'string' ? crl : crl.toString('latin1'));
      if (match?.[1] === undefined) return undefined;
      der = Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
    } else {
      der = crl;
    }
    return readCrlNumberFromDer(der);
  } catch {
    return undefined;
  }
}
