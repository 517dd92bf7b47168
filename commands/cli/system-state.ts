// ov_backup and ov_restore read or replace every secret of the gateway: on the system state
// directory they run as root or not at all (the gateway manual: "Both commands refuse to run
// without sudo"). A state directory elsewhere (tests, a scratch gateway) is the caller's own.
import * as E from 'fp-ts/lib/Either.js';
import type { Environment } from '../../infra/environment.js';
import { refused, type Failure } from '../failure.js';

export const SYSTEM_STATE_DIR = '/var/lib/ovpn-ledger';

export function requireRootForSystemState(command: string, env: Environment, uid: number | undefined = process.getuid?.()): E.Either<Failure, true> {
  if (env.stateDir !== SYSTEM_STATE_DIR || uid === 0) return E.right(true);
  return E.left(refused(`${command} handles every private key of the gateway: run it as root (sudo ${command} …) on ${SYSTEM_STATE_DIR}`));
}
