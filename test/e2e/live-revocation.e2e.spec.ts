// Live revocation against a real OpenVPN server in a network namespace: two users connected, one
// deleted with the built ov_user_delete. The deleted one is cut off within 2 s (client-kill HALT
// through the management interface) and refused when it tries again; the other stays connected,
// as the management interface's own `status` shows. When the management interface does not
// answer, ov_user_delete says so and runs RESTART_COMMAND instead; a failing or missing command
// is reported, never silent.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConnectedClients } from '../../adapters/openvpn/management-status.js';
import { assertCliBuilt, runCliOk, type CliCommand } from '../support/cli.js';
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

type Name = 'alice' | 'bob' | 'carol' | 'dave';

describe('live revocation: the deleted user is cut off at once, everyone else stays (real OpenVPN in a namespace)', () => {
  let work: string | undefined;
  let stateDir: string;
  let configDir: string;
  let ns: Netns | undefined;
  let server: OpenvpnServer | undefined;
  const held: Partial<Record<Name, HeldConnection>> = {};
  const users: Partial<Record<Name, { profilePath: string; profileId: string }>> = {};

  const cliOk = (command: CliCommand, args: string[]) =>
    runCliOk(command, args, { env: { OVL_STATE_DIR: stateDir, OVL_CONFIG_DIR: configDir, OVL_NOW: undefined, OVL_LOG_FILE: undefined, OVL_LOG_LEVEL: undefined } });
  const user = (name: Name) => {
    const u = users[name];
    if (!u) throw new Error(`an earlier step failed: ${name} was not added`);
    return u;
  };
  const live = () => {
    if (!ns || !server) throw new Error('an earlier step failed: the OpenVPN server is not running');
    return { ns, server };
  };
  const socket = () => join(stateDir, 'run', 'management.sock');
  const connected = async (): Promise<string[]> => {
    const answer = await readConnectedClients(socket());
    if (answer.kind !== 'answered') throw new Error(`management status: ${answer.reason}`);
    return answer.clients.map((c) => c.commonName);
  };
  const gatewayConf = (extra: string) => writeFileSync(join(configDir, 'gateway.conf'), `ROUTES="10.20.0.0/16"\n${extra}`);

  beforeAll(async () => {
    assertOpenvpnLabAvailable();
    assertCliBuilt();
    work = mkdtempSync(join(tmpdir(), 'ovl-live-'));
    chmodSync(work, 0o755);
    stateDir = join(work, 'state');
    configDir = join(work, 'config');
    mkdirSync(configDir);
    gatewayConf('');
    writeFileSync(join(configDir, 'email.conf'), `FROM_EMAIL=vpn@example.com\nENVIRONMENT_NAME=Test\nDELIVERY=outbox\nOUTBOX_DIR=${join(work, 'outbox')}\n`, { mode: 0o600 });
    await cliOk('ov_init', ['--public-host', '127.0.0.1']);
    const expires = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
    for (const [name, traffic] of [['alice', 'all'], ['bob', 'partial'], ['carol', 'all'], ['dave', 'partial']] as const) {
      const out = await cliOk('ov_user_add', [
        '--first-name', name, '--last-name', 'Tester', '--email', `${name}@example.com`, '--traffic', traffic,
        '--expiration-date', expires, '--creation-reason', 'e2e: live revocation',
      ]);
      const profilePath = /^Kept at (.+)\.$/m.exec(out)?.[1] ?? '';
      users[name] = { profilePath, profileId: profilePath.split('/').at(-2) ?? '' };
    }
    ns = await createNetns('ovl-live');
    server = await startOpenvpnServer(ns, join(stateDir, 'openvpn', 'server.conf'));
  });

  afterAll(async () => {
    for (const h of Object.values(held)) await h?.stop();
    await server?.stop();
    await ns?.destroy();
    if (work && process.env.OVLAB_KEEP_LOGS !== '1') rmSync(work, { recursive: true, force: true });
  });

  it('given alice and bob both connected, when alice is deleted, then her client is told to stop and exits within 2 s, bob stays connected, and alice is refused when she tries again', async () => {
    const { ns, server } = live();
    held.alice = await connectAndHold(ns, user('alice').profilePath, server);
    held.bob = await connectAndHold(ns, user('bob').profilePath, server);
    expect((await connected()).sort()).toEqual([user('alice').profileId, user('bob').profileId].sort());

    const started = Date.now();
    const out = await cliOk('ov_user_delete', ['--email', 'alice@example.com', '--traffic', 'all']);
    expect(out).toMatch(/^Live sessions ended: 1 \(the client was told to stop\)\.$/m);
    expect(await held.alice.waitForExit(2_000), held.alice.log()).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000 + 1_500); // the command itself (node start-up) included
    expect(held.alice.log()).toMatch(/Halt command was pushed by server/);

    // The client is gone; the server keeps its instance a few seconds (so the HALT gets through)
    // and then drops it, while bob's stays.
    let names: string[] = [];
    for (let i = 0; i < 40; i++) {
      names = await connected();
      if (!names.includes(user('alice').profileId)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(names).toEqual([user('bob').profileId]);
    expect(held.bob.isRunning()).toBe(true);

    const again = await tryConnect(ns, user('alice').profilePath, server);
    expect(again.connected, again.reason).toBe(false);
    expect(again.serverLogExcerpt).toMatch(new RegExp(`VERIFY ERROR: depth=0, error=certificate revoked.*CN=${user('alice').profileId}`));
    expect(await connected()).toEqual([user('bob').profileId]);
  });

  it('given the management interface does not answer (a stale socket), when bob is deleted, then ov_user_delete says so and runs RESTART_COMMAND, and the restarted server refuses bob', async () => {
    const { ns, server: first } = live();
    // Stand-in for `systemctl restart`: note the call and stop this server by its pid.
    writeFileSync(join(work!, 'openvpn.pid'), String(first.pid));
    writeFileSync(join(work!, 'restart.sh'), `#!/bin/sh\necho restart >> "${join(work!, 'restarts')}"\nkill -TERM "$(cat "${join(work!, 'openvpn.pid')}")"\n`, { mode: 0o755 });
    gatewayConf(`RESTART_COMMAND="${join(work!, 'restart.sh')}"\n`);
    // OpenVPN keeps listening on the moved socket; what sits at the path refuses connections.
    renameSync(socket(), `${socket()}.moved`);
    writeFileSync(socket(), '');

    const out = await cliOk('ov_user_delete', ['--email', 'bob@example.com', '--traffic', 'partial']);
    expect(out).toMatch(/^Warning: the OpenVPN management interface did not answer \(ECONNREFUSED\); without a restart a live session lasts until its next renegotiation\.$/m);
    expect(out).toContain(`OpenVPN restarted instead (${join(work!, 'restart.sh')}): every session ended, and the revoked profile is refused when it reconnects.`);
    expect(readFileSync(join(work!, 'restarts'), 'utf8')).toBe('restart\n');
    for (let i = 0; i < 50 && (() => { try { process.kill(first.pid, 0); return true; } catch { return false; } })(); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(() => process.kill(first.pid, 0)).toThrow();
    await held.bob?.stop();
    held.bob = undefined;

    // What systemd does next: start OpenVPN again on the same config.
    rmSync(socket(), { force: true });
    rmSync(`${socket()}.moved`, { force: true });
    server = await startOpenvpnServer(ns, join(stateDir, 'openvpn', 'server.conf'));
    const bob = await tryConnect(ns, user('bob').profilePath, server);
    expect(bob.connected, bob.reason).toBe(false);
    expect(bob.serverLogExcerpt).toMatch(/certificate revoked/);
    const carol = await tryConnect(ns, user('carol').profilePath, server);
    expect(carol.connected, carol.reason).toBe(true);
  });

  it('given a restart command that fails, then the failure and its last line are reported; given none, then the operator is told to set RESTART_COMMAND', async () => {
    live();
    const stale = () => {
      renameSync(socket(), `${socket()}.moved`);
      writeFileSync(socket(), '');
    };
    const restore = () => {
      rmSync(socket(), { force: true });
      renameSync(`${socket()}.moved`, socket());
    };

    gatewayConf(`RESTART_COMMAND="echo 'Unit ovpn-ledger-openvpn.service not found.' >&2; exit 5"\n`);
    stale();
    try {
      const out = await cliOk('ov_user_delete', ['--email', 'carol@example.com', '--traffic', 'all']);
      expect(out).toContain(`Warning: the restart command failed (echo 'Unit ovpn-ledger-openvpn.service not found.' >&2; exit 5: exit 5: Unit ovpn-ledger-openvpn.service not found.); restart OpenVPN yourself to end the live session now.`);
    } finally {
      restore();
    }

    gatewayConf('');
    stale();
    try {
      const out = await cliOk('ov_user_delete', ['--email', 'dave@example.com', '--traffic', 'partial']);
      expect(out).toContain('Set RESTART_COMMAND in gateway.conf (e.g. "systemctl restart ovpn-ledger-openvpn") to restart OpenVPN automatically when this happens.');
    } finally {
      restore();
    }
    // The real interface is back and answers again.
    await expect(connected()).resolves.toBeInstanceOf(Array);
  });
});
