// Shell-style `KEY=value` files (email.conf, gateway.conf, dns.conf) as operators actually write
// them. The manual's own example has `ENVIRONMENT_NAME=VPN Server` unquoted, which a shell would
// not accept, so the grammar is the forgiving dotenv dialect rather than what `source` does:
//
// - `#` starts a comment at the start of a line, or after whitespace following an unquoted or
//   quoted value; `PASS=ab#c` keeps its `#`, because passwords contain such characters;
// - `export ` before a key is allowed; spaces around `=` are tolerated;
// - an unquoted value is the rest of the line, trimmed, taken literally (spaces included);
// - 'single quotes' are literal; "double quotes" understand \" \\ \$ \` and nothing else;
// - there is no `$VAR` expansion anywhere: a `$` is just a `$` (a secret with a `$` in it must
//   arrive intact, and silently expanding it to nothing would be worse than any error);
// - a value spans one line; a key set twice takes its last value, as in a shell.
//
// Pure: callers read the file and pass its text, so the same code checks fixtures and real files.
import * as E from 'fp-ts/lib/Either.js';
import type { z } from 'zod';

export interface ConfigFileError {
  readonly _tag: 'ConfigFileError';
  readonly file: string;
  /** 1-based; undefined when the problem is with the file as a whole (a key that is missing). */
  readonly line: number | undefined;
  readonly key: string | undefined;
  /** One line an operator can act on, e.g. `email.conf:4: SMTP_PORT must be a port number`. */
  readonly message: string;
}

export function configFileError(
  file: string,
  line: number | undefined,
  key: string | undefined,
  problem: string,
): ConfigFileError {
  const where = line === undefined ? file : `${file}:${line}`;
  return { _tag: 'ConfigFileError', file, line, key, message: `${where}: ${problem}` };
}

export interface EnvEntry {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

const ASSIGNMENT = /^(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(.*)$/;

/** Every assignment in file order, with its line number (for messages that point at a line). */
export function parseEnvFileEntries(
  text: string,
  fileName: string,
): E.Either<ConfigFileError, ReadonlyArray<EnvEntry>> {
  const entries: EnvEntry[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (const [index, rawLine] of lines.entries()) {
    const line = index + 1;
    const content = rawLine.trim();
    if (content === '' || content.startsWith('#')) continue;
    const match = ASSIGNMENT.exec(content);
    if (!match) {
      return E.left(configFileError(fileName, line, undefined, describeMalformedLine(content)));
    }
    const key = match[1] ?? '';
    const value = parseValue(match[2] ?? '');
    if (E.isLeft(value)) return E.left(configFileError(fileName, line, key, `${key}: ${value.left}`));
    entries.push({ key, value: value.right, line });
  }
  return E.right(entries);
}

/** The file's settings; a key assigned twice has its last value. Empty values are kept as ''. */
export function parseEnvFile(
  text: string,
  fileName: string,
): E.Either<ConfigFileError, Record<string, string>> {
  return E.map(entriesToRecord)(parseEnvFileEntries(text, fileName));
}

/**
 * Parses the file and validates it with a zod schema over `Record<string, string>`; the first
 * problem (in file order) becomes a ConfigFileError naming the key and, when it is set in the
 * file, its line. An empty value (`KEY=`) counts as not set, so the schema sees one notion of
 * "absent" and defaults apply to both.
 *
 * A schema's own messages should read after the key name: `must be …`, `is required when …`.
 */
export function decodeEnvFile<S extends z.ZodType>(
  schema: S,
  text: string,
  fileName: string,
): E.Either<ConfigFileError, z.output<S>> {
  return E.chain((entries: ReadonlyArray<EnvEntry>) => {
    const all = entriesToRecord(entries);
    const lineOf = new Map(entries.map((e) => [e.key, e.line]));
    const present = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== ''));
    const result = schema.safeParse(present);
    if (result.success) return E.right(result.data);
    const issues = result.error.issues.map((issue) => {
      const key = typeof issue.path[0] === 'string' ? issue.path[0] : undefined;
      return { issue, key, line: key === undefined ? undefined : lineOf.get(key) };
    });
    // File order reads naturally when fixing top to bottom; keys that are not in the file at all
    // come after every problem on a line.
    issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    const first = issues[0];
    if (!first) return E.left(configFileError(fileName, undefined, undefined, 'is not valid'));
    const { issue, key, line } = first;
    if (key === undefined) return E.left(configFileError(fileName, undefined, undefined, issue.message));
    const absent = issue.code === 'invalid_type' && !(key in present);
    const problem = !absent
      ? `${key} ${issue.message}`
      : line === undefined
        ? `${key} is required but not set`
        : `${key} is required but empty`;
    return E.left(configFileError(fileName, line, key, problem));
  })(parseEnvFileEntries(text, fileName));
}

function entriesToRecord(entries: ReadonlyArray<EnvEntry>): Record<string, string> {
  // fromEntries defines own properties, so a key named __proto__ cannot reach the prototype.
  return Object.fromEntries(entries.map((e) => [e.key, e.value]));
}

function describeMalformedLine(content: string): string {
  if (!content.includes('=')) return `expected KEY=value, found no '='`;
  const key = content.slice(0, content.indexOf('=')).trim().replace(/^export\s+/, '');
  return `expected KEY=value, but ${JSON.stringify(key)} is not a valid key (letters, digits and _, not starting with a digit)`;
}

/** The text after `=`, still holding any quotes and trailing comment. */
function parseValue(afterEquals: string): E.Either<string, string> {
  const text = afterEquals.trimStart();
  if (text.startsWith("'")) {
    const end = text.indexOf("'", 1);
    if (end < 0) return E.left(`missing closing ' (a value must be on one line)`);
    return withOnlyCommentAfter(text.slice(1, end), text.slice(end + 1));
  }
  if (text.startsWith('"')) {
    let value = '';
    for (let i = 1; i < text.length; i++) {
      const ch = text[i];
      if (ch === '"') return withOnlyCommentAfter(value, text.slice(i + 1));
      if (ch === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1] ?? '')) {
        value += text[i + 1];
        i++;
      } else {
        value += ch;
      }
    }
    return E.left(`missing closing " (a value must be on one line)`);
  }
  // Only whitespace-then-# starts a comment, as in a shell; the whitespace may be the one
  // between `=` and `#`, so search the untrimmed text.
  const comment = /\s#/.exec(afterEquals);
  return E.right((comment ? afterEquals.slice(0, comment.index) : afterEquals).trim());
}

function withOnlyCommentAfter(value: string, rest: string): E.Either<string, string> {
  if (rest.trim() === '' || /^\s+#/.test(rest)) return E.right(value);
  return E.left(`unexpected text after the closing quote; quote the whole value`);
}
