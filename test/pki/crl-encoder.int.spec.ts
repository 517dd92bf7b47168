// The CRL encoder judged by the real openssl binary: the only opinion that matters is whether
// OpenSSL (and hence OpenVPN's crl-verify) accepts the CRL and refuses the revoked certificates.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  crlDerToPem,
  encodeRevokedEntry,
  issuerFromCertificate,
  readCrlNumber,
  signCrl,
  type CrlIssuer,
  type CrlReason,
  type RevokedEntry,
} from '../../adapters/pki/crl-encoder.js';
import { children, integerFromHexSerial, readElement, time } from '../../adapters/pki/der.js';

// ---------------------------------------------------------------------------------------------
// A throwaway PKI made with the openssl CLI

interface OpensslResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together: openssl prints "verify OK" and errors on stderr. */
  output: string;
}

function openssl(cwd: string, args: string[]): OpensslResult {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, output: r.stdout + r.stderr };
}

function opensslOk(cwd: string, args: string[]): string {
  const r = openssl(cwd, args);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}):\n${r.output}`);
  return r.stdout;
}

interface Ca {
  dir: string;
  certPath: string;
  certPem: string;
  keyPem: string;
  issuer: CrlIssuer;
}

// The subject mixes a PrintableString (C), UTF8Strings with non-ASCII text and an IA5String
// (emailAddress): a re-encoded Name would very likely differ from the certificate's bytes.
const CA_SUBJECT = [
  'C = DE',
  'O = Ovpn Ledger Tést GmbH',
  'OU = Gateway Ünit',
  'CN = Ovpn Ledger Test CA',
  'emailAddress = pki@example.test',
].join('\n');

function makeCa(dir: string, key: 'rsa' | 'ec', options: { withSki: boolean } = { withSki: true }): Ca {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ req ]',
      'distinguished_name = dn',
      'prompt = no',
      'utf8 = yes',
      'string_mask = utf8only',
      'x509_extensions = v3_ca',
      '[ dn ]',
      CA_SUBJECT,
      '[ v3_ca ]',
      `subjectKeyIdentifier = ${options.withSki ? 'hash' : 'none'}`,
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      '[ client ]',
      'basicConstraints = CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = clientAuth',
      '',
    ].join('\n'),
  );
  const keyArgs = key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  opensslOk(dir, ['req', '-x509', ...keyArgs, '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-config', 'ca.cnf']);
  const certPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  const keyPem = readFileSync(join(dir, 'ca.key'), 'utf8');
  return { dir, certPath: join(dir, 'ca.pem'), certPem, keyPem, issuer: issuerFromCertificate(certPem, keyPem) };
}

/** Issues a client certificate with the given serial (hex magnitude) and returns its path. */
function issueClient(ca: Ca, name: string, serialHex: string): string {
  opensslOk(ca.dir, [
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`,
  ]);
  opensslOk(ca.dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${serialHex}`,
    '-days', '10', '-extfile', 'ca.cnf', '-extensions', 'client', '-out', `${name}.pem`,
  ]);
  return join(ca.dir, `${name}.pem`);
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

function writeCrl(ca: Ca, file: string, entries: readonly RevokedEntry[], crlNumber = 1n, nextUpdate?: Date): string {
  const now = Date.now();
  const der = signCrl({
    issuer: ca.issuer,
    crlNumber,
    thisUpdate: new Date(now - MINUTE),
    nextUpdate: nextUpdate ?? new Date(now + 7 * DAY),
    entries: entries.map(encodeRevokedEntry),
  });
  const path = join(ca.dir, file);
  writeFileSync(path, crlDerToPem(der));
  return path;
}

/** Serial (as openssl prints it) -> reason text, or null when the entry carries no reason code. */
function listedRevocations(crlText: string): Map<string, string | null> {
  const listed = new Map<string, string | null>();
  const blocks = crlText.split(/Serial Number: /).slice(1);
  for (const block of blocks) {
    const serial = block.slice(0, block.indexOf('\n')).trim();
    const reason = /X509v3 CRL Reason Code:\s*\n\s*(.+)/.exec(block)?.[1]?.trim() ?? null;
    listed.set(serial, reason);
  }
  return listed;
}

const OPENSSL_REASON_TEXT: Record<CrlReason, string | null> = {
  unspecified: null,
  keyCompromise: 'Key Compromise',
  affiliationChanged: 'Affiliation Changed',
  superseded: 'Superseded',
  cessationOfOperation: 'Cessation Of Operation',
};

// ---------------------------------------------------------------------------------------------

let root: string;
let rsaCa: Ca;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'crl-encoder-'));
  rsaCa = makeCa(join(root, 'rsa'), 'rsa');
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('DER building blocks', () => {
  it('given a serial with the high bit set, when encoded, then exactly one 0x00 is prepended', () => {
    expect(integerFromHexSerial('8A01').toString('hex')).toBe('0203008a01');
    expect(integerFromHexSerial('80').toString('hex')).toBe('02020080');
  });

  it('given a serial that already carries its sign byte (node-forge style), when encoded, then it is the same INTEGER as its magnitude', () => {
    expect(integerFromHexSerial('008A01').equals(integerFromHexSerial('8A01'))).toBe(true);
  });

  it('given serials with small leading bytes, when encoded, then no padding is added', () => {
    expect(integerFromHexSerial('7F').toString('hex')).toBe('02017f');
    expect(integerFromHexSerial('01').toString('hex')).toBe('020101');
    expect(integerFromHexSerial('0102').toString('hex')).toBe('02020102');
    expect(integerFromHexSerial('102').toString('hex')).toBe('02020102');
  });

  it('given a non-minimal, zero or non-hex serial, when encoded, then it is refused with the reason', () => {
    expect(() => integerFromHexSerial('0001')).toThrow(/not minimal/);
    expect(() => integerFromHexSerial('007F')).toThrow(/not minimal/);
    expect(() => integerFromHexSerial('00')).toThrow(/zero.*positive/);
    expect(() => integerFromHexSerial('0')).toThrow(/zero/);
    expect(() => integerFromHexSerial('')).toThrow(/hexadecimal/);
    expect(() => integerFromHexSerial('-01')).toThrow(/hexadecimal/);
    expect(() => integerFromHexSerial('0x01')).toThrow(/hexadecimal/);
  });

  it('given dates around the 1950/2050 boundaries, when encoded, then UTCTime is used for 1950-2049 and GeneralizedTime otherwise', () => {
    const asText = (d: string): string => {
      const der = time(new Date(d));
      return `${der[0]?.toString(16)}:${der.subarray(2).toString('latin1')}`;
    };
    expect(asText('1950-01-01T00:00:00Z')).toBe('17:500101000000Z');
    expect(asText('2049-12-31T23:59:59.999Z')).toBe('17:491231235959Z');
    expect(asText('2050-01-01T00:00:00Z')).toBe('18:20500101000000Z');
    expect(asText('1949-12-31T23:59:59Z')).toBe('18:19491231235959Z');
  });
});

describe('issuerFromCertificate', () => {
  it('given an openssl-made CA, when read, then the issuer Name is the subject bytes copied verbatim from the certificate', () => {
    const certDer = new X509Certificate(rsaCa.certPem).raw;
    const subject = rsaCa.issuer.subjectDer;
    // The subject Name appears in the certificate exactly as we hold it (issuer and subject are
    // equal in a self-signed CA, hence two occurrences).
    expect(certDer.indexOf(subject)).toBeGreaterThan(0);
    // PrintableString, UTF8String and IA5String all present: a re-encoding would show.
    const tags = new Set(children(readElement(subject)).map((rdn) => children(children(rdn)[0]!)[1]!.tag));
    expect(tags).toEqual(new Set([0x13, 0x0c, 0x16]));
  });

  it('given a CA with a subjectKeyIdentifier, when read, then the identifier matches what openssl reports', () => {
    const text = opensslOk(rsaCa.dir, ['x509', '-in', 'ca.pem', '-noout', '-ext', 'subjectKeyIdentifier']);
    const ski = /\n\s*([0-9A-F:]+)\s*$/.exec(text)?.[1]?.replace(/:/g, '');
    expect(rsaCa.issuer.subjectKeyIdentifier?.toString('hex').toUpperCase()).toBe(ski);
  });

  it('given a private key that does not belong to the CA certificate, when read, then it is refused', () => {
    const other = makeCa(join(root, 'other'), 'ec');
    expect(() => issuerFromCertificate(rsaCa.certPem, other.keyPem)).toThrow(/does not belong/);
  });
});

describe('signCrl with an RSA-2048 CA, checked by openssl', () => {
  const revokedHighBit = '8A1B2C3D4E5F60718293A4B5C6D7E8F9';
  const revokedSmallLead = '0102030405060708090A0B0C0D0E0F10';
  const notRevoked = '4D5E6F708192A3B4C5D6E7F801122334';

  const entries: RevokedEntry[] = [
    { serialHex: revokedHighBit, revokedAt: new Date(Date.now() - 2 * DAY), reason: 'keyCompromise' },
    { serialHex: revokedSmallLead, revokedAt: new Date(Date.now() - DAY), reason: 'unspecified' },
    { serialHex: '80', revokedAt: new Date('2024-05-06T07:08:09Z'), reason: 'superseded' },
    { serialHex: '7F', revokedAt: new Date('2024-05-06T07:08:10Z'), reason: 'affiliationChanged' },
    { serialHex: '00FF00', revokedAt: new Date('2024-05-06T07:08:11Z'), reason: 'cessationOfOperation' },
  ];

  it('given no revoked certificates, when signed, then openssl verifies it and reports no revoked certificates', () => {
    const path = writeCrl(rsaCa, 'empty.pem', [], 0n);
    const verify = openssl(rsaCa.dir, ['crl', '-in', path, '-CAfile', rsaCa.certPath, '-noout']);
    expect(verify.status).toBe(0);
    expect(verify.output).toContain('verify OK');
    const text = opensslOk(rsaCa.dir, ['crl', '-in', path, '-noout', '-text']);
    expect(text).toContain('No Revoked Certificates.');
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*0\n/);
  });

  it('given revoked entries, when signed, then openssl verifies the signature against the CA', () => {
    const path = writeCrl(rsaCa, 'crl.pem', entries, 7n);
    const verify = openssl(rsaCa.dir, ['crl', '-in', path, '-CAfile', rsaCa.certPath, '-noout']);
    expect(verify.status).toBe(0);
    expect(verify.output).toContain('verify OK');
  });

  it('given revoked entries, when listed by openssl, then exactly those serials appear with their reasons, plus the CRL number and the CA key id', () => {
    const path = writeCrl(rsaCa, 'crl.pem', entries, 7n);
    const text = opensslOk(rsaCa.dir, ['crl', '-in', path, '-noout', '-text']);
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*7\n/);
    const akiHex = /X509v3 Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1]?.replace(/:/g, '');
    expect(akiHex).toBe(rsaCa.issuer.subjectKeyIdentifier?.toString('hex').toUpperCase());

    const expected = new Map(entries.map((e) => [e.serialHex.replace(/^00(?=[89A-F])/, ''), OPENSSL_REASON_TEXT[e.reason]]));
    expect(listedRevocations(text)).toEqual(expected);
  });

  it('given a CRL, when openssl prints its issuer, then it is the CA subject and the DER carries the subject bytes unchanged', () => {
    const path = writeCrl(rsaCa, 'crl.pem', entries, 7n);
    const crlIssuer = opensslOk(rsaCa.dir, ['crl', '-in', path, '-noout', '-issuer', '-nameopt', 'RFC2253']);
    const caSubject = opensslOk(rsaCa.dir, ['x509', '-in', rsaCa.certPath, '-noout', '-subject', '-nameopt', 'RFC2253']);
    expect(crlIssuer.replace(/^issuer=/, '')).toBe(caSubject.replace(/^subject=/, ''));
    const der = Buffer.from(readFileSync(path, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const tbsFields = children(children(readElement(der))[0]!);
    expect(tbsFields[2]!.raw.equals(rsaCa.issuer.subjectDer)).toBe(true);
  });

  it('given a CRL revoking a client, when openssl verifies that client with -crl_check, then it fails with "certificate revoked"', () => {
    const client = issueClient(rsaCa, 'revoked-high-bit', revokedHighBit);
    const crl = writeCrl(rsaCa, 'crl.pem', entries, 7n);
    const r = openssl(rsaCa.dir, ['verify', '-crl_check', '-CAfile', rsaCa.certPath, '-CRLfile', crl, client]);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('certificate revoked');
  });

  it('given a CRL revoking a client whose serial starts with a small byte, when verified with -crl_check, then it fails with "certificate revoked"', () => {
    const client = issueClient(rsaCa, 'revoked-small-lead', revokedSmallLead);
    // The serial openssl gave the certificate is the one we wrote into the CRL.
    expect(new X509Certificate(readFileSync(client)).serialNumber.replace(/^0+/, '')).toBe(revokedSmallLead.replace(/^0+/, ''));
    const crl = writeCrl(rsaCa, 'crl.pem', entries, 7n);
    const r = openssl(rsaCa.dir, ['verify', '-crl_check', '-CAfile', rsaCa.certPath, '-CRLfile', crl, client]);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('certificate revoked');
  });

  it('given a CRL not listing a client, when openssl verifies that client with -crl_check, then it passes', () => {
    const client = issueClient(rsaCa, 'still-valid', notRevoked);
    const crl = writeCrl(rsaCa, 'crl.pem', entries, 7n);
    const r = openssl(rsaCa.dir, ['verify', '-crl_check', '-CAfile', rsaCa.certPath, '-CRLfile', crl, client]);
    expect(r.output).toContain(': OK');
    expect(r.status).toBe(0);
  });

  it('given an empty CRL, when a previously revoked-by-us client is verified, then it passes (the CRL alone decides)', () => {
    const client = issueClient(rsaCa, 'revoked-high-bit-2', revokedHighBit);
    const crl = writeCrl(rsaCa, 'empty.pem', [], 8n);
    const r = openssl(rsaCa.dir, ['verify', '-crl_check', '-CAfile', rsaCa.certPath, '-CRLfile', crl, client]);
    expect(r.status).toBe(0);
  });

  it('given revocation and nextUpdate dates after 2049, when signed, then GeneralizedTime is used and openssl still parses and verifies them', () => {
    const late: RevokedEntry = { serialHex: '0A0B0C', revokedAt: new Date('2051-03-04T05:06:07Z'), reason: 'keyCompromise' };
    const entry = encodeRevokedEntry(late);
    expect(children(readElement(entry))[1]!.tag).toBe(0x18);
    expect(entry.includes(Buffer.from('20510304050607Z', 'latin1'))).toBe(true);

    const path = writeCrl(rsaCa, 'late.pem', [late], 9n, new Date('2060-01-02T03:04:05Z'));
    const verify = openssl(rsaCa.dir, ['crl', '-in', path, '-CAfile', rsaCa.certPath, '-noout']);
    expect(verify.output).toContain('verify OK');
    const text = opensslOk(rsaCa.dir, ['crl', '-in', path, '-noout', '-text']);
    expect(text).toContain('Revocation Date: Mar  4 05:06:07 2051 GMT');
    expect(text).toContain('Next Update: Jan  2 03:04:05 2060 GMT');
  });

  it('given 10,000 pre-encoded entries passed as a generator, when signed, then openssl verifies it and lists all of them', () => {
    const encoded: Buffer[] = [];
    for (let i = 1; i <= 10_000; i++) {
      encoded.push(encodeRevokedEntry({ serialHex: (0x1000000 + i * 7919).toString(16), revokedAt: new Date(Date.now() - i * MINUTE), reason: 'superseded' }));
    }
    function* entriesOnce(): Generator<Buffer> {
      yield* encoded;
    }
    const der = signCrl({ issuer: rsaCa.issuer, crlNumber: 10n, thisUpdate: new Date(Date.now() - MINUTE), nextUpdate: new Date(Date.now() + DAY), entries: entriesOnce() });
    const path = join(rsaCa.dir, 'big.der');
    writeFileSync(path, der);
    const verify = openssl(rsaCa.dir, ['crl', '-inform', 'DER', '-in', path, '-CAfile', rsaCa.certPath, '-noout']);
    expect(verify.output).toContain('verify OK');
    const text = opensslOk(rsaCa.dir, ['crl', '-inform', 'DER', '-in', path, '-noout', '-text']);
    expect(text.split('Serial Number: ').length - 1).toBe(10_000);
  });

  it('given inconsistent input, when signing, then it is refused rather than producing a CRL openssl would reject', () => {
    const base = { issuer: rsaCa.issuer, crlNumber: 1n, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + DAY), entries: [] };
    expect(() => signCrl({ ...base, nextUpdate: base.thisUpdate })).toThrow(/nextUpdate/);
    expect(() => signCrl({ ...base, crlNumber: -1n })).toThrow(/CRL number/);
    expect(() => signCrl({ ...base, entries: [Buffer.from('0201ff', 'hex')] })).toThrow(/not a DER SEQUENCE/);
    expect(() => encodeRevokedEntry({ serialHex: '01', revokedAt: new Date(), reason: 'toString' as CrlReason })).toThrow(/unknown CRL reason/);
  });
});

describe('signCrl with other CA shapes, checked by openssl', () => {
  it('given an ECDSA P-256 CA, when a CRL is signed, then openssl verifies it and refuses the revoked client', () => {
    const ca = makeCa(join(root, 'ec'), 'ec');
    const client = issueClient(ca, 'ec-client', 'C0FFEE');
    const crl = writeCrl(ca, 'crl.pem', [{ serialHex: 'C0FFEE', revokedAt: new Date(Date.now() - DAY), reason: 'keyCompromise' }], 3n);
    const verify = openssl(ca.dir, ['crl', '-in', crl, '-CAfile', ca.certPath, '-noout']);
    expect(verify.output).toContain('verify OK');
    expect(opensslOk(ca.dir, ['crl', '-in', crl, '-noout', '-text'])).toContain('Signature Algorithm: ecdsa-with-SHA256');
    const r = openssl(ca.dir, ['verify', '-crl_check', '-CAfile', ca.certPath, '-CRLfile', crl, client]);
    expect(r.output).toContain('certificate revoked');
  });

  it('given a CA without a subjectKeyIdentifier, when a CRL is signed, then it carries no authorityKeyIdentifier and still verifies', () => {
    const ca = makeCa(join(root, 'noski'), 'ec', { withSki: false });
    expect(ca.issuer.subjectKeyIdentifier).toBeUndefined();
    const crl = writeCrl(ca, 'crl.pem', [{ serialHex: '01', revokedAt: new Date(Date.now() - DAY), reason: 'superseded' }], 4n);
    expect(openssl(ca.dir, ['crl', '-in', crl, '-CAfile', ca.certPath, '-noout']).output).toContain('verify OK');
    expect(opensslOk(ca.dir, ['crl', '-in', crl, '-noout', '-text'])).not.toContain('Authority Key Identifier');
  });
});

describe('readCrlNumber', () => {
  const sign = (crlNumber: bigint): Buffer =>
    signCrl({ issuer: rsaCa.issuer, crlNumber, thisUpdate: new Date(Date.now() - MINUTE), nextUpdate: new Date(Date.now() + DAY), entries: [] });

  it('given our own CRL as DER, PEM text or PEM bytes, when read, then the CRL number round-trips', () => {
    for (const n of [0n, 1n, 127n, 128n, 255n, 65_536n, (1n << 64n) + 5n, (1n << 159n) - 1n]) {
      const der = sign(n);
      expect(readCrlNumber(der)).toBe(n);
      expect(readCrlNumber(crlDerToPem(der))).toBe(n);
      expect(readCrlNumber(Buffer.from(crlDerToPem(der)))).toBe(n);
    }
  });

  it('given a CRL with entries, when read, then the number is found past the revoked list', () => {
    const der = signCrl({
      issuer: rsaCa.issuer, crlNumber: 4242n, thisUpdate: new Date(Date.now() - MINUTE), nextUpdate: new Date(Date.now() + DAY),
      entries: [encodeRevokedEntry({ serialHex: 'ABCDEF', revokedAt: new Date(), reason: 'keyCompromise' })],
    });
    expect(readCrlNumber(der)).toBe(4242n);
  });

  it('given CRLs made by openssl ca -gencrl with and without a crlnumber file, when read, then the number or undefined is returned', () => {
    const dir = rsaCa.dir;
    writeFileSync(join(dir, 'index.txt'), '');
    const config = (withNumber: boolean): string =>
      [
        '[ ca ]', 'default_ca = CA_default', '[ CA_default ]', `dir = ${dir}`,
        'database = $dir/index.txt', 'certificate = $dir/ca.pem', 'private_key = $dir/ca.key',
        ...(withNumber ? ['crlnumber = $dir/crlnumber'] : []),
        'default_md = sha256', 'default_crl_days = 7', '',
      ].join('\n');
    writeFileSync(join(dir, 'with.cnf'), config(true));
    writeFileSync(join(dir, 'without.cnf'), config(false));
    writeFileSync(join(dir, 'crlnumber'), '1F\n');
    opensslOk(dir, ['ca', '-gencrl', '-config', 'with.cnf', '-out', 'openssl-with.pem']);
    opensslOk(dir, ['ca', '-gencrl', '-config', 'without.cnf', '-out', 'openssl-without.pem']);
    expect(readCrlNumber(readFileSync(join(dir, 'openssl-with.pem'), 'utf8'))).toBe(31n);
    expect(readCrlNumber(readFileSync(join(dir, 'openssl-without.pem')))).toBeUndefined();
  });

  it('given something that is not a CRL, when read, then undefined is returned instead of throwing', () => {
    expect(readCrlNumber('')).toBeUndefined();
    expect(readCrlNumber('not a crl')).toBeUndefined();
    expect(readCrlNumber(Buffer.from([0x30, 0x82, 0xff]))).toBeUndefined();
    expect(readCrlNumber(rsaCa.certPem)).toBeUndefined();
    expect(readCrlNumber(new X509Certificate(rsaCa.certPem).raw)).toBeUndefined();
  });
});
