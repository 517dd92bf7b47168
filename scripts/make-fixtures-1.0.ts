// Writes test/fixtures/backup-1.0-gw-old.tar.gz: a backup as ovpn-ledger 1.0.x wrote them (backup
// format 1.0), so ov_restore is proven on old data rather than on what today's code writes. Run
// after `npm run build`:
//
//   node dist/scripts/make-fixtures-1.0.js [OUTPUT_DIR]     (default: test/fixtures)
//
// What makes it 1.0 (see adapters/archive/backup-archive.ts and domain/upcasters.ts):
// - the manifest: formatVersion "1.0", lastPosition as a JSON number, a `sha256` map of members;
//   no format tag, no CRL number, no sizes, no member order, no summary, no checksum of its own;
// - events.ndjson lines with revision and position as JSON numbers;
// - ProfileIssued at schema version 1 (`name: {first, last}`, `expires`, `creationReason`, no
//   `autoRenew`), and none of the events 1.0 did not have (AutoRenewEnabled/Disabled,
//   RenewalCertificateIssued, ProfileRenewed, RenewalFailed, and the later gateway events);
// - profiles rendered with 1.0's template (route-nopull for partial profiles).
//
// Deterministic where it can be: every date, name, serial, the tls-crypt and profile-id keys come
// from fixed values or a seeded generator. RSA keys cannot be seeded with Node's crypto, so each
// run gives new keys and certificates, and so a different archive with the same content.
// It also writes backup-1.0-gw-old.expected.json: what a restore must show (users, CRL serials,
// each stream's history), taken from the events written here.
import { createHash, createHmac } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MEMBER, TarGzFileWriter } from '../adapters/archive/backup-archive.js';
import { cidrToNetworkAndMask } from '../adapters/openvpn/cidr.js';
import {
  createCaCertificate,
  createClientCertificate,
  createServerCertificate,
  drawSerial,
  generateRsaKeyPair,
  tlsCryptKey,
  type KeyPairPem,
} from '../adapters/pki/certificates.js';

const FIXTURE = 'backup-1.0-gw-old';
const TOOL = 'ovpn-ledger@1.0.3';
const HOST = 'vpn-old.example.com';
const ROUTES = ['10.20.0.0/16'];
const TAKEN_AT = '2025-06-01T12:00:00.000Z';

/** A seeded byte source: SHA-256 in counter mode. Predictable on purpose; this is test data. */
function seededBytes(seed: string): (n: number) => Buffer {
  let counter = 0;
  let pool = Buffer.alloc(0);
  return (n) => {
    while (pool.length < n) {
      pool = Buffer.concat([pool, createHash('sha256').update(`${seed}:${counter++}`).digest()]);
    }
    const out = pool.subarray(0, n);
    pool = pool.subarray(n);
    return Buffer.from(out);
  };
}

/** The .ovpn as release 1.0 rendered it. */
function renderProfile10(p: {
  traffic: 'all' | 'partial';
  routes: readonly string[];
  serverCommonName: string;
  ca: string;
  cert: string;
  key: string;
  tlsCrypt: string;
}): string {
  const routing =
    p.traffic === 'all'
      ? ['# Full tunnel: every packet goes through the VPN.', 'redirect-gateway def1']
      : [
          "# Split tunnel: only the gateway's networks go through the VPN.",
          'route-nopull',
          ...p.routes.map((cidr) => {
            const { network, netmask } = cidrToNetworkAndMask(cidr);
            return `route ${network} ${netmask}`;
          }),
        ];
  return [
    'client',
    'dev tun',
    'proto udp',
    `remote ${HOST} 1194`,
    'resolv-retry infinite',
    'nobind',
    'persist-key',
    'persist-tun',
    'remote-cert-tls server',
    `verify-x509-name ${p.serverCommonName} name`,
    'verb 3',
    ...routing,
    '<ca>',
    p.ca.trim(),
    '</ca>',
    '<cert>',
    p.cert.trim(),
    '</cert>',
    '<key>',
    p.key.trim(),
    '</key>',
    '<tls-crypt>',
    p.tlsCrypt.trim(),
    '</tls-crypt>',
    '',
  ].join('\n');
}

interface Line {
  stream: string;
  revision: number;
  type: string;
  schemaVersion: number;
  data: unknown;
  metadata: { actor: string; at: string; tool: string };
  position: number;
}

async function main(outputDir: string): Promise<void> {
  const random = seededBytes('ovpn-ledger 1.0 fixture');
  const serial = () => drawSerial(random, () => false);
  const pubOf = (k: KeyPairPem) => k.publicKeyPem;

  // ---- the gateway, as ov_init 1.0 made it on 2025-02-03 ----
  const initAt = new Date('2025-02-03T09:00:00.000Z');
  const caKeys = await generateRsaKeyPair(3072);
  const caCert = createCaCertificate({
    keys: caKeys,
    commonName: `ovpn-ledger CA ${random(4).toString('hex')}`,
    serialHex: serial(),
    validity: { notBefore: new Date(initAt.getTime() - 300_000), notAfter: new Date('2035-02-01T09:00:00.000Z') },
  });
  const ca = { certificatePem: caCert, privateKeyPem: caKeys.privateKeyPem };
  const serverKeys = await generateRsaKeyPair(2048);
  const serverCommonName = `server-${random(6).toString('hex')}`;
  const serverCert = createServerCertificate({
    ca,
    publicKeyPem: pubOf(serverKeys),
    commonName: serverCommonName,
    serialHex: serial(),
    validity: { notBefore: new Date(initAt.getTime() - 300_000), notAfter: new Date('2035-02-01T09:00:00.000Z') },
  });
  const tlsCrypt = tlsCryptKey(random);
  const profileIdKey = random(32).toString('hex');
  const profileIdOf = (email: string, traffic: string) =>
    `p${createHmac('sha256', Buffer.from(profileIdKey, 'hex')).update(`${email}\n${traffic}`).digest('hex').slice(0, 24)}`;

  const lines: Line[] = [];
  const revisions = new Map<string, number>();
  const append = (stream: string, type: string, schemaVersion: number, data: unknown, at: string, actor = 'ec2-user') => {
    const revision = revisions.get(stream) ?? 0;
    revisions.set(stream, revision + 1);
    lines.push({ stream, revision, type, schemaVersion, data, metadata: { actor, at, tool: TOOL }, position: lines.length + 1 });
  };
  append(
    'gateway',
    'GatewayInitialized',
    1,
    {
      publicHost: HOST,
      port: 1194,
      proto: 'udp',
      vpnNetwork: '10.8.0.0/24',
      routes: ROUTES,
      caCertificatePem: caCert,
      serverCertificatePem: serverCert,
      serverCommonName,
    },
    initAt.toISOString(),
    'root',
  );

  // ---- users ----
  interface User {
    first: string;
    last: string;
    email: string;
    traffic: 'all' | 'partial';
    expires: string;
    reason: string;
    at: string;
    profileId: string;
    serial: string;
    keyPem: string;
    profile: string;
  }
  const users: User[] = [];
  const issue = async (first: string, last: string, email: string, traffic: 'all' | 'partial', expires: string, reason: string, at: string) => {
    const keys = await generateRsaKeyPair(2048);
    const profileId = profileIdOf(email, traffic);
    const s = serial();
    const notBefore = new Date(Date.parse(at) - 300_000);
    const notAfter = new Date(`${expires}T23:59:59.000Z`);
    const cert = createClientCertificate({ ca, publicKeyPem: keys.publicKeyPem, commonName: profileId, serialHex: s, validity: { notBefore, notAfter } });
    const routes = traffic === 'partial' ? ROUTES : [];
    append(`profile-${profileId}`, 'ProfileIssued', 1, {
      profileId,
      generation: 1,
      email,
      traffic,
      name: { first, last },
      expires,
      creationReason: reason,
      certificate: { serial: s, notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(), pem: cert },
      routes,
    }, at);
    const profile = renderProfile10({ traffic, routes, serverCommonName, ca: caCert, cert, key: keys.privateKeyPem, tlsCrypt });
    const user = { first, last, email, traffic, expires, reason, at, profileId, serial: s, keyPem: keys.privateKeyPem, profile };
    users.push(user);
    return user;
  };

  const alice = await issue('Alice', 'Archer', 'alice@example.com', 'all', '2035-12-31', 'operations staff', '2025-02-10T10:00:00.000Z');
  const bob = await issue('Bob', 'Builder', 'bob@example.com', 'partial', '2035-06-30', 'contractor: build network only', '2025-02-11T14:30:00.000Z');
  append(`profile-${bob.profileId}`, 'ProfileResent', 1, { serial: bob.serial, via: 'smtp' }, '2025-02-12T08:15:00.000Z');
  const carol = await issue('Carol', 'Clark', 'carol@example.com', 'all', '2035-12-31', 'finance', '2025-02-20T09:00:00.000Z');
  const dave = await issue('Dave', 'Dunn', 'dave@example.com', 'partial', '2035-09-30', 'on-call access', '2025-03-03T16:45:00.000Z');
  append(`profile-${dave.profileId}`, 'ProfileDeliveryFailed', 1, { serial: dave.serial, delivery: 'issued', error: '554 Message rejected: Email address is not verified' }, '2025-03-03T16:45:01.000Z');
  append(`profile-${dave.profileId}`, 'ProfileResent', 1, { serial: dave.serial, via: 'smtp' }, '2025-03-04T09:00:00.000Z');
  // Still listed, but its certificate ran out before the backup: no key or profile is kept for it.
  const erin = await issue('Erin', 'Evans', 'erin@example.com', 'all', '2025-05-15', 'two-month project', '2025-03-15T11:00:00.000Z');
  append(`profile-${carol.profileId}`, 'ProfileRevoked', 1, { serials: [carol.serial], reason: 'left the company', crlReason: 'cessationOfOperation' }, '2025-04-30T17:00:00.000Z');
  // Alice holds a partial profile too: one person, both modes.
  const alicePartial = await issue('Alice', 'Archer', 'alice@example.com', 'partial', '2035-12-31', 'operations staff, split tunnel', '2025-05-02T12:00:00.000Z');

  // ---- the archive ----
  const events = Buffer.from(lines.map((l) => `${JSON.stringify(l)}\n`).join(''), 'utf8');
  const kept = [alice, bob, dave, alicePartial].sort((a, b) => (a.profileId < b.profileId ? -1 : 1));
  const members: [string, Buffer][] = [
    [MEMBER.events, events],
    [MEMBER.caKey, Buffer.from(caKeys.privateKeyPem)],
    [MEMBER.caCert, Buffer.from(caCert)],
    [MEMBER.serverKey, Buffer.from(serverKeys.privateKeyPem)],
    [MEMBER.serverCert, Buffer.from(serverCert)],
    [MEMBER.tlsCryptKey, Buffer.from(tlsCrypt)],
    [MEMBER.profileIdKey, Buffer.from(profileIdKey)],
    ...kept.map((u): [string, Buffer] => [MEMBER.clientKey(u.serial), Buffer.from(u.keyPem)]),
    ...kept.map((u): [string, Buffer] => [MEMBER.profile(u.profileId, u.serial), Buffer.from(u.profile)]),
    [MEMBER.gatewayConf, Buffer.from(`ROUTES="${ROUTES.join(' ')}"\nVPN_NETWORK=10.8.0.0/24\nCRL_VALIDITY_DAYS=3650\n`)],
    [
      MEMBER.emailConf,
      Buffer.from('AWS_REGION=us-east-1\nSMTP_USERNAME=fixture-smtp-user\nSMTP_PASSWORD=fixture-smtp-password-not-a-secret\nFROM_EMAIL=no_reply@example.com\nENVIRONMENT_NAME=Old VPN gateway\n'),
    ],
  ];
  const manifest = {
    formatVersion: '1.0',
    ledgerVersion: '1.0.3',
    hostname: 'gw-old',
    createdAt: TAKEN_AT,
    eventCount: lines.length,
    lastPosition: lines.length,
    sha256: Object.fromEntries(members.map(([path, data]) => [path, createHash('sha256').update(data).digest('hex')])),
  };

  mkdirSync(outputDir, { recursive: true });
  const archivePath = join(outputDir, `${FIXTURE}.tar.gz`);
  rmSync(archivePath, { force: true });
  const writer = TarGzFileWriter.create(archivePath);
  const mtime = Math.floor(Date.parse(TAKEN_AT) / 1000);
  await writer.tar.addBuffer(MEMBER.manifest, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), { mode: 0o600, mtime });
  for (const [path, data] of members) await writer.tar.addBuffer(path, data, { mode: 0o600, mtime });
  const written = await writer.close();

  // ---- what a restore must show ----
  const active = users.filter((u) => u !== carol);
  const expected = {
    note: `what ov_restore of ${FIXTURE}.tar.gz must give; written with it by scripts/make-fixtures-1.0.ts`,
    archiveSha256: written.sha256,
    hostname: manifest.hostname,
    createdAt: TAKEN_AT,
    events: lines.length,
    users: active
      .map((u) => ({
        email: u.email,
        traffic: u.traffic,
        firstName: u.first,
        lastName: u.last,
        expirationDate: u.expires,
        createdAt: u.at,
        autoRenew: false,
        serial: u.serial,
        renewals: 0,
      }))
      .sort((a, b) => (a.email === b.email ? (a.traffic < b.traffic ? -1 : 1) : a.email < b.email ? -1 : 1)),
    revokedSerials: [carol.serial],
    keptSerials: kept.map((u) => u.serial).sort(),
    expiredSerials: [erin.serial],
    histories: Object.fromEntries(
      users.map((u) => [
        `${u.email} ${u.traffic}`,
        lines.filter((l) => l.stream === `profile-${u.profileId}`).map((l) => ({ type: l.type, schemaVersion: l.schemaVersion, at: l.metadata.at })),
      ]),
    ),
  };
  writeFileSync(join(outputDir, `${FIXTURE}.expected.json`), `${JSON.stringify(expected, null, 2)}\n`);
  process.stdout.write(`wrote ${archivePath} (${written.size} bytes, SHA-256 ${written.sha256}) and ${FIXTURE}.expected.json\n`);
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
main(resolve(process.argv[2] ?? join(root, 'test', 'fixtures'))).catch((error: unknown) => {
  process.stderr.write(`make-fixtures-1.0: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
