// X.509 certificates for the gateway: the CA, the OpenVPN server and the clients. node-forge
// builds the certificate structure; the signature is made by Node's native crypto, which is two
// orders of magnitude faster than forge's JavaScript RSA (33 ms per signature here).
import { createHash, createPrivateKey, createPublicKey, generateKeyPair, sign as nativeSign } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

const generateKeyPairAsync = promisify(generateKeyPair);

// Public in node-forge's JavaScript, missing from its type definitions.
const forgeInternals = forge.pki as unknown as {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
};

export interface KeyPairPem {
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
}

export async function generateRsaKeyPair(bits = 2048): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/**
 * A certificate serial: 16 random bytes as a positive, minimally encoded DER integer (first byte
 * 0x01–0x7f), redrawn until `isTaken` says it is new. OpenSSL 3 refuses a whole CRL that holds a
 * single non-minimal serial, so the rule is enforced here, where serials are born.
 */
export function drawSerial(randomBytes: (n: number) => Buffer, isTaken: (serialHex: string) => boolean): string {
  for (let attempt = 0; attempt < 100; attempt++) {
    const bytes = randomBytes(16);
    bytes[0] = (bytes[0] ?? 0) & 0x7f;
    if (bytes[0] === 0) continue;
    const hex = bytes.toString('hex');
    if (!isTaken(hex)) return hex;
  }
  throw new Error('could not draw an unused certificate serial in 100 attempts');
}

/** An OpenVPN static key (2048 bits) as used by --tls-crypt. */
export function tlsCryptKey(randomBytes: (n: number) => Buffer): string {
  const hex = randomBytes(256).toString('hex');
  const lines = hex.match(/.{32}/g) ?? [];
  return ['#', '# 2048 bit OpenVPN static key', '#', '-----BEGIN OpenVPN Static key V1-----', ...lines, '-----END OpenVPN Static key V1-----', ''].join('\n');
}

interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CaMaterial {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
}

type Extension = Record<string, unknown>;

function subjectKeyIdentifier(publicKeyPem: string): string {
  // RFC 5280 method 1: SHA-1 of the subjectPublicKey bits, without the unused-bits byte; for RSA
  // those bits are the DER RSAPublicKey (PKCS#1). (forge's BIT STRING holds parsed ASN.1, not
  // bytes, so slicing its value hashed nothing: every authorityKeyIdentifier was SHA-1 of "".)
  const rsaPublicKey = createPublicKey(publicKeyPem).export({ type: 'pkcs1', format: 'der' });
  return createHash('sha1').update(rsaPublicKey).digest('binary');
}

function build(options: {
  serialHex: string;
  subjectCn: string;
  publicKeyPem: string;
  validity: Validity;
  issuer: { certificatePem: string; privateKeyPem: string } | { selfSignedWith: string };
  extensions: Extension[];
}): string {
  const cert = forge.pki.createCertificate();
  cert.serialNumber = options.serialHex;
  cert.publicKey = forge.pki.publicKeyFromPem(options.publicKeyPem);
  cert.validity.notBefore = options.validity.notBefore;
  cert.validity.notAfter = options.validity.notAfter;
  cert.setSubject([{ name: 'commonName', value: options.subjectCn }]);
  const ski = subjectKeyIdentifier(options.publicKeyPem);
  let signingKeyPem: string;
  let authorityKeyId: string;
  if ('selfSignedWith' in options.issuer) {
    cert.setIssuer(cert.subject.attributes);
    signingKeyPem = options.issuer.selfSignedWith;
    authorityKeyId = ski;
  } else {
    const ca = forge.pki.certificateFromPem(options.issuer.certificatePem);
    cert.setIssuer(ca.subject.attributes);
    signingKeyPem = options.issuer.privateKeyPem;
    authorityKeyId = subjectKeyIdentifier(forge.pki.publicKeyToPem(ca.publicKey));
  }
  cert.setExtensions([
    ...options.extensions,
    { name: 'subjectKeyIdentifier', subjectKeyIdentifier: forge.util.bytesToHex(ski) },
    { name: 'authorityKeyIdentifier', keyIdentifier: authorityKeyId },
  ]);
  const oid = forge.pki.oids['sha256WithRSAEncryption'] as string;
  cert.signatureOid = oid;
  cert.siginfo.algorithmOid = oid;
  const tbs = Buffer.from(forge.asn1.toDer(forgeInternals.getTBSCertificate(cert)).getBytes(), 'binary');
  cert.signature = nativeSign('sha256', tbs, createPrivateKey(signingKeyPem)).toString('binary');
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

export function createCaCertificate(options: {
  keys: KeyPairPem;
  commonName: string;
  serialHex: string;
  validity: Validity;
}): string {
  return build({
    serialHex: options.serialHex,
    subjectCn: options.commonName,
    publicKeyPem: options.keys.publicKeyPem,
    validity: options.validity,
    issuer: { selfSignedWith: options.keys.privateKeyPem },
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
}

export function createServerCertificate(options: {
  ca: CaMaterial;
  publicKeyPem: string;
  commonName: string;
  serialHex: string;
  validity: Validity;
}): string {
  return build({
    serialHex: options.serialHex,
    subjectCn: options.commonName,
    publicKeyPem: options.publicKeyPem,
    validity: options.validity,
    issuer: options.ca,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
    ],
  });
}

export function createClientCertificate(options: {
  ca: CaMaterial;
  publicKeyPem: string;
  commonName: string;
  serialHex: string;
  validity: Validity;
}): string {
  return build({
    serialHex: options.serialHex,
    subjectCn: options.commonName,
    publicKeyPem: options.publicKeyPem,
    validity: options.validity,
    issuer: options.ca,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
}

/** Validity read back from a PEM certificate (ISO strings, as events carry them). */
export function certificateValidity(pem: string): { notBefore: string; notAfter: string; serial: string } {
  const cert = forge.pki.certificateFromPem(pem);
  return {
    notBefore: cert.validity.notBefore.toISOString(),
    notAfter: cert.validity.notAfter.toISOString(),
    serial: cert.serialNumber.toLowerCase(),
  };
}
