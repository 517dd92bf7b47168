// Writes the CRL file OpenVPN enforces, from the CRL projection. Rendering happens under the
// database's write lock, so of two commands revoking at once the later writer always renders
// from a projection that holds both revocations: the file on disk never loses one.
import { existsSync, readFileSync } from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import { immediateTransaction } from '../sqlite/open-database.js';
import { writeFileAtomic } from '../fs/atomic-file.js';
import { MODE } from '../fs/state-layout.js';
import { crlDerToPem, issuerFromCertificate, readCrlNumber, signCrl } from './crl-encoder.js';

export interface CrlSource {
  crlEntryCount(): number;
  crlEntryDers(): Iterable<Buffer>;
}

export interface CrlPublication {
  readonly number: bigint;
  readonly entries: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
}

interface CrlStateRow {
  number: string;
  entries: number;
  this_update: string;
  next_update: string;
}

export class CrlPublisher {
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly source: CrlSource,
    private readonly files: { crlPath: string; caCertPath: string; caKeyPath: string },
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS crl_state (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      number TEXT NOT NULL,
      entries INTEGER NOT NULL,
      this_update TEXT NOT NULL,
      next_update TEXT NOT NULL
    )`);
  }

  /** The last CRL written, as recorded; undefined before the first. */
  lastPublication(): CrlPublication | undefined {
    const r = this.db.prepare<[], CrlStateRow>('SELECT * FROM crl_state WHERE id = 1').get();
    return r
      ? { number: BigInt(r.number), entries: r.entries, thisUpdate: new Date(r.this_update), nextUpdate: new Date(r.next_update) }
      : undefined;
  }

  /** True when the file is missing or lags the projection (a command died between append and write). */
  isStale(): boolean {
    const last = this.lastPublication();
    return !existsSync(this.files.crlPath) || last === undefined || last.entries !== this.source.crlEntryCount();
  }

  /** `after`: a number the new CRL must exceed too (a restore passes the backed-up gateway's). */
  publish(options: { now: Date; validityDays: number; after?: bigint }): CrlPublication {
    const issuer = issuerFromCertificate(
      readFileSync(this.files.caCertPath, 'utf8'),
      readFileSync(this.files.caKeyPath, 'utf8'),
    );
    return immediateTransaction(this.db, () => {
      // The number only grows: past what this database recorded and past the file on disk
      // (which may come from before a restore).
      const recorded = this.lastPublication()?.number ?? 0n;
      const onDisk = existsSync(this.files.crlPath) ? (readCrlNumber(readFileSync(this.files.crlPath)) ?? 0n) : 0n;
      const floor = options.after ?? 0n;
      const number = [recorded, onDisk, floor].reduce((a, b) => (a > b ? a : b)) + 1n;
      const thisUpdate = options.now;
      const nextUpdate = new Date(options.now.getTime() + options.validityDays * 86_400_000);
      const entries = this.source.crlEntryCount();
      const der = signCrl({ issuer, crlNumber: number, thisUpdate, nextUpdate, entries: this.source.crlEntryDers() });
      writeFileAtomic(this.files.crlPath, crlDerToPem(der), MODE.publicFile);
      this.db
        .prepare(
          `INSERT INTO crl_state (id, number, entries, this_update, next_update) VALUES (1, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET number = excluded.number, entries = excluded.entries,
             this_update = excluded.this_update, next_update = excluded.next_update`,
        )
        .run(number.toString(), entries, thisUpdate.toISOString(), nextUpdate.toISOString());
      return { number, entries, thisUpdate, nextUpdate };
    });
  }
}
