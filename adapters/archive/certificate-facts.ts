// What a restore needs to know of each of up to 100,000 client certificates and keys, read straight
// from their DER: Node's X509Certificate and createPrivateKey go through OpenSSL 3's decoders at
// about half a millisecond and more than a millisecond apiece, which made key and chain checks the
// bulk of a large restore. Here a certificate is walked with the DER reader the CRL encoder uses,
// its signature is checked with one crypto.verify over the TBSCertificate, and an RSA key is
// matched to its certificate by modulus and public exponent.
//
// Anything this does not recognise (another signature algorithm, a non-RSA key) is reported as
// undefined, and the caller falls back to Node's full parsers.
import { verify, type KeyObject } from 'node:crypto';
import { children, decodeOid, readElement, Tag, type DerElement } from '../pki/der.js';

const OID_SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const OID_COMMON_NAME = '2.5.4.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';

/** The content octets of an OID in its DER (minimal) encoding. */
function oidContent(oid: string): Buffer {
  const arcs = oid.split('.').map(Number);
  const values = [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const value of values) {
    const groups = [value & 0x7f];
    for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) groups.unshift((rest & 0x7f) | 0x80);
    out.push(...groups);
  }
  return Buffer.from(out);
}

const OID_BYTES = new Map([OID_SHA256_WITH_RSA, OID_RSA_ENCRYPTION, OID_COMMON_NAME, OID_BASIC_CONSTRAINTS].map((oid) => [oid, oidContent(oid)]));

/**
 * Whether OID content octets name `oid`: a byte comparison with its DER encoding (a few dozen of
 * these per certificate, so no decoding to text), and only when that fails and the octets could be
 * a padded (non-minimal) spelling of it, the full decoding: the answer is decodeOid's either way.
 */
function isOid(content: Buffer, oid: string): boolean {
  const expected = OID_BYTES.get(oid)!;
  if (content.equals(expected)) return true;
  if (content.length === 0) throw new Error('DER: empty OID');
  return content.length > expected.length && content.includes(0x80) && decodeOid(content) === oid;
}

export interface CertificateFacts {
  /** Lower-case hex, without leading zero octets. */
  readonly serial: string;
  /** The subject's first common name, if any. */
  readonly commonName: string | undefined;
  readonly notAfter: Date;
  readonly isCa: boolean;
  /** Modulus and exponent, hex, when the key is RSA. */
  readonly rsa: RsaPublic | undefined;
  /** Checks the signature (SHA-256 over `tbs`) with the issuer's public key. */
  signedBy(issuerKey: KeyObject): boolean;
  /** The signed part (TBSCertificate) and the signature, for a check elsewhere (SignatureThread). */
  readonly tbs: Uint8Array;
  readonly signature: Uint8Array;
}

export interface RsaPublic {
  readonly n: string;
  readonly e: string;
}

function at(list: readonly DerElement[], index: number, tag: number, what: string): DerElement {
  const e = list[index];
  if (!e || e.tag !== tag) throw new Error(`DER: expected ${what}`);
  return e;
}

const PEM_BLOCKS = new Map<string, RegExp>();
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\u0000-\u007f]/;
/** A PEM body of base64 and ASCII white space only: what every PEM this project writes holds. */
const ASCII_BODY = /^[A-Za-z0-9+/=\t\n\v\f\r ]+$/;

/** DER of the first PEM block of `label` in `pem`. */
export function pemBody(pem: string, label: string): Buffer | undefined {
  // The common case first, without the general pattern (a restore reads 100,000 certificates and
  // as many keys, and the pattern with its capture took about 5 µs of each): when the text from
  // the first BEGIN marker to the first END marker after it is all base64 and ASCII white space,
  // that is the block the pattern finds too.
  const begin = `-----BEGIN ${label}-----`;
  const at = pem.indexOf(begin);
  if (at < 0) return undefined;
  const start = at + begin.length;
  const stop = pem.indexOf(`-----END ${label}-----`, start);
  if (stop > start) {
    const body = pem.slice(start, stop);
    if (ASCII_BODY.test(body)) return Buffer.from(body, 'base64');
  }
  let block = PEM_BLOCKS.get(label);
  if (!block) {
    block = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`);
    PEM_BLOCKS.set(label, block);
  }
  const body = block.exec(pem)?.[1];
  if (body === undefined) return undefined;
  // Node's base64 decoder skips ASCII white space (line breaks, tabs, spaces) itself; the rarer
  // Unicode white space the pattern also admits is removed first, as it always was.
  return Buffer.from(NON_ASCII.test(body) ? body.replace(/\s+/g, '') : body, 'base64');
}

const integerHex = (content: Buffer): string => content.toString('hex').replace(/^(00)+(?=.)/, '').replace(/^0(?=.)/, '');

function parseTime(e: DerElement): Date {
  const text = e.content.toString('latin1');
  const m = e.tag === Tag.UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) throw new Error('DER: a time that is not UTCTime or GeneralizedTime in Z');
  let year = Number(m[1]);
  if (e.tag === Tag.UTC_TIME) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

function rsaFromSpki(spki: DerElement): RsaPublic | undefined {
  const [algorithm, key] = children(spki);
  if (!algorithm || !key || key.tag !== Tag.BIT_STRING) return undefined;
  const oid = children(algorithm)[0];
  if (!oid || oid.tag !== Tag.OID || !isOid(oid.content, OID_RSA_ENCRYPTION)) return undefined;
  const rsa = readElement(key.content.subarray(1));
  const [n, e] = children(rsa);
  if (n?.tag !== Tag.INTEGER || e?.tag !== Tag.INTEGER) return undefined;
  return { n: integerHex(n.content), e: integerHex(e.content) };
}

/** Reads a PEM certificate; undefined when it is not one this reader handles (then use X509Certificate). */
export function certificateFacts(pem: string): CertificateFacts | undefined {
  try {
    const der = pemBody(pem, 'CERTIFICATE');
    if (!der) return undefined;
    const certificate = readElement(der);
    if (certificate.raw.length !== der.length) return undefined;
    const [tbs, signatureAlgorithm, signatureValue] = children(certificate);
    if (!tbs || !signatureAlgorithm || !signatureValue || signatureValue.tag !== Tag.BIT_STRING) return undefined;
    const algorithm = children(signatureAlgorithm)[0];
    if (!algorithm || !isOid(algorithm.content, OID_SHA256_WITH_RSA)) return undefined;
    const fields = children(tbs);
    const base = fields[0]?.tag === 0xa0 ? 1 : 0;
    const serial = at(fields, base, Tag.INTEGER, 'serialNumber');
    const validity = children(at(fields, base + 3, Tag.SEQUENCE, 'validity'));
    const subject = at(fields, base + 4, Tag.SEQUENCE, 'subject');
    const spki = at(fields, base + 5, Tag.SEQUENCE, 'subjectPublicKeyInfo');
    let commonName: string | undefined;
    for (const rdn of children(subject)) {
      for (const attribute of children(rdn)) {
        const [type, value] = children(attribute);
        if (commonName === undefined && type && value && isOid(type.content, OID_COMMON_NAME)) commonName = value.content.toString('utf8');
      }
    }
    let isCa = false;
    const extensions = fields.find((f) => f.tag === 0xa3);
    if (extensions) {
      for (const extension of children(children(extensions)[0]!)) {
        const parts = children(extension);
        if (parts[0] && isOid(parts[0].content, OID_BASIC_CONSTRAINTS)) {
          const value = readElement(parts[parts.length - 1]!.content);
          const first = children(value)[0];
          isCa = first?.tag === Tag.BOOLEAN && first.content[0] !== 0;
        }
      }
    }
    const notAfter = parseTime(at(validity, 1, validity[1]?.tag ?? -1, 'notAfter'));
    const tbsBytes = tbs.raw;
    const signature = signatureValue.content.subarray(1);
    return {
      serial: integerHex(serial.content),
      commonName,
      notAfter,
      isCa,
      rsa: rsaFromSpki(spki),
      signedBy: (issuerKey) => verify('sha256', tbsBytes, issuerKey, signature),
      tbs: tbsBytes,
      signature,
    };
  } catch {
    return undefined;
  }
}

/** Modulus and exponent of a PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") RSA key; undefined otherwise. */
export function rsaPrivateKeyPublic(pem: string): RsaPublic | undefined {
  try {
    let rsaKey: DerElement;
    const pkcs8 = pemBody(pem, 'PRIVATE KEY');
    if (pkcs8) {
      const [version, algorithm, key] = children(readElement(pkcs8));
      if (version?.tag !== Tag.INTEGER || !algorithm || key?.tag !== Tag.OCTET_STRING) return undefined;
      const oid = children(algorithm)[0];
      if (!oid || !isOid(oid.content, OID_RSA_ENCRYPTION)) return undefined;
      rsaKey = readElement(key.content);
    } else {
      const pkcs1 = pemBody(pem, 'RSA PRIVATE KEY');
      if (!pkcs1) return undefined;
      rsaKey = readElement(pkcs1);
    }
    const [, n, e] = children(rsaKey);
    if (n?.tag !== Tag.INTEGER || e?.tag !== Tag.INTEGER) return undefined;
    return { n: integerHex(n.content), e: integerHex(e.content) };
  } catch {
    return undefined;
  }
}
