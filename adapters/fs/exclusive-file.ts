// "Create it unless it exists, then use what is there": two processes racing to create the same
// secret end up using the same one, and a process killed mid-write never leaves a half file that
// a later run would trust. The bytes are written and flushed under a temporary name, then
// hard-linked to the final name: link() fails with EEXIST if the name exists, atomically.
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { syncDirectory, writeFileAtomic } from './atomic-file.js';

export async function createExclusive(path: string, mode: number, make: () => Promise<string>): Promise<string> {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const content = await make();
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.new`);
  writeFileAtomic(temp, content, mode);
  try {
    linkSync(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(path, 'utf8');
    throw error;
  } finally {
    rmSync(temp, { force: true });
  }
  syncDirectory(dirname(path));
  return content;
}
