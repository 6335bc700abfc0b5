import type { Knex } from 'knex';
import * as foundation from './001-foundation.js';
import * as mfa from './002-mfa.js';
import * as sentCodes from './003-sent-codes.js';
import * as access from './004-access.js';
import * as admin from './005-admin.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** The ordered list of migrations: listed here rather than read from disk so that tests, tsx and dist agree. */
export const migrations: ReadonlyArray<readonly [name: string, migration: Migration]> = [
  ['001-foundation', foundation],
  ['002-mfa', mfa],
  ['003-sent-codes', sentCodes],
  ['004-access', access],
  ['005-admin', admin],
];
