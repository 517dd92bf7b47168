// Benchmark: our in-process CRL encoder against `openssl ca -gencrl` over the same N revoked
// certificates. Not a test; run after building:
//
//   npx tsc -p tsconfig.build.json && node dist/test/bench/crl-bench.js [N]   (default N = 100000)
//
// The question it answers: is rendering the CRL ourselves (entries encoded once, then one
// concatenate-and-sign pass per CRL) at least as fast as shelling out to OpenSSL, which re-reads
// and re-encodes the whole index every time? Both outputs are checked with openssl before any
// number is believed.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  crlDerToPem,
  encodeRevokedEntry,
  issuerFromCertificate,
  signCrl,
  type CrlIssuer,
  type CrlReason,
  type RevokedEntry,
} from '../../adapters/pki/crl-encoder.js';

const DAY = 24 * 60 * 60 * 1000;
const REASONS: readonly CrlReason[] = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation'];

function openssl(cwd: string, args: string[]): { status: number | null; stdout: string; output: string } {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, output: r.stdout + r.stderr };
}

function opensslOk(cwd: string, args: string[]): string {
  const r = openssl(cwd, args);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}):\n${r.output}`);
  return r.stdout;
}

function makeCa(dir: string): void {
  writeFileSync(
    join(dir, 'req.cnf'),
    [
      '[ req ]', 'distinguished_name = dn', 'prompt = no', 'utf8 = yes', 'string_mask = utf8only', 'x509_extensions = v3_ca',
      '[ dn ]', 'C = DE', 'O = Ovpn Ledger Bench', 'CN = Ovpn Ledger Bench CA',
      '[ v3_ca ]', 'subjectKeyIdentifier = hash', 'basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign',
      '',
    ].join('\n'),
  );
  opensslOk(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-config', 'req.cnf']);
}

/** Random positive 16-byte serials (high bit set in about half of them), unique. */
function randomEntries(n: number, now: number): RevokedEntry[] {
  const seen = new Set<string>();
  const entries: RevokedEntry[] = [];
  while (entries.length < n) {
    const bytes = randomBytes(16);
    if (bytes[0] === 0) continue; // a leading zero byte would make the magnitude non-minimal
    const serialHex = bytes.toString('hex').toUpperCase();
    if (seen.has(serialHex)) continue;
    seen.add(serialHex);
    // Whole seconds, since both CRL encodings drop sub-second precision anyway.
    const revokedAt = new Date(Math.floor((now - Math.random() * 3 * 365 * DAY) / 1000) * 1000);
    entries.push({ serialHex, revokedAt, reason: REASONS[entries.length % REASONS.length]! });
  }
  return entries;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');
/** The YYMMDDHHMMSSZ form openssl's index.txt uses. */
function indexTime(d: Date): string {
  return (
    pad2(d.getUTCFullYear() % 100) + pad2(d.getUTCMonth() + 1) + pad2(d.getUTCDate()) +
    pad2(d.getUTCHours()) + pad2(d.getUTCMinutes()) + pad2(d.getUTCSeconds()) + 'Z'
  );
}

/** An `openssl ca` database and config holding the same revocations, so -gencrl emits the same CRL content. */
function writeOpensslCa(dir: string, entries: readonly RevokedEntry[], now: number): void {
  const expiry = indexTime(new Date(now + 365 * DAY));
  const lines = entries.map((e, i) => {
    // No reason in the index means no reasonCode extension, which is what we emit for 'unspecified'.
    const revoked = e.reason === 'unspecified' ? indexTime(e.revokedAt) : `${indexTime(e.revokedAt)},${e.reason}`;
    return `R\t${expiry}\t${revoked}\t${e.serialHex}\tunknown\t/CN=user${i}\n`;
  });
  writeFileSync(join(dir, 'index.txt'), lines.join(''));
  writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
  writeFileSync(join(dir, 'crlnumber'), '2A\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ ca ]', 'default_ca = CA_default',
      '[ CA_default ]', `dir = ${dir}`, 'database = $dir/index.txt', 'crlnumber = $dir/crlnumber',
      'certificate = $dir/ca.pem', 'private_key = $dir/ca.key', 'default_md = sha256', 'default_crl_days = 7',
      'crl_extensions = crl_ext',
      '[ crl_ext ]', 'authorityKeyIdentifier = keyid:always',
      '',
    ].join('\n'),
  );
}

function time<T>(fn: () => T): { result: T; seconds: number } {
  const start = performance.now();
  const result = fn();
  return { result, seconds: (performance.now() - start) / 1000 };
}

/** Serials openssl lists in a CRL, to compare contents rather than trust either encoder. */
function listedSerials(dir: string, crlPath: string): string[] {
  const text = opensslOk(dir, ['crl', '-in', crlPath, '-noout', '-text']);
  return [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!);
}

function verified(dir: string, crlPath: string): boolean {
  const r = openssl(dir, ['crl', '-in', crlPath, '-CAfile', join(dir, 'ca.pem'), '-noout']);
  return r.status === 0 && r.output.includes('verify OK');
}

function signAll(issuer: CrlIssuer, encoded: readonly Buffer[], now: number): Buffer {
  return signCrl({ issuer, crlNumber: 42n, thisUpdate: new Date(now), nextUpdate: new Date(now + 7 * DAY), entries: encoded });
}

function main(): number {
  const n = Number(process.argv[2] ?? 100_000);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`usage: node crl-bench.js [N]  (N a positive integer, got ${process.argv[2]})`);
  const dir = mkdtempSync(join(tmpdir(), 'crl-bench-'));
  try {
    makeCa(dir);
    const issuer = issuerFromCertificate(readFileSync(join(dir, 'ca.pem'), 'utf8'), readFileSync(join(dir, 'ca.key'), 'utf8'));
    const now = Date.now();
    const entries = randomEntries(n, now);

    // Let V8 compile the hot paths first, so the numbers describe a long-running process.
    signAll(issuer, randomEntries(1_000, now).map(encodeRevokedEntry), now);

    const full = time(() => signAll(issuer, entries.map(encodeRevokedEntry), now));
    const encoded = entries.map(encodeRevokedEntry);
    const incremental = time(() => signAll(issuer, encoded, now));
    const oursPath = join(dir, 'ours.pem');
    writeFileSync(oursPath, crlDerToPem(full.result));

    writeOpensslCa(dir, entries, now);
    const opensslPath = join(dir, 'openssl.pem');
    const gencrl = time(() => openssl(dir, ['ca', '-gencrl', '-config', 'ca.cnf', '-out', opensslPath]));
    if (gencrl.result.status !== 0) throw new Error(`openssl ca -gencrl failed:\n${gencrl.result.output}`);
    const opensslDerBytes = Buffer.from(readFileSync(opensslPath, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64').length;

    const oursVerified = verified(dir, oursPath);
    const opensslVerified = verified(dir, opensslPath);
    const oursSerials = listedSerials(dir, oursPath);
    const opensslSerials = new Set(listedSerials(dir, opensslPath));
    const sameSerials = oursSerials.length === opensslSerials.size && oursSerials.every((s) => opensslSerials.has(s));

    const mb = (bytes: number): string => (bytes / 1_000_000).toFixed(2);
    const rows: [string, number, number, number][] = [
      ['ours: encodeRevokedEntry x N + signCrl', n, full.seconds, full.result.length],
      ['ours: signCrl over pre-encoded entries', n, incremental.seconds, incremental.result.length],
      ['openssl ca -gencrl (process)', n, gencrl.seconds, opensslDerBytes],
    ];
    const header = ['what', 'entries', 'seconds', 'MB of CRL (DER)'];
    const cells = [header, ...rows.map(([what, count, seconds, bytes]) => [what, String(count), seconds.toFixed(3), mb(bytes)])];
    const widths = header.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
    for (const row of cells) {
      console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
    }
    console.log('');
    console.log(`openssl crl -CAfile: ours ${oursVerified ? 'verify OK' : 'VERIFY FAILED'}, openssl's ${opensslVerified ? 'verify OK' : 'VERIFY FAILED'}`);
    console.log(`entries listed by openssl crl -text: ours ${oursSerials.length} of ${n}, openssl's ${opensslSerials.size}; same serials: ${sameSerials ? 'yes' : 'NO'}`);
    const ok = oursVerified && opensslVerified && oursSerials.length === n && sameSerials;
    const noSlower = full.seconds <= gencrl.seconds;
    console.log(
      `ours (encode + sign, ${full.seconds.toFixed(3)} s) was ${noSlower ? 'no slower than' : 'SLOWER than'} openssl ca -gencrl (${gencrl.seconds.toFixed(3)} s): ${noSlower ? 'yes' : 'no'}` +
        ` (${(gencrl.seconds / full.seconds).toFixed(1)}x; pre-encoded ${(gencrl.seconds / incremental.seconds).toFixed(1)}x)`,
    );
    return ok ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = main();
