// Makes a client's key, certificate and .ovpn, and puts the secrets on disk (0600) BEFORE any
// event names them: a process killed after the append then still has everything the event
// promises, and one killed before it leaves only unreferenced files, which `discard` removes.
import { readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../../adapters/fs/atomic-file.js';
import { ensureDirectory, MODE } from '../../adapters/fs/state-layout.js';
import { createClientCertificate, drawSerial, generateRsaKeyPair } from '../../adapters/pki/certificates.js';
import { renderClientProfile } from '../../adapters/openvpn/client-profile.js';
import type { IssuedCertificate } from '../../domain/events.js';
import { endOfUtcDay, type CalendarDate, type Traffic } from '../../domain/values.js';
import type { GatewayRow } from '../../projections/gateway.js';
import type { Ledger } from '../ledger.js';
import { dnsPlanOf } from './gateway-networks.js';

export interface PreparedProfile {
  readonly certificate: IssuedCertificate;
  readonly profile: Buffer;
  readonly profilePath: string;
  /** Removes the files when the event could not be appended. */
  discard(): void;
}

// Clients whose clock runs a little behind must not see a certificate from the future.
const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60_000;

export async function prepareClientProfile(
  ledger: Ledger,
  gateway: GatewayRow,
  request: { profileId: string; traffic: Traffic; expirationDate: CalendarDate; routes: readonly string[] },
): Promise<PreparedProfile> {
  const { layout } = ledger;
  const keys = await generateRsaKeyPair(2048);
  const serial = drawSerial(ledger.random, (s) => ledger.projections.serialExists(s));
  const notBefore = new Date(ledger.clock.now().getTime() - CLOCK_SKEW_ALLOWANCE_MS);
  const notAfter = endOfUtcDay(request.expirationDate);
  const certificatePem = createClientCertificate({
    ca: { certificatePem: gateway.caCertificatePem, privateKeyPem: readFileSync(layout.caKey, 'utf8') },
    publicKeyPem: keys.publicKeyPem,
    commonName: request.profileId,
    serialHex: serial,
    validity: { notBefore, notAfter },
  });
  const profile = Buffer.from(
    renderClientProfile({
      publicHost: gateway.publicHost,
      port: gateway.port,
      proto: gateway.proto,
      serverCommonName: gateway.serverCommonName,
      traffic: request.traffic,
      routes: request.routes,
      caCertificatePem: gateway.caCertificatePem,
      clientCertificatePem: certificatePem,
      clientPrivateKeyPem: keys.privateKeyPem,
      tlsCryptKey: readFileSync(layout.tlsCryptKey, 'utf8'),
      dns: dnsPlanOf(ledger),
    }),
    'utf8',
  );
  const keyPath = layout.clientKey(serial);
  const profilePath = layout.profile(request.profileId, serial);
  ensureDirectory(layout.clientKeysDir, MODE.privateDir);
  ensureDirectory(layout.profileDir(request.profileId), MODE.privateDir);
  writeFileAtomic(keyPath, keys.privateKeyPem, MODE.secretFile);
  writeFileAtomic(profilePath, profile, MODE.secretFile);
  return {
    certificate: {
      serial,
      notBefore: new Date(Math.floor(notBefore.getTime() / 1000) * 1000).toISOString(),
      notAfter: notAfter.toISOString(),
      pem: certificatePem,
    },
    profile,
    profilePath,
    discard: () => {
      rmSync(keyPath, { force: true });
      rmSync(profilePath, { force: true });
    },
  };
}
