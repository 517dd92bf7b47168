// What every ov_* command shares: parse flags with yargs, validate them with zod (one line naming
// the flag on error, exit 2, nothing touched), open the ledger, run one use case, print, exit.
import * as E from 'fp-ts/lib/Either.js';
import yargs, { type Argv } from 'yargs';
import type { z } from 'zod';
import { EventStoreUnavailableError, WrongExpectedRevisionError } from '../../adapters/eventstore/event-store.js';
import { openLedger, requireInitialised, type OpenMode } from '../../infra/composition-root.js';
import { readEnvironment, type Environment } from '../../infra/environment.js';
import { EXIT, type Failure } from '../failure.js';
import type { Ledger } from '../ledger.js';

/** A report on stdout with an exit code of its own (ov_status: 0 ok, 1 warning, 2 critical). */
export interface CommandOutput {
  readonly text: string;
  readonly exitCode: number;
}

export interface CommandSpec<S extends z.ZodType> {
  readonly name: string;
  readonly description: string;
  readonly flags: (y: Argv) => Argv;
  readonly schema: S;
  readonly open: OpenMode;
  readonly run: (input: z.output<S>, context: { ledger: Ledger; env: Environment }) => Promise<E.Either<Failure, string | CommandOutput>>;
  /** Checks that need the environment but no ledger (config files), done before anything is opened. */
  readonly precheck?: (input: z.output<S>, env: Environment) => E.Either<Failure, unknown>;
}

/**
 * A command that opens no ledger (ov_restore builds a state directory rather than opening one):
 * the same flags, validation, one-line errors and exit codes, and `run` gets the environment only.
 */
export interface StandaloneCommandSpec<S extends z.ZodType> extends Omit<CommandSpec<S>, 'open' | 'run'> {
  readonly open: 'none';
  readonly run: (input: z.output<S>, context: { env: Environment }) => Promise<E.Either<Failure, string>>;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function flagError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid flags';
  const key = issue.path[0];
  return key === undefined ? issue.message : `--${kebab(String(key))} ${issue.message}`;
}

/**
 * yargs names flags without their dashes ("Missing required argument: email", "Unknown argument:
 * colour"); say them the way the operator types them, like every other flag error does.
 */
export function usageMessage(message: string, argv: readonly string[]): string {
  const listed = (names: string) => names.split(', ').filter(Boolean);
  const missing = /^Missing required arguments?: (.+)$/.exec(message);
  if (missing) {
    const flags = listed(missing[1] ?? '').map((n) => `--${n}`);
    return `${flags.join(', ')} ${flags.length === 1 ? 'is' : 'are'} required`;
  }
  const unknown = /^Unknown arguments?: (.+)$/.exec(message);
  if (unknown) {
    const end = argv.indexOf('--');
    const typed = (end < 0 ? argv : argv.slice(0, end)).filter((a) => /^-[^\d]/.test(a)).map((a) => a.split('=')[0] ?? a);
    const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    // yargs reports `--no-colour` as "colour" and a kebab flag also in camelCase: map back to what was typed.
    const asTyped = (name: string) =>
      typed.find((t) => {
        const bare = t.replace(/^-+/, '');
        return [bare, camel(bare), bare.replace(/^no-/, ''), camel(bare.replace(/^no-/, ''))].includes(name);
      });
    const names = listed(unknown[1] ?? '');
    const flags = [...new Set(names.map(asTyped).filter((f) => f !== undefined))];
    const extra = names.filter((n) => asTyped(n) === undefined).map((n) => JSON.stringify(n));
    const plural = (n: number, word: string) => (n === 1 ? word : `${word}s`);
    return [
      ...(flags.length > 0 ? [`unknown ${plural(flags.length, 'flag')} ${flags.join(', ')}`] : []),
      ...(extra.length > 0 ? [`unexpected ${plural(extra.length, 'argument')} ${extra.join(', ')}`] : []),
    ].join('; ');
  }
  return message;
}

export async function runCli<S extends z.ZodType>(spec: CommandSpec<S> | StandaloneCommandSpec<S>, argv: readonly string[]): Promise<number> {
  const fail = (code: number, message: string): number => {
    process.stderr.write(`${spec.name}: ${message}\n`);
    return code;
  };

  let parsedFlags: Record<string, unknown>;
  let repeatable = new Set<string>();
  try {
    let usageError: string | undefined;
    const parser = spec
      .flags(yargs([...argv]))
      .scriptName(spec.name)
      .usage(`$0 — ${spec.description}`)
      .strict()
      .version(false)
      .help('help')
      .alias('help', 'h')
      .wrap(Math.min(100, process.stdout.columns || 100))
      .exitProcess(false)
      .fail((msg, err) => {
        usageError = msg || err?.message || 'invalid flags';
      });
    parsedFlags = (await parser.parseAsync()) as Record<string, unknown>;
    // getOptions() is public in yargs but missing from its type definitions.
    repeatable = new Set((parser as unknown as { getOptions(): { array: string[] } }).getOptions().array);
    if (usageError !== undefined) return fail(EXIT.usage, `${usageMessage(usageError, argv).replace(/\n/g, ' ')} (see --help)`);
    if (parsedFlags['help'] === true) return EXIT.ok;
  } catch (error) {
    return fail(EXIT.usage, (error as Error).message);
  }

  const flags = Object.fromEntries(Object.entries(parsedFlags).filter(([k]) => k !== '_' && k !== '$0' && !k.includes('-')));
  // yargs turns a flag given twice into an array; say so rather than "expected string".
  const repeated = Object.entries(flags).find(([k, v]) => Array.isArray(v) && !repeatable.has(k) && !repeatable.has(kebab(k)));
  if (repeated) return fail(EXIT.usage, `--${kebab(repeated[0])} is given more than once`);
  const input = spec.schema.safeParse(flags);
  if (!input.success) return fail(EXIT.usage, flagError(input.error));

  const env = readEnvironment(process.env);
  if (E.isLeft(env)) return fail(EXIT.configuration, env.left);

  if (spec.open === 'existing') {
    const initialised = requireInitialised(env.right);
    if (E.isLeft(initialised)) return fail(initialised.left.exitCode, initialised.left.message);
  }

  if (spec.precheck) {
    const ok = spec.precheck(input.data, env.right);
    if (E.isLeft(ok)) return fail(ok.left.exitCode, ok.left.message);
  }

  let ledger: Ledger | undefined;
  try {
    let result: E.Either<Failure, string | CommandOutput>;
    if (spec.open === 'none') {
      result = await spec.run(input.data, { env: env.right });
    } else {
      const opened = await openLedger(env.right, spec.name, spec.open);
      if (E.isLeft(opened)) return fail(opened.left.exitCode, opened.left.message);
      ledger = opened.right;
      result = await spec.run(input.data, { ledger, env: env.right });
    }
    if (E.isLeft(result)) {
      ledger?.log.info({ exitCode: result.left.exitCode }, result.left.message);
      if (result.left.output) process.stdout.write(result.left.output.endsWith('\n') ? result.left.output : `${result.left.output}\n`);
      return fail(result.left.exitCode, result.left.message);
    }
    const output = typeof result.right === 'string' ? { text: result.right, exitCode: EXIT.ok } : result.right;
    if (output.text !== '') process.stdout.write(output.text.endsWith('\n') ? output.text : `${output.text}\n`);
    return output.exitCode;
  } catch (error) {
    if (error instanceof WrongExpectedRevisionError) {
      return fail(EXIT.refused, `${error.message}; another command changed this profile at the same time, run this one again`);
    }
    if (error instanceof EventStoreUnavailableError) return fail(EXIT.unexpected, error.message);
    ledger?.log.error({ err: error }, 'command failed');
    return fail(EXIT.unexpected, `failed: ${(error as Error).message ?? String(error)}`);
  } finally {
    await ledger?.close();
  }
}

/** Entry point used by every bin: run, then exit with the command's code once output is flushed. */
export function main<S extends z.ZodType>(spec: CommandSpec<S> | StandaloneCommandSpec<S>): void {
  // `ov_user_list | head`: a reader that stops early is not an error of ours.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  runCli(spec, process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${spec.name}: ${(error as Error).message}\n`);
      process.exitCode = EXIT.unexpected;
    },
  );
}
