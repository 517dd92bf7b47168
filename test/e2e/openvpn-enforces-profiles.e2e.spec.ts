// The proof that a real OpenVPN server enforces what the CLI does: the built ov_* commands set up
// a gateway and issue profiles, then the generated server.conf runs in a network namespace and
// real clients must connect, or be refused, exactly as the ledger says. A revocation by
// ov_user_delete must take effect on the SAME running server, without a restart.
//
// The tests in this file are one scenario and run in order; each step names what it needs from
// the previous ones and fails with "an earlier step failed" when that is missing.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCliBuilt, runCliOk, type CliCommand } from '../support/cli.js';
import {
  assertOpenvpnLabAvailable,
  connectAndHold,
  createNetns,
  findExecutable,
  startOpenvpnServer,
  tryConnect,
  type ConnectResult,
  type HeldConnection,
  type Netns,
  type OpenvpnServer,
} from '../support/openvpn-lab.js';

// ---------------------------------------------------------------------------------------------
// Helpers

function assertOpensslAvailable(): void {
  const res = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    throw new Error('`openssl` not found: this spec checks certificates and CRLs with it; install it with `apt-get install -y openssl`');
  }
}

interface OpensslResult {
  status: number | null;
  /** stdout and stderr together: `openssl crl` says "verify OK" on stderr, `verify` errors on stdout. */
  output: string;
}

function openssl(args: string[]): OpensslResult {
  const res = spawnSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.error) throw res.error;
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

function opensslOk(args: string[]): string {
  const res = openssl(args);
  if (res.status !== 0) throw new Error(`openssl ${args.join(' ')} exited ${res.status}: ${res.output}`);
  return res.output;
}

/** YYYY-MM-DD, `days` after today (UTC). */
function utcDatePlus(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** How `openssl x509 -enddate` prints the last second of a calendar day: "Feb  1 23:59:59 2020 GMT". */
function opensslEndOfDay(date: string): string {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  return `${MONTHS[m - 1]} ${String(d).padStart(2, ' ')} 23:59:59 ${y} GMT`;
}

function pemBlock(profile: string, tag: string): string {
  const m = new RegExp(`<${tag}>\\n([\\s\\S]*?)\\n</${tag}>`).exec(profile);
  if (!m?.[1]) throw new Error(`no <${tag}> block in profile`);
  return `${m[1].trim()}\n`;
}

/** Sends one management command and returns the reply up to the first SUCCESS/ERROR/END line. */
function management(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = '';
    let sent = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`management "${command}" timed out; got: ${buf}`));
    }, 5_000);
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      // The server greets with an >INFO line; the command goes out only after it.
      if (!sent && buf.includes('>INFO:')) {
        sent = true;
        buf = '';
        sock.write(`${command}\n`);
        return;
      }
      if (sent && /^(SUCCESS:|ERROR:|END)/m.test(buf)) {
        clearTimeout(timer);
        sock.end('quit\n');
        resolve(buf);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Common names in `status 2` CLIENT_LIST rows. */
function connectedCommonNames(status: string): string[] {
  return status
    .split('\n')
    .filter((l) => l.startsWith('CLIENT_LIST,'))
    .map((l) => l.split(',')[1] ?? '');
}

function explain(res: ConnectResult): string {
  return `${res.reason}\n--- client log ---\n${res.log}\n--- server log since the client started ---\n${res.serverLogExcerpt}`;
}

function openvpnPids(): number[] {
  const res = spawnSync('pgrep', ['-x', 'openvpn'], { encoding: 'utf8' });
  return (res.stdout ?? '').split(/\s+/).filter(Boolean).map(Number);
}

// ---------------------------------------------------------------------------------------------
// The scenario

interface IssuedUser {
  readonly email: string;
  readonly traffic: 'all' | 'partial';
  readonly expirationDate: string;
  readonly profilePath: string;
  /** The certificate's CN, also the directory under profiles/. */
  readonly profileId: string;
  readonly serial: string;
  /** The client certificate extracted from the .ovpn. */
  readonly certPath: string;
}

describe('OpenVPN enforces the profiles the CLI issues and revokes (built CLI, real server in a namespace)', () => {
  let work: string | undefined;
  let stateDir: string;
  let configDir: string;
  let outboxDir: string;
  let extractDir: string;
  let ns: Netns | undefined;
  let server: OpenvpnServer | undefined;
  let held: HeldConnection | undefined;
  const users: Partial<Record<'alice' | 'bob' | 'expired', IssuedUser>> = {};
  const openvpnPidsBefore = new Set<number>();

  /** Runs a built command against this scenario's dirs; OVL_NOW only when given. Throws unless it exits 0. */
  const cliOk = (command: CliCommand, args: string[], now?: string) =>
    runCliOk(command, args, {
      env: { OVL_STATE_DIR: stateDir, OVL_CONFIG_DIR: configDir, OVL_NOW: now, OVL_LOG_FILE: undefined, OVL_LOG_LEVEL: undefined },
    });

  const user = (name: 'alice' | 'bob' | 'expired'): IssuedUser => {
    const u = users[name];
    if (!u) throw new Error(`an earlier step failed: ${name}'s profile was not issued`);
    return u;
  };
  const live = (): { ns: Netns; server: OpenvpnServer } => {
    if (!ns || !server) throw new Error('an earlier step failed: the OpenVPN server is not running');
    return { ns, server };
  };
  const caCrt = () => join(stateDir, 'openvpn', 'ca.crt');
  const crlPem = () => join(stateDir, 'openvpn', 'crl.pem');
  const serverConf = () => join(stateDir, 'openvpn', 'server.conf');
  const managementSocket = () => join(stateDir, 'run', 'management.sock');

  beforeAll(() => {
    assertOpenvpnLabAvailable();
    assertOpensslAvailable();
    assertCliBuilt();
    for (const pid of openvpnPids()) openvpnPidsBefore.add(pid);

    // mkdtemp makes a 0700 dir; OpenVPN re-reads the CRL as `nobody` after dropping privileges,
    // so every directory on the way to $OVL_STATE_DIR/openvpn/crl.pem must be traversable.
    work = mkdtempSync(join(tmpdir(), 'ovl-e2e-'));
    chmodSync(work, 0o755);
    stateDir = join(work, 'state');
    configDir = join(work, 'config');
    outboxDir = join(work, 'outbox');
    extractDir = join(work, 'extracted');
    mkdirSync(extractDir, { mode: 0o700 });
  });

  afterAll(async () => {
    await held?.stop();
    await server?.stop();
    await ns?.destroy();
    if (work && process.env.OVLAB_KEEP_LOGS !== '1') rmSync(work, { recursive: true, force: true });
  });

  it('given a fresh state dir, when ov_init runs with --route 10.20.0.0/16, then it writes the CA, an empty CRL and the OpenVPN server config', async () => {
    const out = await cliOk('ov_init', ['--public-host', '127.0.0.1', '--route', '10.20.0.0/16']);
    expect(out).toMatch(/^Gateway initialised for 127\.0\.0\.1:1194\/udp\./m);
    expect(out).toContain(`OpenVPN server config: ${serverConf()}`);

    const conf = readFileSync(serverConf(), 'utf8');
    expect(conf).toMatch(/^port 1194$/m);
    expect(conf).toMatch(/^proto udp$/m);
    expect(conf).toMatch(/^user nobody$/m);
    expect(conf).toMatch(/^group nogroup$/m);
    expect(conf).toContain(`\ncrl-verify ${crlPem()}\n`);
    expect(conf).toContain(`\nmanagement ${managementSocket()} unix\n`);
    expect(existsSync(crlPem())).toBe(true);
    expect(opensslOk(['crl', '-in', crlPem(), '-CAfile', caCrt(), '-noout'])).toMatch(/verify OK/);

    // ov_init leaves a placeholder email.conf (SES); profiles go to an outbox instead.
    writeFileSync(
      join(configDir, 'email.conf'),
      `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME="Test"\nDELIVERY=outbox\nOUTBOX_DIR=${outboxDir}\n`,
      { mode: 0o600 },
    );
  });

  it('given the gateway, when alice (all), bob (partial) and a user issued back in 2020 are added, then each profile is kept at profiles/<profileId>/<serial>.ovpn', async () => {
    const add = async (
      name: 'alice' | 'bob' | 'expired',
      email: string,
      traffic: 'all' | 'partial',
      expirationDate: string,
      now?: string,
    ) => {
      const out = await cliOk(
        'ov_user_add',
        [
          '--first-name', name[0]!.toUpperCase() + name.slice(1),
          '--last-name', 'Tester',
          '--email', email,
          '--traffic', traffic,
          '--expiration-date', expirationDate,
          '--creation-reason', 'e2e: OpenVPN enforcement',
        ],
        now,
      );
      const kept = /^Kept at (.+)\.$/m.exec(out)?.[1];
      expect(kept, out).toBeDefined();
      const profilePath = kept!;
      const serial = basename(profilePath, '.ovpn');
      const profileId = basename(dirname(profilePath));
      expect(dirname(dirname(profilePath))).toBe(join(stateDir, 'profiles'));
      expect(out).toContain(`serial ${serial}`);
      const certPath = join(extractDir, `${name}.crt`);
      writeFileSync(certPath, pemBlock(readFileSync(profilePath, 'utf8'), 'cert'));
      users[name] = { email, traffic, expirationDate, profilePath, profileId, serial, certPath };
    };

    await add('alice', 'alice@example.com', 'all', utcDatePlus(90));
    await add('bob', 'bob@example.com', 'partial', utcDatePlus(30));
    // Issued "in the past" so its certificate ran out long ago, while the ledger still lists it.
    await add('expired', 'old@example.com', 'all', '2020-02-01', '2020-01-01T00:00:00Z');

    const listed = JSON.parse(await cliOk('ov_user_list', ['--json'])) as { email: string; traffic: string; serial: string }[];
    for (const u of [user('alice'), user('bob'), user('expired')]) {
      expect(listed).toContainEqual(expect.objectContaining({ email: u.email, traffic: u.traffic, serial: u.serial }));
    }
    const expired = JSON.parse(await cliOk('ov_user_list_expired', ['--json'])) as { email: string }[];
    expect(expired.map((e) => e.email)).toEqual(['old@example.com']);
  });

  it('then every client certificate chains to ca.crt, ends at 23:59:59 GMT on its expiration date, is for TLS client auth only, and has a positive 128-bit serial', () => {
    for (const u of [user('alice'), user('bob'), user('expired')]) {
      const verify = openssl(['verify', '-CAfile', caCrt(), '-purpose', 'sslclient', u.certPath]);
      if (u === users.expired) {
        // Signed by our CA all right, but out of date: openssl says so, and says nothing else.
        expect(verify.status, verify.output).not.toBe(0);
        expect(verify.output).toMatch(/error 10 at 0 depth lookup: certificate has expired/);
      } else {
        expect(verify.status, verify.output).toBe(0);
        expect(verify.output).toContain(`${u.certPath}: OK`);
      }

      expect(opensslOk(['x509', '-in', u.certPath, '-noout', '-enddate']).trim()).toBe(`notAfter=${opensslEndOfDay(u.expirationDate)}`);

      const eku = opensslOk(['x509', '-in', u.certPath, '-noout', '-ext', 'extendedKeyUsage']);
      expect(eku).toMatch(/X509v3 Extended Key Usage:\s*\n\s*TLS Web Client Authentication\s*$/);
      expect(eku).not.toMatch(/Server Authentication/);

      const subject = opensslOk(['x509', '-in', u.certPath, '-noout', '-subject', '-nameopt', 'RFC2253']).trim();
      expect(subject).toBe(`subject=CN=${u.profileId}`);

      // 16 bytes, the first one 01..7f: positive (no sign bit) and never a shorter integer.
      const serial = opensslOk(['x509', '-in', u.certPath, '-noout', '-serial']).trim();
      expect(serial).toMatch(/^serial=[0-7][0-9A-F]{31}$/);
      expect(serial).not.toMatch(/^serial=00/);
      expect(serial).toBe(`serial=${u.serial.toUpperCase()}`);
    }
  });

  it('then the partial profile routes only 10.20.0.0/16 (pushed routes filtered) and the full profile redirects the default gateway', () => {
    const bob = readFileSync(user('bob').profilePath, 'utf8');
    expect(bob).toMatch(/^pull-filter ignore "route "$/m);
    expect(bob).toMatch(/^route 10\.20\.0\.0 255\.255\.0\.0$/m);
    expect(bob).not.toMatch(/^redirect-gateway/m);

    const alice = readFileSync(user('alice').profilePath, 'utf8');
    expect(alice).toMatch(/^redirect-gateway def1$/m);
    expect(alice).not.toMatch(/^route-nopull$/m);
    expect(alice).not.toMatch(/^route /m);

    for (const text of [alice, bob]) {
      expect(text).toMatch(/^remote 127\.0\.0\.1 1194$/m);
      expect(text).toMatch(/^remote-cert-tls server$/m);
      expect(text).toMatch(/^verify-x509-name server-[0-9a-f]+ name$/m);
    }
  });

  it('given OpenVPN started from the generated server.conf, when alice and bob connect, then both complete the handshake', async () => {
    ns = await createNetns('ovl-e2e');
    server = await startOpenvpnServer(ns, serverConf());
    const { server: s } = live();
    // Clients run with --route-noexec (and in a namespace with only lo): nothing touches routes.
    for (const u of [user('alice'), user('bob')]) {
      const res = await tryConnect(ns, u.profilePath, s);
      expect(res.connected, explain(res)).toBe(true);
      expect(res.serverLogExcerpt).toMatch(new RegExp(`\\[${u.profileId}\\] Peer Connection Initiated`));
    }
  });

  it('when the profile issued in 2020 connects, then the server refuses it as expired', async () => {
    const { ns, server } = live();
    const res = await tryConnect(ns, user('expired').profilePath, server);
    expect(res.connected, explain(res)).toBe(false);
    expect(res.serverLogExcerpt).toMatch(new RegExp(`VERIFY ERROR: depth=0, error=certificate has expired.*CN=${user('expired').profileId}`));
  });

  it('given alice holds a live session, when ov_user_delete revokes her on the running server, then the session is ended and she leaves the status list', async () => {
    const { ns, server } = live();
    const alice = user('alice');
    held = await connectAndHold(ns, alice.profilePath, server);
    const before = await management(managementSocket(), 'status 2');
    expect(connectedCommonNames(before), before).toContain(alice.profileId);
    expect(connectedCommonNames(before)).not.toContain(alice.email);

    const out = await cliOk('ov_user_delete', ['--email', alice.email, '--traffic', 'all']);
    expect(out).toContain(`Revoked all profile of ${alice.email}: serial(s) ${alice.serial}.`);
    expect(out).toMatch(/CRL #\d+ written with 1 entries/);
    expect(out).toMatch(/^Live sessions ended: 1 \(the client was told to stop\)\.$/m);

    // client-kill … HALT tells the client itself to stop: it exits instead of reconnecting.
    expect(await held.waitForExit(2_000), held.log()).toBe(true);
    expect(held.log()).toMatch(/Halt command was pushed by server/);
    // The server keeps the instance a few seconds so the HALT reaches the client, then drops it.
    let after = '';
    for (let i = 0; i < 40; i++) {
      after = await management(managementSocket(), 'status 2');
      if (!connectedCommonNames(after).includes(alice.profileId)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(connectedCommonNames(after), after).not.toContain(alice.profileId);
    await held.stop();
    held = undefined;

    const listed = JSON.parse(await cliOk('ov_user_list', ['--json'])) as { email: string }[];
    expect(listed.map((u) => u.email)).not.toContain(alice.email);
  });

  it('then the CRL verifies against ca.crt and openssl reports alice\'s certificate revoked, bob\'s not', () => {
    expect(opensslOk(['crl', '-in', crlPem(), '-CAfile', caCrt(), '-noout'])).toMatch(/verify OK/);
    const text = opensslOk(['crl', '-in', crlPem(), '-noout', '-text']);
    expect(text).toContain(`Serial Number: ${user('alice').serial.toUpperCase()}`);
    expect(text).not.toContain(user('bob').serial.toUpperCase());

    const revoked = openssl(['verify', '-crl_check', '-CRLfile', crlPem(), '-CAfile', caCrt(), user('alice').certPath]);
    expect(revoked.status, revoked.output).not.toBe(0);
    expect(revoked.output).toMatch(/error 23 at 0 depth lookup: certificate revoked/);

    const fine = openssl(['verify', '-crl_check', '-CRLfile', crlPem(), '-CAfile', caCrt(), user('bob').certPath]);
    expect(fine.status, fine.output).toBe(0);
  });

  it('then the same running server, never restarted, refuses alice as revoked while bob still connects', async () => {
    const { ns, server } = live();
    const alice = user('alice');
    const refused = await tryConnect(ns, alice.profilePath, server);
    expect(refused.connected, explain(refused)).toBe(false);
    expect(refused.serverLogExcerpt).toMatch(new RegExp(`VERIFY ERROR: depth=0, error=certificate revoked.*CN=${alice.profileId}`));

    const bob = await tryConnect(ns, user('bob').profilePath, server);
    expect(bob.connected, explain(bob)).toBe(true);

    expect(server.log().match(/Initialization Sequence Completed/g)).toHaveLength(1);
    expect(() => process.kill(server.pid, 0)).not.toThrow();
  });

  it('when the lab is torn down, then no namespace or openvpn process is left behind', async () => {
    const { ns: netns, server: s } = live();
    await s.stop();
    await netns.destroy();
    expect(() => process.kill(s.pid, 0)).toThrow();
    const list = spawnSync(findExecutable('ip') ?? 'ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    expect(list).not.toContain(netns.name);
    expect(openvpnPids().filter((pid) => !openvpnPidsBefore.has(pid))).toEqual([]);
  });
});
