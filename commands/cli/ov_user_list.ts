import * as E from 'fp-ts/lib/Either.js';
import { listUsers } from '../use-cases/list-users.js';
import { JsonFlag, jsonFlag } from './flags.js';
import type { CommandSpec } from './run-cli.js';
import { renderUserList } from './user-table.js';

export const spec: CommandSpec<typeof JsonFlag> = {
  name: 'ov_user_list',
  description: 'list every active VPN profile',
  open: 'existing',
  schema: JsonFlag,
  flags: jsonFlag,
  run: async (input, { ledger }) => E.right(renderUserList(listUsers(ledger, input.json ? 'json' : 'table'), input.json, 'No active profiles.')),
};
