// ov_status and ov_server_renew, end to end: the built commands, a real OpenVPN server in a
// network namespace, and the clock moved with OVL_NOW. The gateway runs with short lifetimes
// (CRL 100 days, server certificate 90 days) so that each threshold is crossed in turn; exit codes
// are 0 ok, 1 warning, 2 critical. Then the server certificate is renewed with the CA unchanged,
// OpenVPN is restarted through RESTART_COMMAND, and a profile issued before the renewal connects
// to the new certificate.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCliBuilt, runCli, runCliOk, type CliCommand } from '../support/cli.js';
import {
  assertOpenvpnLabAvailable,
  connectAndHold,
  createNetns,
  startOpenvpnServer,
  tryConnect,
  type HeldConnection,
  type Netns,
  type OpenvpnServer,
} from '../support/openvpn-lab.js';

interface StatusJson {
  status: 'ok' | 'warning' | 'critical';
  checks: { name: string; status: string; summary: string }[];
  crl: { nextUpdate: string; daysLeft: number };
  serverCertificate: { serial: string; commonName: string; daysLeft: number; matchesKey: boolean };
  expiringProfiles: { profiles: { email: string }[] };
  openvpn: { reachable: boolean; connected?: number; clients?: { email: string; traffic: string }[] };
}

const DAY = 86_400_000;
const at = (days: number) => new Date(Date.now() + days * DAY).toISOString();

function openssl(args: string[]): string {
  const res = spawnSync('openssl', args, { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${res.stderr}`);
  return `${res.stdout}${res.stderr}`;
}

describe('gateway health: ov_status thresholds and exit codes, ov_server_renew with the CA unchanged (real OpenVPN)', () => {
  let work: string | undefined;
  let stateDir: string;
  let configDir: string;
  let ns: Netns | undefined;
  let server: OpenvpnServer | undefined;
  let alice: HeldConnection | undefined;
  let aliceProfile: string | undefined;
  let firstServerSerial: string | undefined;
  let renewedSerial: string | undefined;

  const env = (now?: string) => ({ OVL_STATE_DIR: stateDir, OVL_CONFIG_DIR: configDir, OVL_NOW: now, OVL_LOG_FILE: undefined, OVL_LOG_LEVEL: undefined });
  const cliOk = (command: CliCommand, args: string[], now?: string) => runCliOk(command, args, { env: env(now) });
  const status = async (now?: string): Promise<{ code: number | null; json: StatusJson }> => {
    const res = await runCli('ov_status', ['--json'], { env: env(now) });
    return { code: res.code, json: JSON.parse(res.stdout) as StatusJson };
  };
  const notOk = (s: StatusJson) => s.checks.filter((c) => c.status !== 'ok').map((c) => `${c.name}:${c.status}`);
  const live = () => {
    if (!ns || !server) throw new Error('an earlier step failed: the OpenVPN server is not running');
    return { ns, server };
  };
  const serverConf = () => join(stateDir, 'openvpn', 'server.conf');

  beforeAll(async () => {
    assertOpenvpnLabAvailable();
    assertCliBuilt();
    work = mkdtempSync(join(tmpdir(), 'ovl-health-'));
    chmodSync(work, 0o755);
    stateDir = join(work, 'state');
    configDir = join(work, 'config');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'gateway.conf'), 'ROUTES="10.20.0.0/16"\nCRL_VALIDITY_DAYS=100\nSERVER_CERT_DAYS=90\n');
    writeFileSync(join(configDir, 'email.conf'), `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME=Test\nDELIVERY=outbox\nOUTBOX_DIR=${join(work, 'outbox')}\n`, { mode: 0o600 });
    await cliOk('ov_init', ['--public-host', '127.0.0.1']);
    const add = (email: string, traffic: string, days: number, autoRenew: string) =>
      cliOk('ov_user_add', [
        '--first-name', 'T', '--last-name', 'Tester', '--email', email, '--traffic', traffic,
        '--expiration-date', at(days).slice(0, 10), '--creation-reason', 'e2e: health', '--auto-renew', autoRenew,
      ]);
    aliceProfile = /^Kept at (.+)\.$/m.exec(await add('alice@example.com', 'all', 200, 'no'))?.[1];
    await add('bob@example.com', 'partial', 5, 'yes');
    firstServerSerial = openssl(['x509', '-in', join(stateDir, 'openvpn', 'server.crt'), '-noout', '-serial']).trim().replace(/^serial=/, '').toLowerCase();
    ns = await createNetns('ovl-health');
    server = await startOpenvpnServer(ns, serverConf());
  });

  afterAll(async () => {
    await alice?.stop();
    await server?.stop();
    await ns?.destroy();
    if (work && process.env.OVLAB_KEEP_LOGS !== '1') rmSync(work, { recursive: true, force: true });
  });

  it('given a fresh gateway with OpenVPN running and alice connected, then ov_status is ok (exit 0), names her, and lists bob as expiring within the window', async () => {
    const { ns, server } = live();
    if (!aliceProfile) throw new Error('an earlier step failed: alice was not added');
    alice = await connectAndHold(ns, aliceProfile, server);
    const { code, json } = await status();
    expect(notOk(json)).toEqual([]);
    expect(code).toBe(0);
    expect(json.status).toBe('ok');
    expect(json.openvpn).toMatchObject({ reachable: true, connected: 1, clients: [{ email: 'alice@example.com', traffic: 'all' }] });
    expect(json.expiringProfiles.profiles.map((p) => p.email)).toEqual(['bob@example.com']);
    expect(json.serverCertificate).toMatchObject({ serial: firstServerSerial, matchesKey: true });
    expect(json.crl.daysLeft).toBe(99);

    const text = await runCli('ov_status', [], { env: env() });
    expect(text.stdout).toMatch(/^Gateway status: OK \(/);
    expect(text.stdout).toMatch(/^ {2}alice@example\.com \(all\) from /m);
  });

  it('when 35 days have passed, then the server certificate (54 whole days left, warned from 60) is a warning: exit 1', async () => {
    const { code, json } = await status(at(35));
    expect(notOk(json)).toEqual(['server-certificate:warning']);
    expect(code).toBe(1);
    expect(json.checks.find((c) => c.name === 'server-certificate')?.summary).toMatch(/\(54 day\(s\) left\); run ov_server_renew$/);
  });

  it('when 72 days have passed, then the CRL (28 days to its nextUpdate, warned from 30) warns as well: exit 1', async () => {
    const { code, json } = await status(at(72));
    expect(notOk(json)).toEqual(['crl:warning', 'server-certificate:warning']);
    expect(code).toBe(1);
  });

  it('when 86 days have passed, then a server certificate inside its last week is critical: exit 2', async () => {
    const { code, json } = await status(at(86));
    expect(notOk(json)).toEqual(['crl:warning', 'server-certificate:critical']);
    expect(code).toBe(2);
    const text = await runCli('ov_status', [], { env: env(at(86)) });
    expect(text.code).toBe(2);
    expect(text.stdout).toMatch(/^Gateway status: CRITICAL \(/);
  });

  it('when the CRL\'s nextUpdate has passed, then ov_status says OpenVPN refuses every client: exit 2', async () => {
    const { code, json } = await status(at(101));
    expect(code).toBe(2);
    expect(json.checks.find((c) => c.name === 'crl')).toMatchObject({
      status: 'critical',
      summary: expect.stringMatching(/expired 1 day\(s\) ago\); OpenVPN refuses every client: run ov_user_renew_due to re-sign it$/),
    });
  });

  it('given no RESTART_COMMAND, when ov_server_renew --restart runs, then it is refused (exit 3) and nothing is renewed', async () => {
    const res = await runCli('ov_server_renew', ['--restart'], { env: env() });
    expect(res.code).toBe(3);
    expect(res.stderr).toBe('ov_server_renew: --restart needs RESTART_COMMAND in gateway.conf (e.g. "systemctl restart ovpn-ledger-openvpn"); nothing was renewed\n');
    const serial = openssl(['x509', '-in', join(stateDir, 'openvpn', 'server.crt'), '-noout', '-serial']).trim().replace(/^serial=/, '').toLowerCase();
    expect(serial).toBe(firstServerSerial);
  });

  it('when ov_server_renew --restart runs, then a new key and certificate with the same CN are signed by the unchanged CA, and RESTART_COMMAND runs', async () => {
    const { server: running } = live();
    const caBefore = readFileSync(join(stateDir, 'openvpn', 'ca.crt'));
    const keyBefore = readFileSync(join(stateDir, 'keys', 'server.key'));
    const cnBefore = openssl(['x509', '-in', join(stateDir, 'openvpn', 'server.crt'), '-noout', '-subject', '-nameopt', 'RFC2253']).trim();
    writeFileSync(join(work!, 'openvpn.pid'), String(running.pid));
    writeFileSync(join(work!, 'restart.sh'), `#!/bin/sh\nkill -TERM "$(cat "${join(work!, 'openvpn.pid')}")"\n`, { mode: 0o755 });
    writeFileSync(join(configDir, 'gateway.conf'), `ROUTES="10.20.0.0/16"\nCRL_VALIDITY_DAYS=100\nSERVER_CERT_DAYS=90\nRESTART_COMMAND="${join(work!, 'restart.sh')}"\n`);

    const out = await cliOk('ov_server_renew', ['--restart', '--days', '825']);
    renewedSerial = /serial ([0-9a-f]+) \(was ([0-9a-f]+)\)/.exec(out)?.[1];
    expect(out).toContain(`(was ${firstServerSerial})`);
    expect(renewedSerial).toBeDefined();
    expect(renewedSerial).not.toBe(firstServerSerial);
    expect(out).toContain('The CA is unchanged: every profile issued so far keeps working.');
    expect(out).toContain(`OpenVPN restarted (${join(work!, 'restart.sh')}) and serves the new certificate.`);

    const crt = join(stateDir, 'openvpn', 'server.crt');
    expect(readFileSync(join(stateDir, 'openvpn', 'ca.crt')).equals(caBefore)).toBe(true);
    expect(readFileSync(join(stateDir, 'keys', 'server.key')).equals(keyBefore)).toBe(false);
    expect(openssl(['x509', '-in', crt, '-noout', '-subject', '-nameopt', 'RFC2253']).trim()).toBe(cnBefore);
    expect(openssl(['verify', '-CAfile', join(stateDir, 'openvpn', 'ca.crt'), '-purpose', 'sslserver', crt])).toContain(`${crt}: OK`);
    expect(openssl(['x509', '-in', crt, '-noout', '-ext', 'extendedKeyUsage'])).toMatch(/TLS Web Server Authentication/);
    await alice?.stop();
    alice = undefined;
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(running.pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(() => process.kill(running.pid, 0)).toThrow();
  });

  it('given OpenVPN started again on the same config, when alice\'s profile issued before the renewal connects, then it completes the handshake against the new server certificate', async () => {
    const { ns } = live();
    if (!renewedSerial || !aliceProfile) throw new Error('an earlier step failed: no renewal');
    server = await startOpenvpnServer(ns, serverConf());
    const seen = join(work!, 'server-serials');
    writeFileSync(join(work!, 'tls-verify.sh'), '#!/bin/sh\n[ "$1" = 0 ] && echo "$tls_serial_hex_0" >> "$OVL_TEST_OUT"\nexit 0\n', { mode: 0o755 });
    const res = await tryConnect(ns, aliceProfile, server, {
      extraArgs: ['--script-security', '2', '--tls-verify', join(work!, 'tls-verify.sh'), '--setenv', 'OVL_TEST_OUT', seen],
    });
    expect(res.connected, `${res.reason}\n${res.log}`).toBe(true);
    const served = readFileSync(seen, 'utf8').trim().split('\n').at(-1)?.replace(/:/g, '').toLowerCase().replace(/^0+/, '');
    expect(served).toBe(renewedSerial.replace(/^0+/, ''));

    const { code, json } = await status();
    expect(notOk(json)).toEqual([]);
    expect(code).toBe(0);
    expect(json.serverCertificate).toMatchObject({ serial: renewedSerial, matchesKey: true, daysLeft: 824 });
  });
});
