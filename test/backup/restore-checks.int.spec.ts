// What ov_restore checks beyond the hashes: an archive can be internally consistent (every SHA-256
// recomputed) and still not be a gateway that works. Starting from the committed 1.0 fixture (whose
// manifest has no checksum of its own, so a consistent forgery is easy to make), each case changes
// one thing and the dry run must refuse it, naming what is wrong. Nothing is written: --dry-run.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as E from 'fp-ts/lib/Either.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTar, TarPacker } from '../../adapters/archive/tar.js';
import { restoreBackup, type RestoreResult } from '../../commands/use-cases/restore.js';

const FIXTURE = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'backup-1.0-gw-old.tar.gz');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let members: [string, Buffer][];
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ovl-restore-checks-'));
  members = [];
  async function* one() {
    yield gunzipSync(readFileSync(FIXTURE));
  }
  for await (const entry of readTar(one())) {
    const parts: Buffer[] = [];
    for await (const p of entry.body) parts.push(p);
    members.push([entry.path, Buffer.concat(parts)]);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Line {
  stream: string;
  revision: number;
  type: string;
  data: Record<string, unknown>;
  position: number;
}

const get = (list: readonly [string, Buffer][], path: string): Buffer => list.find(([p]) => p === path)![1];
const events = (list: readonly [string, Buffer][]): Line[] =>
  get(list, 'events.ndjson')
    .toString()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
const withEvents = (list: [string, Buffer][], lines: Line[]): [string, Buffer][] =>
  list.map(([p, d]) => [p, p === 'events.ndjson' ? Buffer.from(lines.map((l) => `${JSON.stringify(l)}\n`).join('')) : d]);
const issuedOf = (list: readonly [string, Buffer][], email: string, traffic: string) =>
  events(list).find((l) => l.type === 'ProfileIssued' && l.data['email'] === email && l.data['traffic'] === traffic)!;
const serialOf = (list: readonly [string, Buffer][], email: string, traffic: string) =>
  (issuedOf(list, email, traffic).data['certificate'] as { serial: string }).serial;

let n = 0;
/** Re-packs the members with a 1.0 manifest whose hashes (and event count) match them. */
async function forge(list: [string, Buffer][], manifestChanges: Record<string, unknown> = {}): Promise<string> {
  const manifest = JSON.parse(get(members, 'manifest.json').toString()) as Record<string, unknown>;
  const body = list.filter(([p]) => p !== 'manifest.json');
  const lines = events(body);
  Object.assign(manifest, {
    eventCount: lines.length,
    lastPosition: lines.at(-1)?.position ?? 0,
    sha256: Object.fromEntries(body.map(([p, d]) => [p, sha256(d)])),
    ...manifestChanges,
  });
  const out: Buffer[] = [];
  const packer = new TarPacker(async (c) => {
    out.push(Buffer.from(c));
  });
  await packer.addBuffer('manifest.json', Buffer.from(JSON.stringify(manifest, null, 2)), { mode: 0o600, mtime: 0 });
  for (const [p, d] of body) await packer.addBuffer(p, d, { mode: 0o600, mtime: 0 });
  await packer.finish();
  const path = join(dir, `forged-${n++}.tar.gz`);
  writeFileSync(path, gzipSync(Buffer.concat(out)));
  return path;
}

async function dryRun(path: string): Promise<E.Either<string, RestoreResult>> {
  const result = await restoreBackup(
    { archivePath: path, stateDir: join(dir, 'never', 'state'), configDir: join(dir, 'never', 'config'), dryRun: true, force: false, now: new Date('2026-01-01T00:00:00Z') },
    () => {
      throw new Error('a dry run must not open a state');
    },
  );
  return E.mapLeft((f: { message: string }) => f.message)(result);
}

async function refusal(path: string): Promise<string> {
  const result = await dryRun(path);
  if (E.isRight(result)) throw new Error('the archive was accepted');
  expect(result.left).toMatch(/; nothing was changed$/);
  return result.left;
}

const copy = (): [string, Buffer][] => members.map(([p, d]) => [p, Buffer.from(d)]);

describe('the committed 1.0 fixture', () => {
  it('passes every check, reading six ProfileIssued events through the upcaster', async () => {
    const result = await dryRun(FIXTURE);
    expect(E.isRight(result) && result.right).toMatchObject({
      dryRun: true,
      header: { formatVersion: '1.0', hostname: 'gw-old', ledgerVersion: '1.0.3' },
      summary: { users: { all: { active: 2, revoked: 1 }, partial: { active: 3, revoked: 0 } }, renewed: 0, crl: { serials: 1 }, events: 11 },
      clientKeys: 4,
      profiles: 4,
      upcast: 6,
    });
  });

  it('re-packed unchanged (hashes recomputed) still passes: the forgeries below differ by one thing only', async () => {
    expect(E.isRight(await dryRun(await forge(copy())))).toBe(true);
  });
});

describe('a consistent archive that is not a working gateway is refused', () => {
  it('a client key that is not the key of its certificate', async () => {
    const list = copy();
    const bob = serialOf(list, 'bob@example.com', 'partial');
    const dave = serialOf(list, 'dave@example.com', 'partial');
    const swapped = list.map(([p, d]): [string, Buffer] => [p, p === `keys/clients/${bob}.key` ? get(list, `keys/clients/${dave}.key`) : d]);
    expect(await refusal(await forge(swapped))).toContain(`keys/clients/${bob}.key is not the private key of certificate ${bob}`);
  });

  it('a CA key that is not the CA certificate’s, or a server certificate the log did not record', async () => {
    const list = copy();
    const wrongKey = list.map(([p, d]): [string, Buffer] => [p, p === 'keys/ca.key' ? get(list, 'keys/server.key') : d]);
    expect(await refusal(await forge(wrongKey))).toContain('keys/ca.key is not the private key of the CA certificate in the event log');
    const wrongCert = list.map(([p, d]): [string, Buffer] => [p, p === 'keys/server.crt' ? get(list, 'keys/ca.crt') : d]);
    expect(await refusal(await forge(wrongCert))).toContain('keys/server.crt is not the server certificate the event log records');
  });

  it('a profile-id key that does not map the users to their streams', async () => {
    const list = copy().map(([p, d]): [string, Buffer] => [p, p === 'keys/profile-id.key' ? Buffer.from('cd'.repeat(32)) : d]);
    expect(await refusal(await forge(list))).toMatch(/keys\/profile-id\.key does not map \S+ \((all|partial)\) to its stream: it is not this gateway's key/);
  });

  it('a profile that carries another certificate than its own', async () => {
    const list = copy();
    const alice = issuedOf(list, 'alice@example.com', 'all');
    const bob = issuedOf(list, 'bob@example.com', 'partial');
    const bobPath = `profiles/${String(bob.data['profileId'])}/${serialOf(list, 'bob@example.com', 'partial')}.ovpn`;
    const alicePem = (alice.data['certificate'] as { pem: string }).pem.trim();
    const bobPem = (bob.data['certificate'] as { pem: string }).pem.trim();
    const forged = list.map(([p, d]): [string, Buffer] => [p, p === bobPath ? Buffer.from(d.toString().replace(bobPem, alicePem)) : d]);
    expect(await refusal(await forge(forged))).toContain(`${bobPath}: its <cert> is not the certificate of serial`);
  });

  it('a profile with a block twice, or without one, or with a tls-crypt key that is not the gateway’s', async () => {
    const list = copy();
    const bob = issuedOf(list, 'bob@example.com', 'partial');
    const bobPath = `profiles/${String(bob.data['profileId'])}/${serialOf(list, 'bob@example.com', 'partial')}.ovpn`;
    const changed = (change: (profile: string) => string) => list.map(([p, d]): [string, Buffer] => [p, p === bobPath ? Buffer.from(change(d.toString())) : d]);
    const caBlock = (profile: string) => /^<ca>\n[\s\S]*?\n<\/ca>\n/m.exec(profile)![0];
    // Its own CA certificate twice: which one would OpenVPN take? Refused, not guessed.
    expect(await refusal(await forge(changed((t) => `${t}${caBlock(t)}`)))).toContain(`${bobPath}: its <ca> is not the CA certificate of serial`);
    expect(await refusal(await forge(changed((t) => t.replace(caBlock(t), ''))))).toContain(`${bobPath}: its <ca> is not the CA certificate of serial`);
    expect(await refusal(await forge(changed((t) => t.replace(/^([0-9a-f]{32})$/m, 'f'.repeat(32)))))).toContain(`${bobPath}: its <tls-crypt> is not the tls-crypt of serial`);
  });

  it('a profile or key missing for a certificate that could still connect', async () => {
    const list = copy();
    const serial = serialOf(list, 'alice@example.com', 'all');
    expect(await refusal(await forge(list.filter(([p]) => !p.endsWith(`/${serial}.ovpn`))))).toContain(
      `the profile of alice@example.com (all), serial ${serial}, is missing: the archive is incomplete`,
    );
    expect(await refusal(await forge(list.filter(([p]) => p !== `keys/clients/${serial}.key`)))).toContain(`comes without its private key (keys/clients/${serial}.key)`);
  });

  it('the key of a revoked certificate', async () => {
    const list = copy();
    const carol = serialOf(list, 'carol@example.com', 'all');
    const extra: [string, Buffer][] = [...list.slice(0, 8), [`keys/clients/${carol}.key`, get(list, 'keys/ca.key')], ...list.slice(8)];
    expect(await refusal(await forge(extra))).toContain(`keys/clients/${carol}.key is not the key of a certificate that could still connect when the backup was taken`);
  });

  it('a history with a gap, a certificate that is not the one recorded, or a count that does not match', async () => {
    const list = copy();
    const lines = events(list);
    const failed = lines.findIndex((l) => l.type === 'ProfileDeliveryFailed');
    expect(await refusal(await forge(withEvents(list, lines.filter((_, i) => i !== failed))))).toMatch(/expected revision 1 of this stream \(revisions start at 0 and have no gaps\)/);

    const swapped = events(list);
    const carol = swapped.find((l) => l.type === 'ProfileIssued' && l.data['email'] === 'carol@example.com')!;
    const alice = swapped.find((l) => l.type === 'ProfileIssued' && l.data['email'] === 'alice@example.com')!;
    (carol.data['certificate'] as { pem: string }).pem = (alice.data['certificate'] as { pem: string }).pem;
    expect(await refusal(await forge(withEvents(list, swapped)))).toMatch(/the certificate of serial \S+ has serial \S+ inside/);

    expect(await refusal(await forge(list, { eventCount: 12 }))).toContain('events.ndjson holds 11 events, but the manifest says 12');
  });

  it('a certificate whose signature is not the CA’s, even though all it says is what the event records', async () => {
    const list = copy();
    const lines = events(list);
    const bob = lines.find((l) => l.type === 'ProfileIssued' && l.data['email'] === 'bob@example.com')!;
    const certificate = bob.data['certificate'] as { pem: string; serial: string };
    // The last octet of the DER is the signature's: the certificate still reads the same.
    const der = Buffer.from(certificate.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 1]! ^= 0x01;
    certificate.pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').trim()}\n-----END CERTIFICATE-----\n`;
    expect(await refusal(await forge(withEvents(list, lines)))).toContain(`the certificate of serial ${certificate.serial} is not signed by the gateway's CA`);
  });
});
