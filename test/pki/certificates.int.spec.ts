// The certificates we make are the ones openssl (and so OpenVPN) accepts: a CA that verifies its
// own, a server certificate for TLS servers only, client certificates for TLS clients only, with
// key identifiers that chain.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCaCertificate,
  createClientCertificate,
  createServerCertificate,
  drawSerial,
  generateRsaKeyPair,
  type KeyPairPem,
} from '../../adapters/pki/certificates.js';

const dir = mkdtempSync(join(tmpdir(), 'ovl-certs-'));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const openssl = (args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });
const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date('2030-06-30T23:59:59Z') };

let caKeys: KeyPairPem;
let caPem: string;
let serverPem: string;
let clientPem: string;

beforeAll(async () => {
  caKeys = await generateRsaKeyPair(2048);
  caPem = createCaCertificate({ keys: caKeys, commonName: 'Test CA', serialHex: '01', validity });
  const ca = { certificatePem: caPem, privateKeyPem: caKeys.privateKeyPem };
  serverPem = createServerCertificate({ ca, publicKeyPem: (await generateRsaKeyPair()).publicKeyPem, commonName: 'server-1', serialHex: '02', validity });
  clientPem = createClientCertificate({ ca, publicKeyPem: (await generateRsaKeyPair()).publicKeyPem, commonName: 'p0123', serialHex: '7f'.padEnd(32, 'a'), validity });
  file('ca.pem', caPem);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('certificates', () => {
  it('the CA verifies against itself and is a CA that may sign certificates and CRLs', () => {
    expect(openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'ca.pem')]).stdout).toContain('OK');
    const text = execFileSync('openssl', ['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text'], { encoding: 'utf8' });
    expect(text).toMatch(/CA:TRUE/);
    expect(text).toMatch(/Certificate Sign, CRL Sign/);
  });

  it('the server certificate verifies for TLS servers and not for TLS clients', () => {
    const server = file('server.pem', serverPem);
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.pem'), server]).status).toBe(0);
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'ca.pem'), server]).status).not.toBe(0);
  });

  it('a client certificate verifies for TLS clients, not servers, and expires at the given second', () => {
    const client = file('client.pem', clientPem);
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'ca.pem'), client]).status).toBe(0);
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.pem'), client]).status).not.toBe(0);
    expect(execFileSync('openssl', ['x509', '-in', client, '-noout', '-enddate', '-serial', '-subject'], { encoding: 'utf8' })).toMatch(
      /notAfter=Jun 30 23:59:59 2030 GMT\nserial=7FA{30}\nsubject=CN ?= ?p0123/,
    );
  });

  it('every authority key identifier is the subject key identifier of the CA', () => {
    const ski = (pem: string, ext: string) =>
      execFileSync('openssl', ['x509', '-noout', '-ext', ext], { input: pem, encoding: 'utf8' }).split('\n')[1]?.trim().replace(/^keyid:/, '');
    const caSki = ski(caPem, 'subjectKeyIdentifier');
    expect(caSki).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    expect(caSki).not.toBe('DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09'); // SHA-1 of nothing
    for (const pem of [caPem, serverPem, clientPem]) expect(ski(pem, 'authorityKeyIdentifier')).toBe(caSki);
  });
});

describe('serials', () => {
  it('are 16 bytes, positive and minimally encoded, and redrawn when taken', () => {
    const taken = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const s = drawSerial(randomBytes, (x) => taken.has(x));
      expect(s).toMatch(/^(0[1-9a-f]|[1-7][0-9a-f])[0-9a-f]{30}$/);
      taken.add(s);
    }
    const first = [...taken][0]!;
    let calls = 0;
    const again = drawSerial(
      (n) => (calls++ === 0 ? Buffer.from(first, 'hex') : randomBytes(n)),
      (x) => taken.has(x),
    );
    expect(again).not.toBe(first);
  });
});
