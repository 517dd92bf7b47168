// ov_init: set the gateway up once: CA, server certificate, tls-crypt key, empty CRL and the
// OpenVPN server config. A second run changes nothing.
//
// Every secret is created with an exclusive create and reused when it already exists, so a run
// killed half-way is completed by the next one, and two runs at once agree on one CA.
//
// When the log already records an initialised gateway (another gateway of a fleet sharing an
// EventStoreDB ran ov_init), this state directory must hold that gateway's CA: a run here
// without it, or with a CA of its own (from an ov_init that lost the race), is refused, never
// answered "already initialised" with keys that cannot serve the fleet's profiles.
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import type { DiscoveredNetworks, NetworkDiscovery } from '../../adapters/aws/vpc-networks.js';
import { WrongExpectedRevisionError } from '../../adapters/eventstore/event-store.js';
import { createExclusive } from '../../adapters/fs/exclusive-file.js';
import { ensureStateDirectories, MODE } from '../../adapters/fs/state-layout.js';
import {
  certificateValidity,
  createCaCertificate,
  createServerCertificate,
  drawSerial,
  generateRsaKeyPair,
  tlsCryptKey,
} from '../../adapters/pki/certificates.js';
import type { CrlPublication } from '../../adapters/pki/crl-publisher.js';
import type { DnsPlan } from '../../domain/dns.js';
import { refused, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { discoveryFailure, dnsPlanOf, networksDiscoveredEvent, writeServerConfig } from './gateway-networks.js';
import { appendAndProject, GATEWAY_STREAM } from './profile-stream.js';
import { publishCrl } from './publish-crl.js';

export interface InitInput {
  readonly publicHost: string;
  readonly port: number;
  readonly proto: 'udp' | 'tcp';
}

export interface InitResult {
  readonly alreadyInitialised: boolean;
  readonly caFingerprint: string;
  readonly caNotAfter: string;
  readonly serverNotAfter: string;
  readonly serverConf: string;
  readonly crl: CrlPublication | undefined;
  /** What discovery found, when gateway.conf asked for it (VPC_ID or AWS_REGION, no ROUTES). */
  readonly networks?: DiscoveredNetworks;
  readonly dns?: DnsPlan;
}

export interface InitOptions {
  /** Runs before anything is created, so a failed discovery leaves no half-made gateway. */
  readonly discover?: NetworkDiscovery;
}

const CA_DAYS = 3650;

export async function initialiseGateway(ledger: Ledger, input: InitInput, options: InitOptions = {}): Promise<E.Either<Failure, InitResult>> {
  const { layout } = ledger;
  const existing = ledger.projections.gateway();
  if (existing) {
    const foreign = foreignCa(layout, existing.caCertificatePem);
    if (foreign !== undefined) return E.left(refused(foreign));
    if (existing.publicHost !== input.publicHost || existing.port !== input.port || existing.proto !== input.proto) {
      return E.left(
        refused(
          `this gateway is already initialised for ${existing.publicHost}:${existing.port}/${existing.proto}; ov_init changes nothing once set up`,
        ),
      );
    }
    return E.right(summary(existing.caCertificatePem, existing.serverCertificatePem, layout.serverConf, true, undefined));
  }

  let networks: DiscoveredNetworks | undefined;
  if (options.discover) {
    const found = await options.discover();
    if (E.isLeft(found)) return E.left(discoveryFailure(found.left));
    networks = found.right;
    ledger.log.info({ vpcId: networks.vpcId, routes: networks.routes }, 'networks discovered');
  }

  ensureStateDirectories(layout);
  const now = ledger.clock.now();
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const days = (n: number) => new Date(now.getTime() + n * 86_400_000);
  const serial = () => drawSerial(ledger.random, () => false);

  const caKeyPem = await createExclusive(layout.caKey, MODE.secretFile, async () => (await generateRsaKeyPair(3072)).privateKeyPem);
  const caPublicKeyPem = publicKeyOf(caKeyPem);
  const caCertPem = await createExclusive(layout.caCert, MODE.publicFile, async () =>
    createCaCertificate({
      keys: { privateKeyPem: caKeyPem, publicKeyPem: caPublicKeyPem },
      commonName: `ovpn-ledger CA ${ledger.random(4).toString('hex')}`,
      serialHex: serial(),
      validity: { notBefore, notAfter: days(CA_DAYS) },
    }),
  );
  const serverKeyPem = await createExclusive(layout.serverKey, MODE.secretFile, async () => (await generateRsaKeyPair(2048)).privateKeyPem);
  const serverCertPem = await createExclusive(layout.serverCert, MODE.publicFile, async () =>
    createServerCertificate({
      ca: { certificatePem: caCertPem, privateKeyPem: caKeyPem },
      publicKeyPem: publicKeyOf(serverKeyPem),
      commonName: `server-${ledger.random(6).toString('hex')}`,
      serialHex: serial(),
      validity: { notBefore, notAfter: days(ledger.settings.serverCertDays) },
    }),
  );
  await createExclusive(layout.tlsCryptKey, MODE.secretFile, async () => tlsCryptKey(ledger.random));
  await createExclusive(layout.profileIdKey, MODE.secretFile, async () => ledger.random(32).toString('hex'));

  const dns = dnsPlanOf(ledger, networks?.primaryCidr);
  writeServerConfig(ledger, { port: input.port, proto: input.proto, vpnNetwork: ledger.settings.vpnNetwork }, dns);

  try {
    await appendAndProject(ledger, GATEWAY_STREAM, 'no_stream', [
      {
        type: 'GatewayInitialized',
        data: {
          publicHost: input.publicHost,
          port: input.port,
          proto: input.proto,
          vpnNetwork: ledger.settings.vpnNetwork,
          routes: [...ledger.settings.routes],
          caCertificatePem: caCertPem,
          serverCertificatePem: serverCertPem,
          serverCommonName: commonNameOf(serverCertPem),
        },
      },
      ...(networks ? [networksDiscoveredEvent(networks)] : []),
    ]);
  } catch (error) {
    if (error instanceof WrongExpectedRevisionError) {
      return E.left(refused('another ov_init initialised this gateway at the same moment; run ov_init again to check it'));
    }
    throw error;
  }
  const crl = publishCrl(ledger);
  return E.right({ ...summary(caCertPem, serverCertPem, layout.serverConf, false, crl), ...(networks ? { networks } : {}), dns });
}

/**
 * Why this state directory cannot serve the gateway the log records (its CA key missing, or a CA
 * that is not the recorded one), or undefined when its CA is the recorded one.
 */
function foreignCa(layout: Ledger['layout'], recordedCaPem: string): string | undefined {
  const recorded = `the event log already records an initialised gateway (CA fingerprint ${fingerprint(recordedCaPem)})`;
  const join =
    `to join that gateway's fleet, copy keys/ (mode 0700) and openvpn/ from one of its gateways, or from an ov_backup archive of it, ` +
    `into ${layout.root} (README, "A fleet shares one PKI"), then run ov_init again`;
  if (!existsSync(layout.caKey)) return `${recorded}, but ${layout.caKey} is missing here: ${join}; no key was created`;
  if (!existsSync(layout.caCert)) return `${recorded}, but ${layout.caCert} is missing here: ${join}; no key was created`;
  const ca = new X509Certificate(recordedCaPem);
  let same: boolean;
  try {
    same = new X509Certificate(readFileSync(layout.caCert)).raw.equals(ca.raw) && ca.checkPrivateKey(createPrivateKey(readFileSync(layout.caKey, 'utf8')));
  } catch {
    same = false;
  }
  return same ? undefined : `${recorded}, and the CA in ${layout.caKey} and ${layout.caCert} is another one: move keys/ and openvpn/ aside, ${join}`;
}

function summary(caPem: string, serverPem: string, serverConf: string, already: boolean, crl: CrlPublication | undefined): InitResult {
  return {
    alreadyInitialised: already,
    caFingerprint: fingerprint(caPem),
    caNotAfter: certificateValidity(caPem).notAfter,
    serverNotAfter: certificateValidity(serverPem).notAfter,
    serverConf,
    crl,
  };
}

function fingerprint(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

function commonNameOf(pem: string): string {
  return new X509Certificate(pem).subject.replace(/^CN=/, '').split('\n')[0] ?? '';
}

function publicKeyOf(privateKeyPem: string): string {
  return createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }).toString();
}
