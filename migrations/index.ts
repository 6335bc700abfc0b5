import type { Knex } from 'knex';
import * as foundation from './001-foundation.js';
import * as mfa from './002-mfa.js';
import * as sentCodes from './003-sent-codes.js';
import * as access from './004-access.js';
import * as admin from './005-admin.js';
import * as signInFlow from './006-sign-in-flow.js';
import * as doorIntegrity from './007-door-integrity.js';
import * as canonicalEmail from './008-canonical-email.js';
import * as passkeys from './009-passkeys.js';
import * as doorsAdmin from './010-doors-admin.js';
import * as doorDecisions from './011-door-decisions.js';
import * as apiResources from './012-api-resources.js';
import * as mustChangePassword from './013-must-change-password.js';
import * as bypassCodes from './014-bypass-codes.js';
import * as rememberedDevices from './015-remembered-devices.js';
import * as passwordReset from './016-password-reset.js';
import * as sessions from './017-sessions.js';
import * as auditPartitions from './018-audit-partitions.js';

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
  ['006-sign-in-flow', signInFlow],
  ['007-door-integrity', doorIntegrity],
  ['008-canonical-email', canonicalEmail],
  ['009-passkeys', passkeys],
  ['010-doors-admin', doorsAdmin],
  ['011-door-decisions', doorDecisions],
  ['012-api-resources', apiResources],
  ['013-must-change-password', mustChangePassword],
  ['014-bypass-codes', bypassCodes],
  ['015-remembered-devices', rememberedDevices],
  ['016-password-reset', passwordReset],
  ['017-sessions', sessions],
  ['018-audit-partitions', auditPartitions],
];
