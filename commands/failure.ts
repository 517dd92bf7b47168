// Every way a command can end other than success, with the exit code a script can branch on.
// The message is one line that says what to do next.
export const EXIT = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  refused: 3,
  deliveryFailed: 4,
  configuration: 5,
} as const;

export interface Failure {
  readonly exitCode: (typeof EXIT)[keyof typeof EXIT];
  readonly message: string;
  /** What the command did do before failing (a job's report), printed to stdout as on success. */
  readonly output?: string;
}

export const refused = (message: string): Failure => ({ exitCode: EXIT.refused, message });
export const misconfigured = (message: string): Failure => ({ exitCode: EXIT.configuration, message });
export const deliveryFailed = (message: string): Failure => ({ exitCode: EXIT.deliveryFailed, message });
