// The backup archive's structure, checked before any content is trusted: a manifest first, of a
// format this release reads (a newer one refused with a message saying to upgrade), matching its own
// checksum; then exactly the members it lists, in order, each matching its size and SHA-256. The
// archives here are made by hand (real gzip files on disk), so every way one can be wrong is tried.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventLine,
  MEMBER,
  parseManifest,
  readBackupArchive,
  renderManifest,
  type ArchivedEvent,
  type ContentSummary,
  type Manifest,
} from '../../adapters/archive/backup-archive.js';
import { TarPacker } from '../../adapters/archive/tar.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ovl-archive-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const SUMMARY: ContentSummary = {
  gateway: 'vpn.example.com:1194/udp',
  users: { all: { active: 1, revoked: 0 }, partial: { active: 0, revoked: 0 } },
  renewed: 0,
  renewals: 0,
  crl: { serials: 0, sha256: sha256(Buffer.alloc(0)) },
  caFingerprint: Array.from({ length: 32 }, () => 'AB').join(':'),
  events: 2,
};

const EVENTS: ArchivedEvent[] = [
  { streamId: 'gateway', revision: 0n, position: 1n, type: 'GatewayInitialized', schemaVersion: 1, data: { a: 1 }, metadata: { actor: 'root' } },
  { streamId: 'profile-p0123456789abcdef01234567', revision: 0n, position: 2n, type: 'ProfileIssued', schemaVersion: 2, data: { b: 2 }, metadata: { actor: 'ops' } },
];
const eventsBytes = () => Buffer.from(EVENTS.map((e) => `${eventLine(e)}\n`).join(''));

/** Members other than the manifest, as a valid archive holds them. */
function members(): [string, Buffer][] {
  return [
    [MEMBER.events, eventsBytes()],
    [MEMBER.caKey, Buffer.from('ca key')],
    [MEMBER.caCert, Buffer.from('ca cert')],
    [MEMBER.serverKey, Buffer.from('server key')],
    [MEMBER.serverCert, Buffer.from('server cert')],
    [MEMBER.tlsCryptKey, Buffer.from('tls-crypt')],
    [MEMBER.profileIdKey, Buffer.from('ab'.repeat(32))],
    [MEMBER.clientKey('0a1b'), Buffer.from('client key')],
    [MEMBER.profile('p0123456789abcdef01234567', '0a1b'), Buffer.from('profile')],
    [MEMBER.gatewayConf, Buffer.from('ROUTES=""\n')],
  ];
}

function manifestFor(list: readonly [string, Buffer][], overrides: Partial<Parameters<typeof renderManifest>[0]> = {}): Buffer {
  return renderManifest({
    ledgerVersion: '0.1.0',
    hostname: 'gw',
    createdAt: '2026-01-01T00:00:00.000Z',
    eventCount: EVENTS.length,
    lastPosition: 2n,
    crlNumber: 7n,
    summary: SUMMARY,
    members: list.map(([path, data]) => ({ path, size: data.length, sha256: sha256(data) })),
    ...overrides,
  });
}

let counter = 0;
async function archive(entries: readonly [string, Buffer][]): Promise<string> {
  const out: Buffer[] = [];
  const packer = new TarPacker(async (c) => {
    out.push(Buffer.from(c));
  });
  for (const [path, data] of entries) await packer.addBuffer(path, data, { mode: 0o600, mtime: 0 });
  await packer.finish();
  const path = join(dir, `a${counter++}.tar.gz`);
  writeFileSync(path, gzipSync(Buffer.concat(out)));
  return path;
}

const valid = async (): Promise<string> => archive([[MEMBER.manifest, manifestFor(members())], ...members()]);

interface Seen {
  manifest?: Manifest;
  events: ArchivedEvent[];
  members: string[];
}

async function read(path: string, refuseEvents = false): Promise<Seen> {
  const seen: Seen = { events: [], members: [] };
  await readBackupArchive(path, {
    manifest: (m) => (seen.manifest = m),
    event: (e) => {
      if (refuseEvents) throw new Error('the visitor refuses this event');
      seen.events.push(e);
    },
    eventsDone: () => undefined,
    member: (p) => {
      seen.members.push(p);
    },
  });
  return seen;
}

async function refusal(path: string, refuseEvents = false): Promise<string> {
  try {
    await read(path, refuseEvents);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the archive was accepted');
}

describe('a well-formed archive', () => {
  it('is read in full: the manifest, every event in order, every member after it', async () => {
    const seen = await read(await valid());
    expect(seen.manifest).toMatchObject({ formatVersion: '1.1', hostname: 'gw', eventCount: 2, lastPosition: 2n, crlNumber: 7n, ordered: true });
    expect(seen.events).toEqual(EVENTS);
    expect(seen.members).toEqual(members().slice(1).map(([p]) => p));
  });

  it('reports the size and SHA-256 of the file itself', async () => {
    const path = await valid();
    const { readFileSync } = await import('node:fs');
    const bytes = readFileSync(path);
    const facts = await readBackupArchive(path, { manifest: () => undefined, event: () => undefined, eventsDone: () => undefined, member: () => undefined });
    expect(facts).toMatchObject({ size: bytes.length, sha256: sha256(bytes) });
  });
});

describe('an archive whose members do not match the manifest is refused', () => {
  it('a changed byte in any member', async () => {
    for (const [i, [path]] of members().entries()) {
      const list = members();
      const tampered = list.map(([p, d], j): [string, Buffer] => {
        if (j !== i) return [p, d];
        const copy = Buffer.from(d);
        const at = Math.floor(copy.length / 2);
        copy[at] = copy[at]! ^ 0x01;
        return [p, copy];
      });
      expect(await refusal(await archive([[MEMBER.manifest, manifestFor(list)], ...tampered])), path).toContain(
        `${path} does not match its SHA-256 in the manifest: the archive was altered or damaged`,
      );
    }
  });

  it('a changed event line is "altered", even when the visitor would refuse the event first', async () => {
    const list = members();
    const events = Buffer.from(eventsBytes().toString().replace('"ops"', '"opz"'));
    const path = await archive([[MEMBER.manifest, manifestFor(list)], [MEMBER.events, events], ...list.slice(1)]);
    expect(await refusal(path, true)).toMatch(/events\.ndjson does not match its SHA-256/);
    // With the hash intact, the visitor's refusal is what is reported.
    expect(await refusal(await valid(), true)).toBe('the visitor refuses this event');
  });

  it('a member the manifest lists but the archive lacks', async () => {
    const list = members();
    const without = list.filter(([p]) => p !== MEMBER.tlsCryptKey);
    expect(await refusal(await archive([[MEMBER.manifest, manifestFor(list)], ...without]))).toMatch(
      /keys\/tls-crypt\.key is missing from the archive \(its manifest lists it before keys\/profile-id\.key\): the archive is incomplete/,
    );
    const lastMissing = list.slice(0, -1);
    expect(await refusal(await archive([[MEMBER.manifest, manifestFor(list)], ...lastMissing]))).toMatch(/config\/gateway\.conf is missing from the archive/);
  });

  it('a member the manifest does not list, or one given twice', async () => {
    const list = members();
    expect(await refusal(await archive([[MEMBER.manifest, manifestFor(list)], ...list, ['config/extra.conf', Buffer.from('x')]]))).toMatch(
      /holds config\/extra\.conf, which its manifest does not list/,
    );
    expect(await refusal(await archive([[MEMBER.manifest, manifestFor(list)], ...list, list[1]!]))).toMatch(/holds keys\/ca\.key twice/);
  });

  it('a member of another size than the manifest says', async () => {
    const list = members();
    const manifest = manifestFor(list.map(([p, d]): [string, Buffer] => [p, p === MEMBER.caKey ? Buffer.concat([d, Buffer.from('!')]) : d]));
    expect(await refusal(await archive([[MEMBER.manifest, manifest], ...list]))).toMatch(/keys\/ca\.key is \d+ bytes, but the manifest says \d+/);
  });

  it('members out of the manifest order', async () => {
    const list = members();
    const swapped = [list[0]!, list[2]!, list[1]!, ...list.slice(3)];
    expect(await refusal(await archive([[MEMBER.manifest, manifestFor(list)], ...swapped]))).toMatch(/keys\/ca\.key is missing from the archive \(its manifest lists it before keys\/ca\.crt\)/);
  });

  it('an archive that does not start with its manifest', async () => {
    const list = members();
    expect(await refusal(await archive([...list, [MEMBER.manifest, manifestFor(list)]]))).toMatch(/starts with events\.ndjson, not manifest\.json: not an ovpn-ledger backup/);
  });
});

describe('the manifest', () => {
  const text = (list = members()) => manifestFor(list).toString();

  it('must match its own checksum: any change to it is refused', async () => {
    const changed = Buffer.from(text().replace('"hostname": "gw"', '"hostname": "gx"'));
    expect(() => parseManifest(changed)).toThrow('manifest.json does not match its own SHA-256 (manifestSha256): the archive was altered or damaged');
    const list = members();
    expect(await refusal(await archive([[MEMBER.manifest, changed], ...list]))).toMatch(/does not match its own SHA-256/);
  });

  it('of a newer format is refused first, saying to upgrade', () => {
    const future = JSON.stringify({ formatVersion: '1.2', ledgerVersion: '9.0.0', whatever: true });
    expect(() => parseManifest(Buffer.from(future))).toThrow(
      'the archive is in backup format 1.2 (written by ovpn-ledger 9.0.0), newer than this ovpn-ledger reads (up to 1.1): upgrade ovpn-ledger to restore it',
    );
    expect(() => parseManifest(Buffer.from(JSON.stringify({ formatVersion: '2.0' })))).toThrow(/format 2\.0, newer than this ovpn-ledger reads/);
  });

  it('of an unknown older format, or without one, is refused', () => {
    expect(() => parseManifest(Buffer.from(JSON.stringify({ formatVersion: '0.9' })))).toThrow(/format 0\.9, which no ovpn-ledger release wrote/);
    expect(() => parseManifest(Buffer.from(JSON.stringify({ hello: 'world' })))).toThrow(/no format version: this is not an ovpn-ledger backup/);
    expect(() => parseManifest(Buffer.from('{"formatVersion": "1.1",'))).toThrow(/manifest\.json is not valid JSON/);
  });

  it('must list the events and every gateway key', () => {
    const list = members().filter(([p]) => p !== MEMBER.caKey);
    expect(() => parseManifest(manifestFor(list))).toThrow('manifest.json does not list keys/ca.key: the archive is incomplete');
  });

  it('must name only members a backup holds', () => {
    const list: [string, Buffer][] = [...members(), ['../../etc/passwd', Buffer.from('x')]];
    expect(() => parseManifest(manifestFor(list))).toThrow(/members\.\d+\.path is not a member a backup holds/);
  });

  it('of format 1.0 (numbers for positions, a sha256 map, nothing else) reads as today’s', () => {
    const list = members();
    const v10 = {
      formatVersion: '1.0',
      ledgerVersion: '1.0.3',
      hostname: 'gw-old',
      createdAt: '2025-06-01T12:00:00.000Z',
      eventCount: 2,
      lastPosition: 2,
      sha256: Object.fromEntries(list.map(([p, d]) => [p, sha256(d)])),
    };
    const m = parseManifest(Buffer.from(JSON.stringify(v10, null, 2)));
    expect(m).toMatchObject({ formatVersion: '1.0', lastPosition: 2n, crlNumber: undefined, summary: undefined, ordered: false });
    expect(m.members.map((x) => x.path)).toEqual(list.map(([p]) => p));
    expect(() => parseManifest(Buffer.from(JSON.stringify({ ...v10, crlNumber: '3' })))).toThrow(/format 1\.0\) is invalid/);
  });
});

describe('a file that is not a sound gzip archive', () => {
  it('plain text is refused as not an archive', async () => {
    const path = join(dir, 'notes.txt');
    writeFileSync(path, 'this is not a backup\n');
    expect(await refusal(path)).toBe(`${path} is not a gzip-compressed archive: not an ovpn-ledger backup`);
  });

  it('a truncated file is refused as truncated', async () => {
    const { readFileSync } = await import('node:fs');
    const bytes = readFileSync(await valid());
    for (const keep of [bytes.length - 8, Math.floor(bytes.length / 2), 40]) {
      const path = join(dir, `truncated-${keep}.tar.gz`);
      writeFileSync(path, bytes.subarray(0, keep));
      expect(await refusal(path)).toMatch(/is truncated: its gzip data ends early/);
    }
  });

  it('gzip of something that is not tar is refused', async () => {
    const path = join(dir, 'gz-not-tar.gz');
    writeFileSync(path, gzipSync(Buffer.from('just some text, compressed'.repeat(40))));
    expect(await refusal(path)).toMatch(/not a tar archive/);
  });

  it('a missing file or a directory is refused by name', async () => {
    expect(await refusal(join(dir, 'nope.tar.gz'))).toMatch(/nope\.tar\.gz does not exist/);
    expect(await refusal(dir)).toMatch(/is a directory, not a backup archive/);
  });
});
