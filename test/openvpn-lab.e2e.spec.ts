// Self-test of the OpenVPN lab: a throwaway PKI made with the openssl CLI, a real server in a
// network namespace, and real clients that must connect or be refused for the right reason.

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertOpenvpnLabAvailable,
  connectAndHold,
  createNetns,
  findExecutable,
  startOpenvpnServer,
  tryConnect,
  type Netns,
  type OpenvpnServer,
} from './support/openvpn-lab.js';

function assertOpensslAvailable(): void {
  const res = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    throw new Error('`openssl` not found: this spec builds its PKI with it; install it with `apt-get install -y openssl`');
  }
}

function openssl(args: string[]): string {
  try {
    return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

/** A minimal `openssl ca` setup: an index.txt database so certificates can be revoked later. */
class TestPki {
  readonly cnf: string;

  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'newcerts'), { recursive: true });
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '1000\n');
    writeFileSync(join(dir, 'crlnumber'), '1000\n');
    this.cnf = join(dir, 'openssl.cnf');
    writeFileSync(
      this.cnf,
      `[ ca ]
default_ca = CA_default

[ CA_default ]
dir = ${dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client_ext ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`,
    );
    openssl([
      'req', '-x509', '-new', '-config', this.cnf, '-extensions', 'ca_ext',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', this.path('ca.key'), '-out', this.path('ca.crt'), '-subj', '/CN=ovlab test CA', '-days', '3650',
    ]);
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Returns the cert path; `validity` is either days from now or explicit openssl dates. */
  issue(cn: string, ext: 'server_ext' | 'client_ext', validity: { days: number } | { start: string; end: string } = { days: 30 }): string {
    openssl([
      'req', '-new', '-config', this.cnf, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', this.path(`${cn}.key`), '-out', this.path(`${cn}.csr`), '-subj', `/CN=${cn}`,
    ]);
    const dates = 'days' in validity ? ['-days', String(validity.days)] : ['-startdate', validity.start, '-enddate', validity.end];
    openssl([
      'ca', '-batch', '-notext', '-config', this.cnf, '-extensions', ext, ...dates,
      '-in', this.path(`${cn}.csr`), '-out', this.path(`${cn}.crt`),
    ]);
    return this.path(`${cn}.crt`);
  }

  revoke(cn: string): void {
    openssl(['ca', '-batch', '-config', this.cnf, '-revoke', this.path(`${cn}.crt`)]);
  }

  /** Returns the PEM of a fresh CRL over everything revoked so far. */
  crl(): string {
    const out = this.path('crl.tmp.pem');
    openssl(['ca', '-batch', '-config', this.cnf, '-gencrl', '-out', out]);
    return readFileSync(out, 'utf8');
  }
}

/**
 * Swaps the CRL the server reads without a window where it is missing or half-written. OpenVPN
 * only re-reads --crl-verify when the size or the whole-second mtime changed, so the mtime is
 * pushed past the old one even if the size happened to match.
 */
function replaceCrl(crlPath: string, pem: string): void {
  const tmp = `${crlPath}.${process.pid}.tmp`;
  writeFileSync(tmp, pem, { mode: 0o644 });
  chmodSync(tmp, 0o644);
  const oldMtime = Math.floor(statSync(crlPath).mtimeMs / 1000);
  const mtime = Math.max(Math.floor(Date.now() / 1000), oldMtime + 1);
  utimesSync(tmp, mtime, mtime);
  renameSync(tmp, crlPath);
}

function writeProfile(path: string, pki: TestPki, cn: string, tlsCryptKey: string): string {
  const read = (p: string) => readFileSync(p, 'utf8').trim();
  writeFileSync(
    path,
    `client
dev tun
proto udp
remote 127.0.0.1 1194
nobind
remote-cert-tls server
verb 3
<ca>
${read(pki.path('ca.crt'))}
</ca>
<cert>
${read(pki.path(`${cn}.crt`))}
</cert>
<key>
${read(pki.path(`${cn}.key`))}
</key>
<tls-crypt>
${read(tlsCryptKey)}
</tls-crypt>
`,
    { mode: 0o600 },
  );
  return path;
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
      // The server greets with an >INFO line first; the command goes out only after it.
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

describe('OpenVPN lab (real server and clients in a network namespace)', () => {
  let work: string;
  let pki: TestPki;
  let crlPath: string;
  let mgmtSock: string;
  const profiles: Record<string, string> = {};
  let ns: Netns | undefined;
  let server: OpenvpnServer | undefined;

  beforeAll(async () => {
    assertOpenvpnLabAvailable();
    assertOpensslAvailable();

    // mkdtemp makes 0700 dirs, but the server re-reads the CRL as `nobody` after dropping
    // privileges, so every directory on the way to it must be traversable.
    work = mkdtempSync(join(tmpdir(), 'ovlab-e2e-'));
    chmodSync(work, 0o755);
    const pkiDir = join(work, 'pki');
    mkdirSync(pkiDir, { mode: 0o700 });
    const crlDir = join(work, 'crl');
    mkdirSync(crlDir, { mode: 0o755 });
    chmodSync(crlDir, 0o755);
    const serverDir = join(work, 'server');
    mkdirSync(serverDir, { mode: 0o700 });
    const profileDir = join(work, 'profiles');
    mkdirSync(profileDir, { mode: 0o700 });

    pki = new TestPki(pkiDir);
    pki.issue('server', 'server_ext');
    pki.issue('client1', 'client_ext');
    pki.issue('client2', 'client_ext');
    pki.issue('expired', 'client_ext', { start: '20200101000000Z', end: '20200201000000Z' });

    crlPath = join(crlDir, 'crl.pem');
    writeFileSync(crlPath, pki.crl(), { mode: 0o644 });
    chmodSync(crlPath, 0o644);

    const tlsCrypt = join(pkiDir, 'tls-crypt.key');
    execFileSync(findExecutable('openvpn') ?? 'openvpn', ['--genkey', 'secret', tlsCrypt], { stdio: 'pipe' });

    mgmtSock = join(serverDir, 'mgmt.sock');
    const serverConf = join(serverDir, 'server.conf');
    writeFileSync(
      serverConf,
      `proto udp
local 127.0.0.1
port 1194
dev tun
topology subnet
server 10.99.0.0 255.255.255.0
ca ${pki.path('ca.crt')}
cert ${pki.path('server.crt')}
key ${pki.path('server.key')}
dh none
tls-crypt ${tlsCrypt}
crl-verify ${crlPath}
user nobody
group nogroup
persist-key
persist-tun
management ${mgmtSock} unix
verb 3
`,
    );

    for (const cn of ['client1', 'client2', 'expired']) {
      profiles[cn] = writeProfile(join(profileDir, `${cn}.ovpn`), pki, cn, tlsCrypt);
    }

    ns = await createNetns('ovlab-e2e');
    server = await startOpenvpnServer(ns, serverConf);
  });

  afterAll(async () => {
    await server?.stop();
    await ns?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const live = () => {
    if (!ns || !server) throw new Error('lab not started');
    return { ns, server };
  };

  it('lets a client with a valid certificate complete the handshake', async () => {
    const { ns, server } = live();
    const res = await tryConnect(ns, profiles.client1!, server);
    expect(res.connected, `${res.reason}\n${res.log}\n--- server ---\n${res.serverLogExcerpt}`).toBe(true);
    expect(res.log).toMatch(/Initialization Sequence Completed/);
    expect(res.serverLogExcerpt).toMatch(/client1.*Peer Connection Initiated/);
  });

  it('refuses a client revoked in a CRL swapped in while the server runs, and still admits others', async () => {
    const { ns, server } = live();
    pki.revoke('client1');
    replaceCrl(crlPath, pki.crl());

    const started = Date.now();
    const revoked = await tryConnect(ns, profiles.client1!, server);
    const refusalMs = Date.now() - started;
    expect(revoked.connected, `${revoked.reason}\n${revoked.log}`).toBe(false);
    expect(revoked.serverLogExcerpt).toMatch(/VERIFY ERROR: depth=0, error=certificate revoked.*CN=client1/);
    // The point of the fast-fail options: a refusal must not cost the 60 s default hand-window.
    expect(refusalMs).toBeLessThan(10_000);

    const other = await tryConnect(ns, profiles.client2!, server);
    expect(other.connected, `${other.reason}\n${other.log}\n--- server ---\n${other.serverLogExcerpt}`).toBe(true);

    // Same server process throughout: the CRL was picked up without a restart.
    expect(server.log().match(/Initialization Sequence Completed/g)).toHaveLength(1);
  });

  it('refuses a client whose certificate has expired', async () => {
    const { ns, server } = live();
    const res = await tryConnect(ns, profiles.expired!, server);
    expect(res.connected, `${res.reason}\n${res.log}`).toBe(false);
    expect(res.serverLogExcerpt).toMatch(/VERIFY ERROR: depth=0, error=certificate has expired.*CN=expired/);
  });

  it('holds a live session that the management interface can see and end', async () => {
    const { ns, server } = live();
    const held = await connectAndHold(ns, profiles.client2!, server);
    try {
      expect(held.isRunning()).toBe(true);
      const status = await management(mgmtSock, 'status 2');
      // status 2: CLIENT_LIST,CN,real addr,virtual addr,virtual v6,rx,tx,since,since_t,username,CID,...
      const row = status.split('\n').find((l) => l.startsWith('CLIENT_LIST,client2,'));
      const cid = row?.split(',')[10];
      expect(cid, status).toMatch(/^\d+$/);
      // Unlike `kill CN`, which on UDP only drops the server-side session, client-kill tells the
      // client, so the held process must actually go away.
      expect(await management(mgmtSock, `client-kill ${cid} HALT`)).toMatch(/^SUCCESS: client-kill command succeeded/m);
      expect(await held.waitForLog(/server-pushed-halt/)).toMatch(/SIGTERM\[soft,server-pushed-halt\]/);
      expect(await held.waitForExit()).toBe(true);
    } finally {
      await held.stop();
    }
  });

  it('drops the server-side session on management `kill CN`', async () => {
    const { ns, server } = live();
    const held = await connectAndHold(ns, profiles.client2!, server);
    try {
      expect(await management(mgmtSock, 'status 2')).toMatch(/^CLIENT_LIST,client2,/m);
      expect(await management(mgmtSock, 'kill client2')).toMatch(/SUCCESS: common name 'client2' found, 1 client\(s\) killed/);
      expect(await management(mgmtSock, 'status 2')).not.toMatch(/^CLIENT_LIST,client2,/m);
    } finally {
      await held.stop();
    }
  });

  it('tears down the server process and the namespace', async () => {
    const { ns, server } = live();
    await server.stop();
    await ns.destroy();
    expect(() => process.kill(server.pid, 0)).toThrow();
    const list = execFileSync(findExecutable('ip') ?? 'ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(list).not.toContain(ns.name);
  });
});
