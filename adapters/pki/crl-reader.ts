// Reads back what matters of a CRL file for monitoring: its validity window and number. The file
// is what OpenVPN enforces, so ov_status reads it rather than trusting the database's memory of
// what was written.
import { readFileSync } from 'node:fs';
import { children, readCrlNumberFromDer, readElement, Tag } from './der.js';

export interface CrlTimes {
  readonly thisUpdate: Date;
  /** Absent in a CRL without nextUpdate (never written by us). */
  readonly nextUpdate: Date | undefined;
  readonly number: bigint | undefined;
}

const { UTC_TIME, GENERALIZED_TIME } = Tag;

export function readCrlFile(path: string): CrlTimes {
  const bytes = readFileSync(path);
  const text = bytes.toString('latin1');
  const pem = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text);
  return readCrlTimes(pem?.[1] !== undefined ? Buffer.from(pem[1].replace(/\s+/g, ''), 'base64') : bytes);
}

/** CertificateList → TBSCertList → [version], signature, issuer, thisUpdate, [nextUpdate]. */
export function readCrlTimes(der: Buffer): CrlTimes {
  const list = readElement(der);
  if (list.tag !== Tag.SEQUENCE) throw new Error('not a CRL: expected a SEQUENCE');
  const tbs = children(list)[0];
  if (tbs?.tag !== Tag.SEQUENCE) throw new Error('not a CRL: no TBSCertList');
  const fields = children(tbs);
  let i = fields[0]?.tag === Tag.INTEGER ? 1 : 0; // version
  i += 2; // signature algorithm, issuer
  const thisUpdate = fields[i];
  if (!thisUpdate || (thisUpdate.tag !== UTC_TIME && thisUpdate.tag !== GENERALIZED_TIME)) throw new Error('not a CRL: no thisUpdate');
  const next = fields[i + 1];
  const hasNext = next !== undefined && (next.tag === UTC_TIME || next.tag === GENERALIZED_TIME);
  return {
    thisUpdate: decodeTime(thisUpdate.tag, thisUpdate.content),
    nextUpdate: hasNext ? decodeTime(next.tag, next.content) : undefined,
    number: readCrlNumberFromDer(der),
  };
}

function decodeTime(tag: number, content: Buffer): Date {
  const s = content.toString('ascii');
  const m =
    tag === UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new Error(`unsupported time ${JSON.stringify(s)}`);
  let year = Number(m[1]);
  if (tag === UTC_TIME) year += year >= 50 ? 1900 : 2000;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}
