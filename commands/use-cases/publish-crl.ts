// Rendering the CRL after a revocation, and repairing a CRL file that lags the log (a command
// killed between its append and its CRL write): every mutating command calls this.
import type { CrlPublication } from '../../adapters/pki/crl-publisher.js';
import type { Ledger } from '../ledger.js';

export function publishCrl(ledger: Ledger): CrlPublication {
  const publication = ledger.crl.publish({ now: ledger.clock.now(), validityDays: ledger.settings.crlValidityDays });
  ledger.log.info(
    { number: publication.number.toString(), entries: publication.entries, nextUpdate: publication.nextUpdate.toISOString() },
    'CRL published',
  );
  return publication;
}

export function repairCrlIfStale(ledger: Ledger): CrlPublication | undefined {
  return ledger.projections.gateway() && ledger.crl.isStale() ? publishCrl(ledger) : undefined;
}
