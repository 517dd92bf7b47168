// Where everything lives under the state directory, and with which permissions. One place, so the
// README's "state layout" section, the backup and the code cannot drift apart.
//
//   $OVL_STATE_DIR/                  0755  (OpenVPN, running as nobody, must reach openvpn/crl.pem)
//     ledger.sqlite                  0600  events and read models
//     keys/                          0700  private keys and secrets, never in events or logs
//       ca.key  server.key  tls-crypt.key  profile-id.key
//       clients/<serial>.key         0600
//     openvpn/                       0755
//       ca.crt  server.crt           0644
//       crl.pem                      0644  rewritten atomically on every revocation
//       server.conf                  0644  generated; never edit by hand
//     profiles/<profile id>/<serial>.ovpn   0600 (dirs 0700): the exact bytes mailed
//     run/                           0700  management socket
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const MODE = {
  publicDir: 0o755,
  privateDir: 0o700,
  publicFile: 0o644,
  secretFile: 0o600,
} as const;

export interface StateLayout {
  readonly root: string;
  readonly database: string;
  readonly keysDir: string;
  readonly caKey: string;
  readonly serverKey: string;
  readonly tlsCryptKey: string;
  readonly profileIdKey: string;
  readonly clientKeysDir: string;
  readonly openvpnDir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly crl: string;
  readonly serverConf: string;
  readonly profilesDir: string;
  readonly runDir: string;
  readonly managementSocket: string;
  clientKey(serial: string): string;
  profileDir(profileId: string): string;
  profile(profileId: string, serial: string): string;
}

export function stateLayout(root: string): StateLayout {
  const keysDir = join(root, 'keys');
  const openvpnDir = join(root, 'openvpn');
  const profilesDir = join(root, 'profiles');
  const runDir = join(root, 'run');
  const clientKeysDir = join(keysDir, 'clients');
  return {
    root,
    database: join(root, 'ledger.sqlite'),
    keysDir,
    caKey: join(keysDir, 'ca.key'),
    serverKey: join(keysDir, 'server.key'),
    tlsCryptKey: join(keysDir, 'tls-crypt.key'),
    profileIdKey: join(keysDir, 'profile-id.key'),
    clientKeysDir,
    openvpnDir,
    caCert: join(openvpnDir, 'ca.crt'),
    serverCert: join(openvpnDir, 'server.crt'),
    crl: join(openvpnDir, 'crl.pem'),
    serverConf: join(openvpnDir, 'server.conf'),
    profilesDir,
    runDir,
    managementSocket: join(runDir, 'management.sock'),
    clientKey: (serial) => join(clientKeysDir, `${serial}.key`),
    profileDir: (profileId) => join(profilesDir, profileId),
    profile: (profileId, serial) => join(profilesDir, profileId, `${serial}.ovpn`),
  };
}

export function ensureDirectory(path: string, mode: number): void {
  if (!existsSync(path)) mkdirSync(path, { recursive: true, mode });
  if ((statSync(path).mode & 0o777) !== mode) chmodSync(path, mode);
}

/** Creates the directory tree with its permissions; safe to run again. */
export function ensureStateDirectories(layout: StateLayout): void {
  ensureDirectory(layout.root, MODE.publicDir);
  ensureDirectory(layout.keysDir, MODE.privateDir);
  ensureDirectory(layout.clientKeysDir, MODE.privateDir);
  ensureDirectory(layout.openvpnDir, MODE.publicDir);
  ensureDirectory(layout.profilesDir, MODE.privateDir);
  ensureDirectory(layout.runDir, MODE.privateDir);
}
