// Refusals leave no trace: every command given bad flags, or asked for something the rules forbid,
// exits with its documented code and ONE line on stderr naming what to fix, and not a byte of the
// state, the configuration or the outbox changes (no event, no key, no profile, no file touched).
//
// One gateway for the whole file (ov_init makes a 3072-bit CA key): set up once with one user,
// then every case below is run against it with a snapshot of every file before and after.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type ExpectStatic } from 'vitest';
import { assertCliBuilt, runCli, runCliOk, snapshotTree, type CliCommand, type FileFacts } from '../support/cli.js';

/** YYYY-MM-DD, `days` after today (UTC). */
function utcDatePlus(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

const ONE_YEAR = utcDatePlus(365);
// A pinned "now" for the past/today rules, so they do not depend on when the suite runs.
const PINNED_NOW = '2031-01-10T12:00:00Z';

let root: string;
let stateDir: string;
let configDir: string;
let outboxDir: string;
let validEmailConf: string;
let placeholderEmailConf: string;

function envFor(dirs: { state: string; config: string }, extra: Record<string, string | undefined> = {}) {
  // Every OVL_* variable set or removed explicitly: nothing leaks in from the developer's shell.
  return {
    OVL_STATE_DIR: dirs.state,
    OVL_CONFIG_DIR: dirs.config,
    OVL_NOW: undefined,
    OVL_LOG_FILE: undefined,
    OVL_LOG_LEVEL: undefined,
    ...extra,
  };
}

const env = (extra: Record<string, string | undefined> = {}) => envFor({ state: stateDir, config: configDir }, extra);

/** Every file the CLI could touch, prefixed by the directory it lives in. */
function snapshotAll(): Map<string, FileFacts> {
  const all = new Map<string, FileFacts>();
  for (const [name, dir] of [
    ['state', stateDir],
    ['config', configDir],
    ['outbox', outboxDir],
  ] as const) {
    for (const [path, facts] of snapshotTree(dir)) all.set(`${name}/${path}`, facts);
  }
  return all;
}

/** ov_user_add flags for a valid new user, with some flags replaced (a string) or left out (null). */
function addArgs(overrides: Record<string, string | null> = {}): string[] {
  const flags: Record<string, string | null> = {
    'first-name': 'Bob',
    'last-name': 'Builder',
    email: 'bob@example.com',
    traffic: 'partial',
    'expiration-date': ONE_YEAR,
    'creation-reason': 'contractor access to the build network',
    ...overrides,
  };
  return Object.entries(flags).flatMap(([k, v]) => (v === null ? [] : [`--${k}`, v]));
}

interface RefusalCase {
  readonly when: string;
  readonly command: CliCommand;
  readonly args: readonly string[];
  readonly env?: Record<string, string | undefined>;
  readonly exitCode: 2 | 3 | 5;
  /** Text the one stderr line must contain: the flag (or key) to fix. */
  readonly names: readonly string[];
}

async function expectRefusedAndNothingChanged(c: RefusalCase): Promise<void> {
  const before = snapshotAll();
  const res = await runCli(c.command, c.args, { env: env(c.env) });
  const after = snapshotAll();

  const lines = res.stderr.replace(/\n$/, '').split('\n');
  expect({ code: res.code, stdout: res.stdout, lines: lines.length }, res.stderr).toEqual({ code: c.exitCode, stdout: '', lines: 1 });
  expect(lines[0]).toMatch(new RegExp(`^${c.command}: `));
  for (const text of c.names) expect(lines[0]).toContain(text);
  expect(after).toEqual(before);
}

beforeAll(async () => {
  assertCliBuilt();
  root = mkdtempSync(join(tmpdir(), 'ovl-bad-input-'));
  stateDir = join(root, 'state');
  configDir = join(root, 'etc');
  outboxDir = join(root, 'outbox');

  await runCliOk('ov_init', ['--public-host', 'vpn.example.com', '--route', '10.20.0.0/16'], { env: env() });
  // What ov_init left behind is the manual's file with its placeholders: kept for the exit-5 case.
  placeholderEmailConf = readFileSync(join(configDir, 'email.conf'), 'utf8');
  validEmailConf = [
    'FROM_EMAIL=vpn@example.com',
    'ENVIRONMENT_NAME="Refusal gateway"',
    'DELIVERY=outbox',
    `OUTBOX_DIR=${outboxDir}`,
    '',
  ].join('\n');
  writeFileSync(join(configDir, 'email.conf'), validEmailConf, { mode: 0o600 });
  await runCliOk(
    'ov_user_add',
    addArgs({ 'first-name': 'Ada', 'last-name': 'Lovelace', email: 'ada@example.com', traffic: 'all', 'creation-reason': 'staff' }),
    { env: env() },
  );
}, 120_000);

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

const GIVEN = 'given an initialised gateway with one user (ada@example.com, all)';

describe(`${GIVEN}, bad flags are refused with exit 2, one line naming the flag, and nothing changed`, () => {
  const cases: RefusalCase[] = [
    { when: 'ov_user_add runs without --email', command: 'ov_user_add', args: addArgs({ email: null }), exitCode: 2, names: ['--email'] },
    {
      when: 'ov_user_add runs without --expiration-date',
      command: 'ov_user_add',
      args: addArgs({ 'expiration-date': null }),
      exitCode: 2,
      names: ['--expiration-date'],
    },
    {
      when: 'ov_user_delete runs without --traffic',
      command: 'ov_user_delete',
      args: ['--email', 'ada@example.com'],
      exitCode: 2,
      names: ['--traffic'],
    },
    {
      when: 'ov_user_add is given an unknown flag --colour',
      command: 'ov_user_add',
      args: [...addArgs(), '--colour', 'blue'],
      exitCode: 2,
      names: ['--colour'],
    },
    {
      when: 'ov_user_list is given an unknown flag --verbose',
      command: 'ov_user_list',
      args: ['--verbose'],
      exitCode: 2,
      names: ['--verbose'],
    },
    {
      when: 'ov_user_add is given a malformed --email "bob@"',
      command: 'ov_user_add',
      args: addArgs({ email: 'bob@' }),
      exitCode: 2,
      names: ['--email'],
    },
    {
      when: 'ov_user_delete is given --email twice',
      command: 'ov_user_delete',
      args: ['--email', 'ada@example.com', '--email', 'eve@example.com', '--traffic', 'all'],
      exitCode: 2,
      names: ['--email'],
    },
    {
      when: 'ov_user_resend is given two addresses in one --email',
      command: 'ov_user_resend',
      args: ['--email', 'ada@example.com, eve@example.com', '--traffic', 'all'],
      exitCode: 2,
      names: ['--email'],
    },
    {
      when: 'ov_user_add is given the impossible date 2027-02-30',
      command: 'ov_user_add',
      args: addArgs({ 'expiration-date': '2027-02-30' }),
      exitCode: 2,
      names: ['--expiration-date'],
    },
    {
      when: 'ov_user_add is given a date not in YYYY-MM-DD form',
      command: 'ov_user_add',
      args: addArgs({ 'expiration-date': '30/01/2031' }),
      exitCode: 2,
      names: ['--expiration-date'],
    },
    {
      when: 'ov_user_add is given a past date (OVL_NOW pinned)',
      command: 'ov_user_add',
      args: addArgs({ 'expiration-date': '2031-01-09' }),
      env: { OVL_NOW: PINNED_NOW },
      exitCode: 2,
      names: ['--expiration-date', '2031-01-10'],
    },
    {
      when: "ov_user_add is given today's date (OVL_NOW pinned)",
      command: 'ov_user_add',
      args: addArgs({ 'expiration-date': '2031-01-10' }),
      env: { OVL_NOW: PINNED_NOW },
      exitCode: 2,
      names: ['--expiration-date'],
    },
    {
      when: 'ov_user_add is given traffic mode "both"',
      command: 'ov_user_add',
      args: addArgs({ traffic: 'both' }),
      exitCode: 2,
      names: ['--traffic'],
    },
    {
      when: 'ov_user_add is given a BEL control character in --first-name',
      command: 'ov_user_add',
      args: addArgs({ 'first-name': 'Bob\u0007' }),
      exitCode: 2,
      names: ['--first-name'],
    },
    {
      when: 'ov_user_add is given a newline inside --first-name',
      command: 'ov_user_add',
      args: addArgs({ 'first-name': 'Bob\nBcc: eve@example.com' }),
      exitCode: 2,
      names: ['--first-name'],
    },
    {
      when: 'ov_user_add is given a trailing newline in --last-name',
      command: 'ov_user_add',
      args: addArgs({ 'last-name': 'Builder\n' }),
      exitCode: 2,
      names: ['--last-name'],
    },
    {
      when: 'ov_user_add is given an empty --creation-reason',
      command: 'ov_user_add',
      args: addArgs({ 'creation-reason': '' }),
      exitCode: 2,
      names: ['--creation-reason'],
    },
    {
      when: 'ov_user_add is given a blank --creation-reason',
      command: 'ov_user_add',
      args: addArgs({ 'creation-reason': '   ' }),
      exitCode: 2,
      names: ['--creation-reason'],
    },
    {
      when: 'ov_user_add is given --auto-renew maybe',
      command: 'ov_user_add',
      args: [...addArgs(), '--auto-renew', 'maybe'],
      exitCode: 2,
      names: ['--auto-renew'],
    },
    {
      when: 'ov_user_auto_renew is given both --enable and --disable',
      command: 'ov_user_auto_renew',
      args: ['--email', 'ada@example.com', '--traffic', 'all', '--enable', '--disable'],
      exitCode: 2,
      names: ['--enable', '--disable'],
    },
    {
      when: 'ov_user_auto_renew is given neither --enable nor --disable',
      command: 'ov_user_auto_renew',
      args: ['--email', 'ada@example.com', '--traffic', 'all'],
      exitCode: 2,
      names: ['--enable', '--disable'],
    },
    {
      when: 'ov_user_delete is given an unknown --crl-reason',
      command: 'ov_user_delete',
      args: ['--email', 'ada@example.com', '--traffic', 'all', '--crl-reason', 'stolen'],
      exitCode: 2,
      names: ['--crl-reason'],
    },
  ];

  it.each(cases)('when $when, then it exits $exitCode naming $names and changes nothing', async (c) => {
    await expectRefusedAndNothingChanged(c);
  });
});

describe(`${GIVEN}, what the rules forbid is refused with exit 3 and nothing changed`, () => {
  const noProfile = ['ada@example.com', 'partial'];
  const cases: RefusalCase[] = [
    {
      when: 'ov_user_delete targets a pair with no active profile (ada, partial)',
      command: 'ov_user_delete',
      args: ['--email', 'ada@example.com', '--traffic', 'partial'],
      exitCode: 3,
      names: noProfile,
    },
    {
      when: 'ov_user_resend targets a pair with no active profile (ada, partial)',
      command: 'ov_user_resend',
      args: ['--email', 'ada@example.com', '--traffic', 'partial'],
      exitCode: 3,
      names: noProfile,
    },
    {
      when: 'ov_user_auto_renew targets a pair with no active profile (ada, partial)',
      command: 'ov_user_auto_renew',
      args: ['--email', 'ada@example.com', '--traffic', 'partial', '--enable'],
      exitCode: 3,
      names: noProfile,
    },
    {
      when: 'ov_user_delete targets an address that never had a profile',
      command: 'ov_user_delete',
      args: ['--email', 'nobody@example.com', '--traffic', 'all'],
      exitCode: 3,
      names: ['nobody@example.com'],
    },
    {
      when: 'ov_user_add adds the active pair (ada, all) a second time',
      command: 'ov_user_add',
      args: addArgs({ 'first-name': 'Ada', 'last-name': 'Lovelace', email: 'ada@example.com', traffic: 'all' }),
      exitCode: 3,
      names: ['ada@example.com', 'ov_user_delete'],
    },
    {
      when: 'ov_user_add adds the active pair again with the address in upper case',
      command: 'ov_user_add',
      args: addArgs({ 'first-name': 'Ada', 'last-name': 'Lovelace', email: 'ADA@Example.COM', traffic: 'all' }),
      exitCode: 3,
      names: ['ada@example.com'],
    },
  ];

  it.each(cases)('when $when, then it exits 3 and changes nothing', async (c) => {
    await expectRefusedAndNothingChanged(c);
  });
});

describe(`${GIVEN} whose email.conf still holds the manual's placeholders`, () => {
  beforeAll(() => writeFileSync(join(configDir, 'email.conf'), placeholderEmailConf, { mode: 0o600 }));
  afterAll(() => writeFileSync(join(configDir, 'email.conf'), validEmailConf, { mode: 0o600 }));

  it('the placeholder file is what ov_init wrote', () => {
    expect(placeholderEmailConf).toContain('REPLACE_WITH_');
  });

  it.each<RefusalCase>([
    { when: 'ov_user_add adds a new user', command: 'ov_user_add', args: addArgs(), exitCode: 5, names: ['email.conf', 'SMTP_USERNAME'] },
    {
      when: 'ov_user_resend resends the active profile',
      command: 'ov_user_resend',
      args: ['--email', 'ada@example.com', '--traffic', 'all'],
      exitCode: 5,
      names: ['email.conf', 'SMTP_USERNAME'],
    },
  ])('when $when, then it exits 5 naming the key to fix and changes nothing', async (c) => {
    await expectRefusedAndNothingChanged(c);
  });
});

describe('given no ov_init yet, every command is refused with exit 3 and creates no state directory', () => {
  const commands: { command: CliCommand; args: string[] }[] = [
    { command: 'ov_user_add', args: addArgs() },
    { command: 'ov_user_delete', args: ['--email', 'bob@example.com', '--traffic', 'all'] },
    { command: 'ov_user_list', args: [] },
    { command: 'ov_user_list_expired', args: ['--json'] },
    { command: 'ov_user_resend', args: ['--email', 'bob@example.com', '--traffic', 'all'] },
    { command: 'ov_user_auto_renew', args: ['--email', 'bob@example.com', '--traffic', 'all', '--enable'] },
  ];

  // Each case has directories of its own, so they can run side by side.
  async function expectNotInitialised(expect: ExpectStatic, dirs: { state: string; config: string }, command: CliCommand, args: string[]) {
    const configBefore = snapshotTree(dirs.config);
    const res = await runCli(command, args, { env: envFor(dirs) });
    const lines = res.stderr.replace(/\n$/, '').split('\n');
    expect({ code: res.code, stdout: res.stdout, lines: lines.length }, res.stderr).toEqual({ code: 3, stdout: '', lines: 1 });
    expect(lines[0]).toContain('ov_init');
    expect(existsSync(dirs.state)).toBe(false);
    expect(snapshotTree(dirs.config)).toEqual(configBefore);
  }

  it.concurrent.for(commands)(
    'when $command runs on a machine with neither state nor config, then exit 3 pointing at ov_init',
    async ({ command, args }, { expect }) => {
      const fresh = mkdtempSync(join(root, 'fresh-'));
      const dirs = { state: join(fresh, 'state'), config: join(fresh, 'etc') };
      await expectNotInitialised(expect, dirs, command, args);
      expect(existsSync(dirs.config)).toBe(false);
    },
  );

  it.concurrent.for(commands.filter((c) => c.command === 'ov_user_add' || c.command === 'ov_user_resend'))(
    'when $command runs with a valid email.conf but no state, then exit 3 pointing at ov_init',
    async ({ command, args }, { expect }) => {
      const fresh = mkdtempSync(join(root, 'conf-only-'));
      const dirs = { state: join(fresh, 'state'), config: join(fresh, 'etc') };
      mkdirSync(dirs.config);
      writeFileSync(join(dirs.config, 'email.conf'), validEmailConf, { mode: 0o600 });
      await expectNotInitialised(expect, dirs, command, args);
    },
  );
});
