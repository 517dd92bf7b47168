// Just enough DER (ITU-T X.690) to write a CRL and to read back the few fields we need from a
// CA certificate and from an existing CRL. Not a general ASN.1 library on purpose: every
// encoder here emits the single canonical DER form, and the reader only walks definite-length,
// low-tag-number TLVs, which is all DER allows.

export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
} as const;

// ---------------------------------------------------------------------------------------------
// Encoding

/** The length octets for a content of `length` bytes (short form below 128, else long form). */
export function encodeLength(length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0) throw new Error(`DER length out of range: ${length}`);
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Size of the tag plus length octets in front of a content of `contentLength` bytes. */
export function headerLength(contentLength: number): number {
  if (contentLength < 0x80) return 2;
  let n = 0;
  for (let rest = contentLength; rest > 0; rest = Math.floor(rest / 256)) n++;
  return 2 + n;
}

/** Writes tag and length at `offset` and returns the offset where the content starts. */
export function writeHeader(target: Buffer, offset: number, tag: number, contentLength: number): number {
  target[offset] = tag;
  // Short form inline: this runs several times per revoked entry.
  if (contentLength < 0x80) {
    target[offset + 1] = contentLength;
    return offset + 2;
  }
  const len = encodeLength(contentLength);
  len.copy(target, offset + 1);
  return offset + 1 + len.length;
}

/** One TLV whose content is the concatenation of `parts` (allocated once, copied once). */
export function tlv(tag: number, ...parts: readonly Buffer[]): Buffer {
  let contentLength = 0;
  for (const p of parts) contentLength += p.length;
  const out = Buffer.allocUnsafe(headerLength(contentLength) + contentLength);
  let at = writeHeader(out, 0, tag, contentLength);
  for (const p of parts) at += p.copy(out, at);
  return out;
}

export function sequence(...elements: readonly Buffer[]): Buffer {
  return tlv(Tag.SEQUENCE, ...elements);
}

/** Explicit context-specific constructed tag, e.g. `[0] EXPLICIT` for crlExtensions. */
export function explicit(tagNumber: number, ...elements: readonly Buffer[]): Buffer {
  if (!Number.isInteger(tagNumber) || tagNumber < 0 || tagNumber > 30) throw new Error(`context tag out of range: ${tagNumber}`);
  return tlv(0xa0 | tagNumber, ...elements);
}

/** Implicit context-specific primitive tag, e.g. AuthorityKeyIdentifier's `[0] KeyIdentifier`. */
export function implicitPrimitive(tagNumber: number, content: Buffer): Buffer {
  if (!Number.isInteger(tagNumber) || tagNumber < 0 || tagNumber > 30) throw new Error(`context tag out of range: ${tagNumber}`);
  return tlv(0x80 | tagNumber, content);
}

/** Minimal two's-complement content octets of a non-negative integer. */
function unsignedIntegerContent(value: bigint): Buffer {
  if (value < 0n) throw new Error(`only non-negative INTEGERs are supported, got ${value}`);
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  const magnitude = Buffer.from(hex, 'hex');
  // A set high bit would read back as negative, so positive values need one 0x00 in front.
  return (magnitude[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude;
}

/** INTEGER from a non-negative bigint (0 is allowed: a CRL number may be 0). */
export function integer(value: bigint): Buffer {
  return tlv(Tag.INTEGER, unsignedIntegerContent(value));
}

const HEX = /^[0-9a-fA-F]+$/;

/**
 * The content octets, as even-length hex, of the INTEGER for a certificate serial given as hex.
 * Validates so that a bad serial fails here with a reason rather than making OpenSSL reject the
 * whole CRL later. Returns a string rather than bytes so hot paths can write it straight into
 * their own buffer (Buffer#write with 'hex') without an intermediate allocation.
 *
 * Two spellings are accepted because both occur in practice: the magnitude ("8A01", as printed by
 * `openssl x509 -serial` and Node's X509Certificate) and the INTEGER's own content octets
 * ("008A01", as node-forge reports it). Both give "008A01", i.e. 02 03 00 8A 01.
 */
export function minimalSerialHex(serialHex: string): string {
  if (serialHex.length === 0 || !HEX.test(serialHex)) {
    throw new Error(`serial ${JSON.stringify(serialHex)} is not a hexadecimal string`);
  }
  const hex = serialHex.length % 2 === 1 ? `0${serialHex}` : serialHex;
  const first = parseInt(hex.slice(0, 2), 16);
  if (first === 0) {
    if (hex.length === 2) throw new Error(`serial ${serialHex} is zero; RFC 5280 requires a positive serial number`);
    if (parseInt(hex.slice(2, 4), 16) < 0x80) {
      throw new Error(
        `serial ${serialHex} is not minimal: a leading 00 is only allowed before a byte >= 0x80, ` +
          'and OpenSSL rejects a CRL containing a non-minimal INTEGER',
      );
    }
    return hex;
  }
  // A set high bit would read back as a negative number, so it needs one 0x00 in front.
  return first & 0x80 ? `00${hex}` : hex;
}

/** INTEGER from a hex serial; see minimalSerialHex for what is accepted and rejected. */
export function integerFromHexSerial(serialHex: string): Buffer {
  return tlv(Tag.INTEGER, Buffer.from(minimalSerialHex(serialHex), 'hex'));
}

export function enumerated(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`ENUMERATED must be a non-negative integer, got ${value}`);
  return tlv(Tag.ENUMERATED, unsignedIntegerContent(BigInt(value)));
}

export function octetString(content: Buffer): Buffer {
  return tlv(Tag.OCTET_STRING, content);
}

/** BIT STRING of whole bytes (signatures, keys), hence zero unused bits. */
export function bitString(content: Buffer): Buffer {
  return tlv(Tag.BIT_STRING, Buffer.from([0]), content);
}

export const NULL = Buffer.from([Tag.NULL, 0x00]);

/** OBJECT IDENTIFIER from dotted notation, e.g. "2.5.29.20". */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new Error(`bad OID ${dotted}`);
    return BigInt(a);
  });
  const [a0, a1, ...rest] = arcs;
  if (a0 === undefined || a1 === undefined || a0 > 2n || (a0 < 2n && a1 > 39n)) throw new Error(`bad OID ${dotted}`);
  const out: number[] = [];
  for (const arc of [a0 * 40n + a1, ...rest]) {
    const base128: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) base128.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...base128);
  }
  return tlv(Tag.OID, Buffer.from(out));
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/**
 * RFC 5280 Time as tag and ASCII text: UTCTime for years 1950-2049, GeneralizedTime otherwise,
 * always with seconds and 'Z' and never with fractions (DER would allow them, RFC 5280 does
 * not), so sub-second precision is dropped.
 */
export function timeText(date: Date): { tag: number; text: string } {
  if (Number.isNaN(date.getTime())) throw new Error('cannot encode an invalid Date');
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new Error(`year ${year} does not fit an X.509 time`);
  const rest =
    pad2(date.getUTCMonth() + 1) +
    pad2(date.getUTCDate()) +
    pad2(date.getUTCHours()) +
    pad2(date.getUTCMinutes()) +
    pad2(date.getUTCSeconds()) +
    'Z';
  return year >= 1950 && year <= 2049
    ? { tag: Tag.UTC_TIME, text: pad2(year % 100) + rest }
    : { tag: Tag.GENERALIZED_TIME, text: String(year).padStart(4, '0') + rest };
}

export function time(date: Date): Buffer {
  const { tag, text } = timeText(date);
  return tlv(tag, Buffer.from(text, 'latin1'));
}

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * One TLV located inside a buffer; `raw` spans tag to end of content, `content` just the value.
 * Kept as offsets into the buffer it was read from, `raw` and `content` cut out when first asked
 * for: a certificate has some fifty elements and its reader looks into a few, and Node's
 * Buffer#subarray costs about 0.2 µs (two per element were a third of reading a certificate).
 */
export class DerElement {
  private rawView: Buffer | undefined;
  private contentView: Buffer | undefined;

  constructor(
    readonly tag: number,
    private readonly buf: Buffer,
    private readonly start: number,
    private readonly contentStart: number,
    /** Where the element ends in the buffer it was read from. */
    readonly end: number,
  ) {}

  get raw(): Buffer {
    return (this.rawView ??= this.buf.subarray(this.start, this.end));
  }

  get content(): Buffer {
    return (this.contentView ??= this.buf.subarray(this.contentStart, this.end));
  }

  /** The direct children, read from this element's own buffer (no view of the content needed). */
  children(): DerElement[] {
    const out: DerElement[] = [];
    for (let at = this.contentStart; at < this.end; ) {
      const child = locate(this.buf, at, this.end);
      out.push(child);
      at = child.end;
    }
    return out;
  }
}

/** Reads the TLV at `offset`. Throws on anything DER does not allow or on truncation. */
export function readElement(buf: Buffer, offset = 0): DerElement {
  return locate(buf, offset, buf.length);
}

/** The TLV at `offset` of `buf`, which must end by `limit`. */
function locate(buf: Buffer, offset: number, limit: number): DerElement {
  const tag = offset < limit ? buf[offset] : undefined;
  const first = offset + 1 < limit ? buf[offset + 1] : undefined;
  if (tag === undefined || first === undefined) throw new Error('DER: truncated header');
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: high tag numbers are not supported');
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new Error('DER: indefinite length is not DER');
    if (n > 6) throw new Error('DER: length too large');
    length = 0;
    for (let i = 0; i < n; i++) {
      const b = offset + 2 + i < limit ? buf[offset + 2 + i] : undefined;
      if (b === undefined) throw new Error('DER: truncated length');
      length = length * 256 + b;
    }
    contentStart = offset + 2 + n;
  }
  const end = contentStart + length;
  if (end > limit) throw new Error('DER: content runs past the end of the input');
  return new DerElement(tag, buf, offset, contentStart, end);
}

/** The direct children of a constructed element. Skipping is O(1) per child, whatever its size. */
export function children(element: DerElement): DerElement[] {
  return element.children();
}

function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined || element.tag !== tag) {
    throw new Error(`DER: expected ${what} (tag 0x${tag.toString(16)}), found ${element === undefined ? 'nothing' : `tag 0x${element.tag.toString(16)}`}`);
  }
  return element;
}

/** Decodes a dotted OID from its content octets; used to match extension identifiers. */
export function decodeOid(content: Buffer): string {
  const arcs: bigint[] = [];
  let value = 0n;
  for (const b of content) {
    value = (value << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0n;
    }
  }
  const [first, ...rest] = arcs;
  if (first === undefined) throw new Error('DER: empty OID');
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...rest].join('.');
}

/** Value of a non-negative INTEGER's content octets. */
export function decodeUnsignedInteger(content: Buffer): bigint {
  if (content.length === 0) throw new Error('DER: empty INTEGER');
  if ((content[0] ?? 0) & 0x80) throw new Error('DER: negative INTEGER');
  return BigInt(`0x${content.toString('hex')}`);
}

/** extnValue of the extension `extnId` within an `Extensions` SEQUENCE, or undefined. */
function findExtensionValue(extensions: DerElement, extnId: string): Buffer | undefined {
  for (const extension of children(extensions)) {
    const parts = children(extension);
    const id = expectTag(parts[0], Tag.OID, 'extnID');
    if (decodeOid(id.content) !== extnId) continue;
    // `critical` is optional, so extnValue is whichever OCTET STRING comes last.
    return expectTag(parts[parts.length - 1], Tag.OCTET_STRING, 'extnValue').content;
  }
  return undefined;
}

export const OID_SUBJECT_KEY_IDENTIFIER = '2.5.29.14';
export const OID_CRL_NUMBER = '2.5.29.20';

/** Fields of a certificate DER that the CRL encoder copies verbatim. */
export interface CertificateFields {
  /** The subject Name exactly as encoded in the certificate, tag and length included. */
  readonly subjectDer: Buffer;
  /** The subjectKeyIdentifier's KeyIdentifier octets, when the extension is present. */
  readonly subjectKeyIdentifier: Buffer | undefined;
}

export function readCertificateFields(certificateDer: Buffer): CertificateFields {
  const certificate = expectTag(readElement(certificateDer), Tag.SEQUENCE, 'Certificate');
  const tbs = expectTag(children(certificate)[0], Tag.SEQUENCE, 'TBSCertificate');
  const fields = children(tbs);
  // version is `[0] EXPLICIT ... DEFAULT v1`, so a v1 certificate has one field fewer up front.
  const base = fields[0]?.tag === 0xa0 ? 1 : 0;
  // serialNumber, signature, issuer, validity, then subject.
  const subject = expectTag(fields[base + 4], Tag.SEQUENCE, 'subject Name');
  const extensionsWrapper = fields.find((f) => f.tag === 0xa3);
  let subjectKeyIdentifier: Buffer | undefined;
  if (extensionsWrapper !== undefined) {
    const value = findExtensionValue(expectTag(children(extensionsWrapper)[0], Tag.SEQUENCE, 'Extensions'), OID_SUBJECT_KEY_IDENTIFIER);
    if (value !== undefined) subjectKeyIdentifier = expectTag(readElement(value), Tag.OCTET_STRING, 'KeyIdentifier').content;
  }
  return { subjectDer: Buffer.from(subject.raw), subjectKeyIdentifier: subjectKeyIdentifier && Buffer.from(subjectKeyIdentifier) };
}

/** cRLNumber of a CertificateList DER, or undefined when the CRL has none. Throws on malformed DER. */
export function readCrlNumberFromDer(crlDer: Buffer): bigint | undefined {
  const certificateList = expectTag(readElement(crlDer), Tag.SEQUENCE, 'CertificateList');
  const tbs = expectTag(children(certificateList)[0], Tag.SEQUENCE, 'TBSCertList');
  // crlExtensions is the only [0] in TBSCertList; the (possibly huge) revokedCertificates list is
  // skipped by its length, never walked.
  const extensionsWrapper = children(tbs).find((f) => f.tag === 0xa0);
  if (extensionsWrapper === undefined) return undefined;
  const value = findExtensionValue(expectTag(children(extensionsWrapper)[0], Tag.SEQUENCE, 'Extensions'), OID_CRL_NUMBER);
  if (value === undefined) return undefined;
  return decodeUnsignedInteger(expectTag(readElement(value), Tag.INTEGER, 'CRLNumber').content);
}
