// Disaster recovery through the built CLI: a gateway with users in both modes, some revoked, one
// renewed, is backed up with ov_backup and restored with ov_restore into a fresh state directory;
// the restored gateway lists the same users, answers every audit lens the same, has the same CRL
// serials and byte-identical profiles, and a real OpenVPN server started from the restored
// server.conf accepts a profile issued before the backup and refuses a revoked one. Then every
// way an archive can be wrong (a flipped byte in each member, a member removed, a truncated file,
// a newer format, not an archive at all) is refused by --dry-run and by a real restore, with the
// target directory's every file unchanged. A 1.0 archive restores through the upcasters, and a
// backup taken while ov_user_add commands are writing restores as a consistent snapshot.
//
// The tests are one scenario and run in order; each step names what it needs from earlier ones.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTar, TarPacker } from '../../adapters/archive/tar.js';
import { SqliteEventStore } from '../../adapters/eventstore/sqlite-event-store.js';
import { encodeRevokedEntry } from '../../adapters/pki/crl-encoder.js';
import { SqliteProjectionStore, type ProjectionStoreOptions } from '../../projections/sqlite-projection-store.js';
import { assertCliBuilt, cliBinPath, runCli, spawnCli, snapshotTree, type CliCommand, type CliResult, type FileFacts } from '../support/cli.js';
import { assertOpenvpnLabAvailable, createNetns, startOpenvpnServer, tryConnect, type ConnectResult, type Netns, type OpenvpnServer } from '../support/openvpn-lab.js';

const encodeCrlEntry: ProjectionStoreOptions['encodeCrlEntry'] = (e) =>
  encodeRevokedEntry({ serialHex: e.serial, revokedAt: new Date(e.revokedAt), reason: e.reason });
const BACKUP = 'ov_backup' as CliCommand;
const RESTORE = 'ov_restore' as CliCommand;
const RENEW_DUE = 'ov_user_renew_due' as CliCommand;
const AUDIT = 'ov_user_audit' as CliCommand;

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const FIXTURE_10 = join(FIXTURES, 'backup-1.0-gw-old.tar.gz');

function utcDatePlus(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

function openssl(args: string[]): { status: number | null; output: string } {
  const res = spawnSync('openssl', args, { encoding: 'utf8' });
  if (res.error) throw res.error;
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

/** Serials on a CRL (lower-case hex, sorted) and its number, as openssl reads them. */
function crlFacts(path: string): { serials: string[]; number: bigint } {
  const text = openssl(['crl', '-in', path, '-noout', '-text']).output;
  const serials = [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase()).sort();
  const number = /X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text)?.[1];
  if (number === undefined) throw new Error(`no CRL number in ${path}:\n${text}`);
  return { serials, number: BigInt(number) };
}

/** The block both commands print, from "Summary" to the first empty line. */
function summaryBlock(stdout: string): string {
  const lines = stdout.split('\n');
  const start = lines.indexOf('Summary');
  if (start < 0) throw new Error(`no Summary block in:\n${stdout}`);
  const end = lines.indexOf('', start);
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

/** Every file under `dir`, relative path → bytes. */
function filesUnder(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path);
      else if (e.isFile()) out.set(path, readFileSync(join(dir, path)));
    }
  };
  if (existsSync(dir)) walk('');
  return out;
}

async function untar(archive: Buffer): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  async function* one() {
    yield gunzipSync(archive);
  }
  for await (const entry of readTar(one())) {
    const parts: Buffer[] = [];
    for await (const p of entry.body) parts.push(p);
    out.push([entry.path, Buffer.concat(parts)]);
  }
  return out;
}

async function retar(members: readonly [string, Buffer][]): Promise<Buffer> {
  const out: Buffer[] = [];
  const packer = new TarPacker(async (c) => {
    out.push(Buffer.from(c));
  });
  for (const [path, data] of members) await packer.addBuffer(path, data, { mode: 0o600, mtime: 1_700_000_000 });
  await packer.finish();
  return gzipSync(Buffer.concat(out));
}

function explain(res: ConnectResult): string {
  return `${res.reason}\n--- client log ---\n${res.log}\n--- server log ---\n${res.serverLogExcerpt}`;
}

interface User {
  readonly email: string;
  readonly traffic: 'all' | 'partial';
  readonly profilePath: string;
  readonly serial: string;
}

describe('ov_backup and ov_restore (built CLI, real OpenVPN in a namespace)', () => {
  let work: string | undefined;
  let source: { state: string; config: string };
  let outbox: string;
  let backups: string;
  let restored: { state: string; config: string };
  let archive: string | undefined;
  let backupStdout = '';
  let ns: Netns | undefined;
  let server: OpenvpnServer | undefined;
  const users: Partial<Record<'alice' | 'bob' | 'carol' | 'dave' | 'erin', User>> = {};

  const envOf = (dirs: { state: string; config: string }, now?: string) => ({
    OVL_STATE_DIR: dirs.state,
    OVL_CONFIG_DIR: dirs.config,
    OVL_NOW: now,
    OVL_LOG_FILE: undefined,
    OVL_LOG_LEVEL: undefined,
  });
  const run = (command: CliCommand, args: readonly string[], dirs = source, now?: string): Promise<CliResult> =>
    runCli(command, args, { env: envOf(dirs, now), timeoutMs: 120_000 });
  const ok = async (command: CliCommand, args: readonly string[], dirs = source, now?: string): Promise<string> => {
    const res = await run(command, args, dirs, now);
    if (res.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
    return res.stdout;
  };
  const user = (name: keyof typeof users): User => {
    const u = users[name];
    if (!u) throw new Error(`an earlier step failed: ${name} was not issued`);
    return u;
  };
  const theArchive = (): string => {
    if (!archive) throw new Error('an earlier step failed: no backup was written');
    return archive;
  };

  beforeAll(() => {
    assertOpenvpnLabAvailable();
    if (spawnSync('openssl', ['version']).status !== 0) throw new Error('`openssl` not found: install it with `apt-get install -y openssl`');
    assertCliBuilt();
    for (const c of [BACKUP, RESTORE, RENEW_DUE]) {
      if (!existsSync(cliBinPath(c))) throw new Error(`${cliBinPath(c)} does not exist: run npm run build first`);
    }
    // OpenVPN drops to nobody and must still reach the restored CRL: every parent must be traversable.
    work = mkdtempSync(join(tmpdir(), 'ovl-backup-e2e-'));
    chmodSync(work, 0o755);
    source = { state: join(work, 'source', 'state'), config: join(work, 'source', 'config') };
    restored = { state: join(work, 'restored', 'state'), config: join(work, 'restored', 'config') };
    mkdirSync(join(work, 'source'), { mode: 0o755 });
    mkdirSync(join(work, 'restored'), { mode: 0o755 });
    outbox = join(work, 'outbox');
    backups = join(work, 'backups');
    mkdirSync(backups);
  });

  afterAll(async () => {
    await server?.stop();
    await ns?.destroy();
    if (work && process.env.OVLAB_KEEP_LOGS !== '1') rmSync(work, { recursive: true, force: true });
  });

  it('given a gateway with users in both modes, two revoked and one renewed by ov_user_renew_due', async () => {
    await ok('ov_init', ['--public-host', '127.0.0.1', '--route', '10.20.0.0/16']);
    writeFileSync(
      join(source.config, 'email.conf'),
      `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME="Backup test"\nDELIVERY=outbox\nOUTBOX_DIR=${outbox}\n`,
      { mode: 0o600 },
    );
    const add = async (name: keyof typeof users, traffic: 'all' | 'partial', days: number, autoRenew = 'no') => {
      const out = await ok('ov_user_add', [
        '--first-name', name[0]!.toUpperCase() + name.slice(1),
        '--last-name', 'Tester',
        '--email', `${name}@example.com`,
        '--traffic', traffic,
        '--expiration-date', utcDatePlus(days),
        '--creation-reason', 'e2e: backup and restore',
        '--auto-renew', autoRenew,
      ]);
      const profilePath = /^Kept at (.+)\.$/m.exec(out)?.[1];
      if (!profilePath) throw new Error(`no profile path in: ${out}`);
      users[name] = { email: `${name}@example.com`, traffic, profilePath, serial: basename(profilePath, '.ovpn') };
    };
    await add('alice', 'all', 90);
    await add('bob', 'partial', 60);
    await add('carol', 'all', 60);
    await add('dave', 'partial', 60);
    // Inside the 10-day renewal window from the start: the job renews her at once.
    await add('erin', 'all', 5, 'yes');
    await ok('ov_user_delete', ['--email', 'carol@example.com', '--traffic', 'all', '--reason', 'left the company']);
    await ok('ov_user_delete', ['--email', 'dave@example.com', '--traffic', 'partial']);
    const renewal = await ok(RENEW_DUE, []);
    expect(renewal).toMatch(/1 renewed, 0 failed/);
    const listed = JSON.parse(await ok('ov_user_list', ['--json'])) as { email: string; renewals: number }[];
    expect(listed.map((u) => u.email).sort()).toEqual(['alice@example.com', 'bob@example.com', 'erin@example.com']);
    expect(listed.find((u) => u.email === 'erin@example.com')?.renewals).toBe(1);
  });

  it('when ov_backup runs, then it writes one 0600 archive named after host and time, prints the summary, scp commands and the master-secret warning', async () => {
    const res = await run(BACKUP, ['--output-dir', backups]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toBe('');
    backupStdout = res.stdout;
    const files = readdirSync(backups);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^backup-[A-Za-z0-9.-]+-\d{8}T\d{6}Z\.tar\.gz$/);
    archive = join(backups, files[0]!);
    expect(statSync(archive).mode & 0o777).toBe(0o600);
    expect(res.stdout).toContain(`Backup written to ${archive} (mode 0600)`);
    const block = summaryBlock(res.stdout);
    expect(block).toMatch(/^ {2}users \(all\): {6}2 active, 1 revoked$/m);
    expect(block).toMatch(/^ {2}users \(partial\): {2}1 active, 1 revoked$/m);
    expect(block).toMatch(/^ {2}profiles: {9}3 active, 2 revoked, 1 renewed \(1 renewal\)$/m);
    expect(block).toMatch(/^ {2}CRL: {14}2 revoked serials, SHA-256 of the sorted serials [0-9a-f]{64}$/m);
    expect(block).toMatch(/^ {2}CA fingerprint: {3}([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
    expect(block).toContain(`  archive:          ${statSync(archive).size} bytes, SHA-256 `);
    expect(res.stdout).toMatch(new RegExp(`^ {2}scp root@[^:]+:${archive.replace(/[.]/g, '\\.')} \\.$`, 'm'));
    expect(res.stdout).toMatch(new RegExp(`^ {2}scp ${basename(archive).replace(/[.]/g, '\\.')} root@NEW-GATEWAY:$`, 'm'));
    expect(res.stdout).toMatch(/WARNING: this archive is a master secret/);
    // Nothing else is left beside it (no temporary or partial file).
    expect(readdirSync(backups)).toEqual([basename(archive)]);
  });

  it('when ov_restore --dry-run runs into a fresh state directory, then it checks everything and writes nothing', async () => {
    const before = readdirSync(join(work!, 'restored'));
    const res = await run(RESTORE, ['--dry-run', theArchive()], restored);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^Dry run: the archive passed every check \(\d+ events, 4 client keys, 4 profiles\); nothing was written\.$/m);
    expect(summaryBlock(res.stdout)).toBe(summaryBlock(backupStdout));
    expect(readdirSync(join(work!, 'restored'))).toEqual(before);
    expect(existsSync(restored.state)).toBe(false);
    expect(existsSync(restored.config)).toBe(false);
  });

  it('when ov_restore runs into a fresh state directory, then its summary is the backup’s, line for line', async () => {
    const res = await run(RESTORE, [theArchive()], restored);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^Restored into .+: \d+ events, 4 client keys, 4 profiles\.$/m);
    expect(summaryBlock(res.stdout)).toBe(summaryBlock(backupStdout));
    // Only the state directory appeared, no staging directory is left behind.
    expect(readdirSync(join(work!, 'restored')).sort()).toEqual(['config', 'state']);
  });

  it('then ov_user_list --json and every ov_user_audit lens say what the source says', async () => {
    expect(await ok('ov_user_list', ['--json'], restored)).toBe(await ok('ov_user_list', ['--json'], source));
    expect(await ok('ov_user_list_expired', ['--json'], restored)).toBe(await ok('ov_user_list_expired', ['--json'], source));
    if (!existsSync(cliBinPath(AUDIT))) return; // ov_user_audit not built in this tree
    const now = new Date(Date.now() + 60_000).toISOString();
    const lenses = [
      ['--summary'],
      ['--expiring', '--days', '400'],
      ['--renewed'],
      ['--revoked'],
      ['--stuck'],
      ...(['alice', 'bob', 'carol', 'dave', 'erin'] as const).map((n) => ['--history', '--email', `${n}@example.com`]),
    ];
    for (const lens of lenses) {
      const [a, b] = await Promise.all([ok(AUDIT, [...lens, '--json'], source, now), ok(AUDIT, [...lens, '--json'], restored, now)]);
      const strip = (text: string) => {
        const value = JSON.parse(text) as Record<string, unknown>;
        // The CRL was re-signed by the restore: a higher number, a new date. Everything else is the log's.
        if (value && typeof value === 'object' && 'crl' in value) delete value['crl'];
        return value;
      };
      expect(strip(b), lens.join(' ')).toEqual(strip(a));
    }
  });

  it('then its event log is the source\'s, event for event and byte for byte (data and metadata as they were stored)', () => {
    const log = (state: string) => {
      const db = new Database(join(state, 'ledger.sqlite'), { readonly: true });
      try {
        return db.prepare('SELECT position, stream_id, revision, type, schema_version, data, metadata FROM events ORDER BY position').all();
      } finally {
        db.close();
      }
    };
    const before = log(source.state);
    expect(before).toHaveLength(10);
    expect(log(restored.state)).toEqual(before);
  });

  it('then its read models are exactly what a rebuild from its own event log makes (the restore projected in the thread that checked the events, and stored the rows in another)', async () => {
    const file = new Database(join(restored.state, 'ledger.sqlite'), { readonly: true });
    const scratch = mkdtempSync(join(tmpdir(), 'ovl-restored-copy-'));
    await file.backup(join(scratch, 'ledger.sqlite'));
    file.close();
    const copy = new Database(join(scratch, 'ledger.sqlite'));
    try {
      const projections = new SqliteProjectionStore(copy, { encodeCrlEntry, readWorker: false });
      const asRestored = projections.dump();
      expect(asRestored['audit_log']).toHaveLength(10);
      const log = new SqliteEventStore(copy);
      expect(await projections.rebuild((after, limit) => log.readAll({ after, limit }))).toBe(10);
      expect(projections.dump()).toEqual(asRestored);
    } finally {
      copy.close();
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('then the CRL has the same serials, verifies against the restored CA, and its number went up', () => {
    const before = crlFacts(join(source.state, 'openvpn', 'crl.pem'));
    const after = crlFacts(join(restored.state, 'openvpn', 'crl.pem'));
    expect(after.serials).toEqual(before.serials);
    expect(after.serials).toEqual([user('carol').serial, user('dave').serial].sort());
    expect(after.number).toBeGreaterThan(before.number);
    expect(openssl(['crl', '-in', join(restored.state, 'openvpn', 'crl.pem'), '-CAfile', join(restored.state, 'openvpn', 'ca.crt'), '-noout']).output).toMatch(/verify OK/);
  });

  it('then every profile that can still connect, every gateway key and the config files are byte-identical, with the modes of the state layout', () => {
    const src = filesUnder(join(source.state, 'profiles'));
    const dst = filesUnder(join(restored.state, 'profiles'));
    const revokedDirs = [user('carol'), user('dave')].map((u) => basename(dirname(u.profilePath)));
    const expected = [...src.keys()].filter((p) => !revokedDirs.includes(p.split('/')[0]!)).sort();
    expect([...dst.keys()].sort()).toEqual(expected);
    expect(expected).toHaveLength(4); // alice, bob, erin's first and renewed profile
    for (const [path, bytes] of dst) expect(bytes.equals(src.get(path)!), path).toBe(true);

    for (const file of ['keys/ca.key', 'keys/server.key', 'keys/tls-crypt.key', 'keys/profile-id.key', 'openvpn/ca.crt', 'openvpn/server.crt']) {
      expect(readFileSync(join(restored.state, file)).equals(readFileSync(join(source.state, file))), file).toBe(true);
    }
    for (const u of [user('alice'), user('bob'), user('erin')]) {
      const key = `keys/clients/${u.serial}.key`;
      expect(readFileSync(join(restored.state, key)).equals(readFileSync(join(source.state, key))), key).toBe(true);
    }
    for (const u of [user('carol'), user('dave')]) expect(existsSync(join(restored.state, 'keys', 'clients', `${u.serial}.key`))).toBe(false);
    for (const file of ['gateway.conf', 'email.conf']) {
      expect(readFileSync(join(restored.config, file)).equals(readFileSync(join(source.config, file))), file).toBe(true);
    }

    const mode = (p: string) => statSync(join(restored.state, p)).mode & 0o777;
    expect(mode('.')).toBe(0o755);
    expect(mode('ledger.sqlite')).toBe(0o600);
    expect(mode('keys')).toBe(0o700);
    expect(mode('keys/ca.key')).toBe(0o600);
    expect(mode('keys/clients')).toBe(0o700);
    expect(mode('openvpn')).toBe(0o755);
    expect(mode('openvpn/crl.pem')).toBe(0o644);
    expect(mode('openvpn/ca.crt')).toBe(0o644);
    expect(mode('openvpn/server.conf')).toBe(0o644);
    expect(mode('profiles')).toBe(0o700);
    expect(mode('run')).toBe(0o700);
    expect(statSync(join(restored.config, 'email.conf')).mode & 0o777).toBe(0o600);
    const conf = readFileSync(join(restored.state, 'openvpn', 'server.conf'), 'utf8');
    expect(conf).toContain(`\ncrl-verify ${join(restored.state, 'openvpn', 'crl.pem')}\n`);
    expect(conf).not.toContain('.restore-');
  });

  describe('a bad archive is refused by --dry-run and by a real restore, and the target stays byte for byte as it was', () => {
    let original: [string, Buffer][] = [];
    let n = 0;

    /** Every file of the target state and config, and the names beside them (no staging left over). */
    const snapshot = (): { files: Map<string, FileFacts>; config: Map<string, FileFacts>; siblings: string[] } => ({
      files: snapshotTree(restored.state),
      config: snapshotTree(restored.config),
      siblings: readdirSync(join(work!, 'restored')).sort(),
    });

    const expectRefused = async (bytes: Buffer | string, message: RegExp): Promise<void> => {
      const path = typeof bytes === 'string' ? bytes : join(work!, `bad-${n++}.tar.gz`);
      if (typeof bytes !== 'string') writeFileSync(path, bytes, { mode: 0o600 });
      for (const args of [['--dry-run', path], ['--force', path]]) {
        const before = snapshot();
        const res = await run(RESTORE, args, restored);
        const lines = res.stderr.replace(/\n$/, '').split('\n');
        expect({ code: res.code, stdout: res.stdout, lines: lines.length }, `${args.join(' ')}: ${res.stderr}`).toEqual({ code: 3, stdout: '', lines: 1 });
        expect(lines[0]).toMatch(/^ov_restore: /);
        expect(lines[0]).toMatch(message);
        expect(snapshot(), `${args.join(' ')} changed the target`).toEqual(before);
      }
    };

    beforeAll(async () => {
      if (archive) original = await untar(readFileSync(archive));
    });

    it('one flipped byte in each member', async () => {
      expect(original.length).toBeGreaterThan(10);
      for (const [i, [path]] of original.entries()) {
        const tampered = original.map(([p, d], j): [string, Buffer] => {
          if (j !== i) return [p, d];
          const copy = Buffer.from(d);
          const at = Math.floor(copy.length / 2);
          copy[at] = copy[at]! ^ 0x01;
          return [p, copy];
        });
        const message =
          path === 'manifest.json'
            ? /refused: manifest\.json (does not match its own SHA-256|is not valid JSON|\(format 1\.1\) is invalid)/
            : new RegExp(`refused: ${path.replace(/[.]/g, '\\.')} does not match its SHA-256 in the manifest: the archive was altered or damaged; nothing was changed$`);
        await expectRefused(await retar(tampered), message);
      }
    });

    it('a member removed', async () => {
      const clientKey = original.find(([p]) => p.startsWith('keys/clients/'))![0];
      await expectRefused(await retar(original.filter(([p]) => p !== clientKey)), new RegExp(`${clientKey.replace(/[.]/g, '\\.')} is missing from the archive .*incomplete`));
      await expectRefused(await retar(original.filter(([p]) => p !== 'events.ndjson')), /events\.ndjson is missing from the archive/);
    });

    it('a truncated file', async () => {
      const bytes = readFileSync(theArchive());
      await expectRefused(bytes.subarray(0, Math.floor(bytes.length / 2)), /is truncated: its gzip data ends early/);
      await expectRefused(bytes.subarray(0, bytes.length - 4), /is truncated/);
    });

    it('a manifest with a future format version', async () => {
      const future = original.map(([p, d]): [string, Buffer] => [p, p === 'manifest.json' ? Buffer.from(d.toString().replace('"formatVersion": "1.1"', '"formatVersion": "1.2"')) : d]);
      await expectRefused(await retar(future), /backup format 1\.2 \(written by ovpn-ledger [^)]+\), newer than this ovpn-ledger reads \(up to 1\.1\): upgrade ovpn-ledger to restore it/);
    });

    it('a file that is not an archive at all, and one that does not exist', async () => {
      await expectRefused(Buffer.from('#!/bin/sh\necho this is not a backup\n'), /is not a gzip-compressed archive: not an ovpn-ledger backup/);
      await expectRefused(join(work!, 'no-such-backup.tar.gz'), /no-such-backup\.tar\.gz does not exist/);
    });
  });

  it('when restoring onto a gateway that has state, then it is refused without --force, and with --force the old state is kept aside', async () => {
    const before = snapshotTree(restored.state);
    const refused = await run(RESTORE, [theArchive()], restored);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/already holds a gateway's state; to replace it, run ov_restore --force .* \(the current state is then kept as .*\.before-restore-\d{8}T\d{6}Z\); nothing was changed/);
    expect(snapshotTree(restored.state)).toEqual(before);

    const crlBefore = crlFacts(join(restored.state, 'openvpn', 'crl.pem')).number;
    const res = await run(RESTORE, ['--force', theArchive()], restored);
    expect(res.code, res.stderr).toBe(0);
    const aside = /^The previous state is kept at (.+)\.$/m.exec(res.stdout)?.[1];
    expect(aside).toMatch(/\.before-restore-\d{8}T\d{6}Z$/);
    expect(snapshotTree(aside!)).toEqual(before);
    expect(crlFacts(join(restored.state, 'openvpn', 'crl.pem')).number).toBeGreaterThan(crlBefore);
    expect(summaryBlock(res.stdout)).toBe(summaryBlock(backupStdout));
    rmSync(aside!, { recursive: true, force: true });
  });

  it('given OpenVPN started from the restored server.conf, then profiles issued before the backup connect and a revoked one is refused', async () => {
    ns = await createNetns('ovl-restore');
    server = await startOpenvpnServer(ns, join(restored.state, 'openvpn', 'server.conf'));
    const restoredProfile = (u: User) => join(restored.state, 'profiles', basename(dirname(u.profilePath)), basename(u.profilePath));
    for (const u of [user('bob'), user('alice')]) {
      const res = await tryConnect(ns, restoredProfile(u), server);
      expect(res.connected, explain(res)).toBe(true);
    }
    const carol = await tryConnect(ns, user('carol').profilePath, server);
    expect(carol.connected, explain(carol)).toBe(false);
    expect(carol.serverLogExcerpt).toMatch(/VERIFY ERROR: depth=0, error=certificate revoked/);
    await server.stop();
    await ns.destroy();
    server = undefined;
    ns = undefined;
  });

  it('when the committed 1.0 archive is restored, then the users, the CRL and each stream’s history are what its events say, read through the upcaster', async () => {
    const expected = JSON.parse(readFileSync(join(FIXTURES, 'backup-1.0-gw-old.expected.json'), 'utf8')) as {
      archiveSha256: string;
      events: number;
      users: Record<string, unknown>[];
      revokedSerials: string[];
      keptSerials: string[];
      expiredSerials: string[];
      histories: Record<string, { type: string; schemaVersion: number; at: string }[]>;
    };
    const dirs = { state: join(work!, 'v10', 'state'), config: join(work!, 'v10', 'config') };
    mkdirSync(join(work!, 'v10'), { mode: 0o755 });
    const dry = await run(RESTORE, ['--dry-run', FIXTURE_10], dirs);
    expect(dry.code, dry.stderr).toBe(0);
    expect(existsSync(dirs.state)).toBe(false);
    const res = await run(RESTORE, [FIXTURE_10], dirs);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(new RegExp(`^Restored into .+: ${expected.events} events \\(6 read through the upcasters from an older schema\\), 4 client keys, 4 profiles\\.$`, 'm'));
    expect(summaryBlock(res.stdout)).toMatch(/^ {2}format: {11}1\.0 \(written by ovpn-ledger 1\.0\.3\)$/m);
    expect(summaryBlock(res.stdout)).toContain(`SHA-256 ${expected.archiveSha256}`);

    const listed = JSON.parse(await ok('ov_user_list', ['--json'], dirs)) as Record<string, unknown>[];
    expect(listed.map((u) => ({ ...u, createdAt: String(u['createdAt']).replace(/\.000Z$/, 'Z') }))).toEqual(
      expected.users.map((u) => expect.objectContaining({ ...u, createdAt: String(u['createdAt']).replace(/\.000Z$/, 'Z') })),
    );
    expect(crlFacts(join(dirs.state, 'openvpn', 'crl.pem')).serials).toEqual(expected.revokedSerials);
    expect(readdirSync(join(dirs.state, 'keys', 'clients')).sort()).toEqual(expected.keptSerials.map((s) => `${s}.key`).sort());

    const db = new Database(join(dirs.state, 'ledger.sqlite'), { readonly: true });
    try {
      const rows = db.prepare('SELECT stream_id, type, schema_version, data, metadata FROM events ORDER BY position').all() as {
        stream_id: string;
        type: string;
        schema_version: number;
        data: string;
        metadata: string;
      }[];
      expect(rows).toHaveLength(expected.events);
      for (const [pair, history] of Object.entries(expected.histories)) {
        const [email, traffic] = pair.split(' ');
        const issued = rows.find((r) => {
          const data = JSON.parse(r.data) as { email?: string; traffic?: string };
          return r.type === 'ProfileIssued' && data.email === email && data.traffic === traffic;
        });
        expect(issued, pair).toBeDefined();
        // Stored as 1.0 wrote it: the log is history, upcasting happens when it is read.
        expect(issued!.schema_version).toBe(1);
        const stream = rows.filter((r) => r.stream_id === issued!.stream_id);
        expect(stream.map((r) => ({ type: r.type, schemaVersion: r.schema_version, at: (JSON.parse(r.metadata) as { at: string }).at })), pair).toEqual(history);
      }
    } finally {
      db.close();
    }
  });

  it('when ov_backup runs while ov_user_add commands are writing, then its archive is a consistent snapshot that restores', async () => {
    const count = () => {
      const db = new Database(join(source.state, 'ledger.sqlite'), { readonly: true });
      try {
        return (db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
      } finally {
        db.close();
      }
    };
    const before = count();
    const out = join(work!, 'concurrent');
    mkdirSync(out);
    const env = envOf(source);
    const adds = ['f1', 'f2', 'f3', 'f4'].map((name, i) =>
      spawnCli('ov_user_add', [
        '--first-name', 'Busy', '--last-name', name, '--email', `${name}@example.com`,
        '--traffic', i % 2 ? 'all' : 'partial', '--expiration-date', utcDatePlus(30), '--creation-reason', 'concurrent with a backup',
      ], { env }),
    );
    await new Promise((r) => setTimeout(r, 150));
    const backup = spawnCli(BACKUP, ['--output-dir', out], { env });
    const results = await Promise.all([backup.done, ...adds.map((a) => a.done)]);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const after = count();
    expect(after).toBe(before + 4);

    const written = join(out, readdirSync(out)[0]!);
    const dry = await run(RESTORE, ['--dry-run', written], { state: join(work!, 'never', 'state'), config: join(work!, 'never', 'config') });
    expect(dry.code, dry.stderr).toBe(0);
    const events = Number(/passed every check \((\d+) events/.exec(dry.stdout)?.[1]);
    expect(events).toBeGreaterThanOrEqual(before);
    expect(events).toBeLessThanOrEqual(after);
  });

  it('when a non-root user runs ov_restore on the system state directory, then it is refused before anything is read', () => {
    const res = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, cliBinPath(RESTORE), '--dry-run', theArchive()],
      { encoding: 'utf8', env: { ...process.env, OVL_STATE_DIR: '', OVL_CONFIG_DIR: join(work!, 'nobody-config'), HOME: '/' } },
    );
    if (res.error) throw new Error(`setpriv not available (util-linux): ${res.error.message}`);
    expect(res.status, res.stderr).toBe(3);
    expect(res.stderr).toBe('ov_restore: ov_restore handles every private key of the gateway: run it as root (sudo ov_restore …) on /var/lib/ovpn-ledger\n');
  });
});
