import * as E from 'fp-ts/lib/Either.js';
import { listExpiredUsers } from '../use-cases/list-users.js';
import { JsonFlag, jsonFlag } from './flags.js';
import type { CommandSpec } from './run-cli.js';
import { renderUserList } from './user-table.js';

export const spec: CommandSpec<typeof JsonFlag> = {
  name: 'ov_user_list_expired',
  description: 'list active profiles whose expiration date has passed (report only: nothing is revoked)',
  open: 'existing',
  schema: JsonFlag,
  flags: jsonFlag,
  run: async (input, { ledger }) =>
    E.right(
      renderUserList(
        listExpiredUsers(ledger, input.json ? 'json' : 'table'),
        input.json,
        'No expired profiles.',
      ),
    ),
};
