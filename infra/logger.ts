// pino to stderr (operator output owns stdout) or to a file. Keys and passwords never reach a log
// call; the redact list is a second line of defence for fields that might carry one by mistake.
import pino, { type Logger } from 'pino';
import type { Environment } from './environment.js';

export type { Logger };

export function createLogger(env: Pick<Environment, 'logFile' | 'logLevel'>, command: string): Logger {
  const destination = env.logFile
    ? pino.destination({ dest: env.logFile, mkdir: true, append: true, sync: true })
    : pino.destination({ dest: 2, sync: true });
  return pino(
    {
      level: env.logLevel,
      base: { command, pid: process.pid },
      redact: { paths: ['*.password', '*.privateKeyPem', '*.profile', 'password', 'privateKeyPem'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
