// ov_server_renew: a new server key and certificate, signed by the same CA, with the same common
// name. Profiles pin the CA (`<ca>`) and the server's name (`verify-x509-name … name`), not the
// server's certificate, so every profile ever issued keeps working once OpenVPN loads the new one.
//
// Both files are written in full beside the old ones first and then renamed into place one after
// the other, so a crash leaves at worst a key that does not match its certificate, which ov_status
// reports as critical and a second ov_server_renew repairs.
import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { syncDirectory, writeFileAtomic } from '../../adapters/fs/atomic-file.js';
import { MODE } from '../../adapters/fs/state-layout.js';
import type { RestartOpenvpn, RestartOutcome } from '../../adapters/openvpn/restart-command.js';
import { createServerCertificate, drawSerial, generateRsaKeyPair } from '../../adapters/pki/certificates.js';
import { refused, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';
import { appendAndProject, GATEWAY_STREAM } from './profile-stream.js';

export interface ServerRenewalResult {
  readonly commonName: string;
  readonly serial: string;
  readonly previousSerial: string | undefined;
  readonly notAfter: string;
  readonly certificatePath: string;
  /** Absent when no restart was asked for. */
  readonly restart?: RestartOutcome;
}

export async function renewServerCertificate(
  ledger: Ledger,
  options: { readonly days: number; readonly restart?: RestartOpenvpn },
): Promise<E.Either<Failure, ServerRenewalResult>> {
  const gateway = ledger.projections.gateway();
  if (!gateway) return E.left(refused('this gateway is not initialised: run ov_init first'));
  const { layout } = ledger;
  const commonName = gateway.serverCommonName;
  let previousSerial: string | undefined;
  try {
    previousSerial = new X509Certificate(readFileSync(layout.serverCert)).serialNumber.toLowerCase();
  } catch {
    previousSerial = undefined; // missing or unreadable: renewing is exactly the repair
  }

  const now = ledger.clock.now();
  const keys = await generateRsaKeyPair(2048);
  const serial = drawSerial(ledger.random, (s) => s === previousSerial || ledger.projections.serialExists(s));
  const notAfter = new Date(now.getTime() + options.days * 86_400_000);
  const certificatePem = createServerCertificate({
    ca: { certificatePem: gateway.caCertificatePem, privateKeyPem: readFileSync(layout.caKey, 'utf8') },
    publicKeyPem: keys.publicKeyPem,
    commonName,
    serialHex: serial,
    validity: { notBefore: new Date(now.getTime() - 5 * 60_000), notAfter },
  });

  const nextKey = sibling(layout.serverKey);
  const nextCert = sibling(layout.serverCert);
  writeFileAtomic(nextKey, keys.privateKeyPem, MODE.secretFile);
  writeFileAtomic(nextCert, certificatePem, MODE.publicFile);
  renameSync(nextKey, layout.serverKey);
  renameSync(nextCert, layout.serverCert);
  syncDirectory(dirname(layout.serverKey));
  syncDirectory(dirname(layout.serverCert));

  const stream = await ledger.store.readStream(GATEWAY_STREAM);
  const last = stream.at(-1);
  const notAfterIso = new Date(Math.floor(notAfter.getTime() / 1000) * 1000).toISOString();
  await appendAndProject(ledger, GATEWAY_STREAM, last === undefined ? 'no_stream' : last.revision, [
    {
      type: 'ServerCertificateRenewed',
      data: {
        serverCertificatePem: certificatePem,
        serverCommonName: commonName,
        serial,
        ...(previousSerial === undefined ? {} : { previousSerial }),
        notAfter: notAfterIso,
      },
    },
  ]);
  ledger.log.info({ serial, previousSerial, notAfter: notAfterIso }, 'server certificate renewed');
  const restart = options.restart ? await options.restart() : undefined;
  return E.right({
    commonName,
    serial,
    previousSerial,
    notAfter: notAfterIso,
    certificatePath: layout.serverCert,
    ...(restart ? { restart } : {}),
  });
}

const sibling = (path: string) => join(dirname(path), `.${basename(path)}.next`);
