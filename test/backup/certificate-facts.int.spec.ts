// The fast certificate and key reader a restore uses for its 100,000 client certificates must say
// exactly what Node's X509Certificate and createPrivateKey say, on certificates made the way the
// gateway makes them, and must decline (undefined) rather than guess on anything else.
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { certificateFacts, rsaPrivateKeyPublic } from '../../adapters/archive/certificate-facts.js';
import { createCaCertificate, createClientCertificate, generateRsaKeyPair, type KeyPairPem } from '../../adapters/pki/certificates.js';

let ca: { keys: KeyPairPem; pem: string };
let other: { keys: KeyPairPem; pem: string };
let client: { keys: KeyPairPem; pem: string };

const jwkHex = (pem: string, part: 'n' | 'e') => {
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  return Buffer.from(jwk[part] ?? '', 'base64url').toString('hex').replace(/^0+(?=.)/, '');
};

beforeAll(async () => {
  const makeCa = async (name: string) => {
    const keys = await generateRsaKeyPair(2048);
    const pem = createCaCertificate({
      keys,
      commonName: name,
      serialHex: '0a0b0c',
      validity: { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2036-01-01T00:00:00Z') },
    });
    return { keys, pem };
  };
  ca = await makeCa('test CA');
  other = await makeCa('another CA');
  const keys = await generateRsaKeyPair(2048);
  client = {
    keys,
    pem: createClientCertificate({
      ca: { certificatePem: ca.pem, privateKeyPem: ca.keys.privateKeyPem },
      publicKeyPem: keys.publicKeyPem,
      commonName: 'p0123456789abcdef01234567',
      serialHex: '05ab00ff11223344556677889900aabb',
      validity: { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2051-06-30T23:59:59Z') },
    }),
  };
});

describe('certificateFacts', () => {
  it('reads serial, common name, expiry, CA flag and RSA key as X509Certificate does', () => {
    for (const cert of [client, ca]) {
      const facts = certificateFacts(cert.pem)!;
      const x = new X509Certificate(cert.pem);
      expect(facts.serial).toBe(x.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''));
      expect(`CN=${facts.commonName}`).toBe(x.subject);
      // 2051: a GeneralizedTime, past UTCTime's range.
      expect(facts.notAfter.toISOString()).toBe(new Date(x.validTo).toISOString());
      expect(facts.isCa).toBe(x.ca);
      expect(facts.rsa).toEqual({ n: jwkHex(cert.keys.publicKeyPem, 'n'), e: jwkHex(cert.keys.publicKeyPem, 'e') });
    }
    expect(certificateFacts(client.pem)!.notAfter.toISOString()).toBe('2051-06-30T23:59:59.000Z');
  });

  it('checks the signature against the issuer key, and only that one', () => {
    const facts = certificateFacts(client.pem)!;
    expect(facts.signedBy(createPublicKey(ca.keys.publicKeyPem))).toBe(true);
    expect(facts.signedBy(createPublicKey(other.keys.publicKeyPem))).toBe(false);
    const der = new X509Certificate(client.pem).raw;
    der[der.length - 10] = der[der.length - 10]! ^ 0x01;
    const tampered = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`;
    expect(certificateFacts(tampered)!.signedBy(createPublicKey(ca.keys.publicKeyPem))).toBe(false);
  });

  it('declines what it does not read, so the caller falls back to OpenSSL', () => {
    expect(certificateFacts('not a certificate')).toBeUndefined();
    expect(certificateFacts('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----')).toBeUndefined();
  });
});

describe('rsaPrivateKeyPublic', () => {
  it('gives the modulus and exponent of a PKCS#8 or PKCS#1 RSA key, as its public key has them', () => {
    const expected = { n: jwkHex(client.keys.publicKeyPem, 'n'), e: jwkHex(client.keys.publicKeyPem, 'e') };
    expect(rsaPrivateKeyPublic(client.keys.privateKeyPem)).toEqual(expected);
    const pkcs1 = createPrivateKey(client.keys.privateKeyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
    expect(rsaPrivateKeyPublic(pkcs1)).toEqual(expected);
  });

  it('declines keys that are not RSA, and text that is no key', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(rsaPrivateKeyPublic(ec)).toBeUndefined();
    expect(rsaPrivateKeyPublic('hello')).toBeUndefined();
  });
});
