// The small decisions around the two commands: where an archive goes by default (the state
// owner's home, from /etc/passwd), what it is called, and who may run them on the system state.
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { accountFromPasswd } from '../../adapters/fs/owner-home.js';
import { requireRootForSystemState, SYSTEM_STATE_DIR } from '../../commands/cli/system-state.js';
import { archiveName, compactUtc } from '../../commands/use-cases/backup.js';
import type { Environment } from '../../infra/environment.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  '# a comment',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'ec2-user:x:1000:1000:EC2 Default User:/home/ec2-user:/bin/bash',
  'broken:x:1001',
  '',
].join('\n');

describe('the default output directory', () => {
  it('is the home of the account that owns the state directory, by uid', () => {
    expect(accountFromPasswd(PASSWD, 0)).toEqual({ uid: 0, name: 'root', home: '/root' });
    expect(accountFromPasswd(PASSWD, 1000)).toEqual({ uid: 1000, name: 'ec2-user', home: '/home/ec2-user' });
    expect(accountFromPasswd(PASSWD, 1001)).toBeUndefined();
    expect(accountFromPasswd(PASSWD, 4242)).toBeUndefined();
  });
});

describe('the archive name', () => {
  it('is backup-<hostname>-<UTC timestamp>.tar.gz, sortable and without colons', () => {
    const at = new Date('2026-03-01T12:34:56.789Z');
    expect(compactUtc(at)).toBe('20260301T123456Z');
    expect(archiveName('gw-1.example.com', at)).toBe('backup-gw-1.example.com-20260301T123456Z.tar.gz');
    expect(archiveName('we!rd/host', at)).toBe('backup-we-rd-host-20260301T123456Z.tar.gz');
  });
});

describe('on the system state directory', () => {
  const env = (stateDir: string) => ({ stateDir }) as Environment;
  it('only root may back up or restore', () => {
    expect(requireRootForSystemState('ov_backup', env(SYSTEM_STATE_DIR), 0)).toEqual(E.right(true));
    const refused = requireRootForSystemState('ov_restore', env(SYSTEM_STATE_DIR), 1000);
    expect(refused).toMatchObject({ _tag: 'Left', left: { exitCode: 3 } });
    expect(E.isLeft(refused) && refused.left.message).toMatch(/run it as root \(sudo ov_restore …\) on \/var\/lib\/ovpn-ledger/);
  });

  it('anyone may on a state directory of their own', () => {
    expect(requireRootForSystemState('ov_backup', env('/tmp/mine'), 1000)).toEqual(E.right(true));
  });
});
