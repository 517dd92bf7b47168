// Where ov_backup puts an archive by default: the home directory of whoever owns the state
// directory (root on a standard install), found through /etc/passwd by uid.
import { readFileSync, statSync } from 'node:fs';

export interface Account {
  readonly uid: number;
  readonly name: string;
  readonly home: string;
}

/** The account with `uid` in passwd(5) text, or undefined. */
export function accountFromPasswd(passwd: string, uid: number): Account | undefined {
  for (const line of passwd.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const fields = line.split(':');
    if (fields.length < 7) continue;
    const [name, , uidField, , , home] = fields;
    if (uidField === undefined || !/^\d+$/.test(uidField) || Number(uidField) !== uid) continue;
    if (!name || !home?.startsWith('/')) continue;
    return { uid, name, home };
  }
  return undefined;
}

/** The owner of `path` as an account, when /etc/passwd names it. */
export function ownerOf(path: string, passwdFile = '/etc/passwd'): Account | undefined {
  let passwd: string;
  try {
    passwd = readFileSync(passwdFile, 'utf8');
  } catch {
    return undefined;
  }
  return accountFromPasswd(passwd, statSync(path).uid);
}
