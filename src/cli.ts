#!/usr/bin/env node
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createUser, ensureSuperAdmin } from './admin/users.js';
import { createLatchkey } from './app.js';
import { importAccessCsv } from './access/csv.js';
import { auditCsv, auditFilterSchema, toAuditFilter } from './admin/api/audit.js';
import { boot } from './boot.js';
import { createQueries } from './db/index.js';
import { migrateToLatest, rollbackMigrations } from './db/migrate.js';
import { createClientStore } from './oidc/clients.js';
import { ensureKeys, rotateKeys } from './oidc/keys.js';
import { TOKEN_TTL } from './oidc/provider.js';
import { systemClock } from './security/clock.js';
import { createPasswordHasher } from './security/passwords.js';
import { createSecretBox } from './security/secret-box.js';

interface Command {
  usage: string;
  options: NonNullable<Parameters<typeof parseArgs>[0]>['options'];
  run(values: Record<string, unknown>, ctx: Awaited<ReturnType<typeof boot>>, positionals: string[]): Promise<void>;
}

/** What the CLI does is done by whoever runs it on the server: no user, and the audit log says so. */
const CLI_ACTOR = { actorId: null, userAgent: 'latchkey-cli' };

const out = (text: string): void => void process.stdout.write(`${text}\n`);

const commands: Record<string, Command> = {
  migrate: {
    usage: 'migrate [--rollback] [--all]   apply pending migrations, or revert the last batch (--all: every one)',
    options: { rollback: { type: 'boolean' }, all: { type: 'boolean' } },
    async run(values, { db }) {
      const names = values.rollback ? await rollbackMigrations(db, Boolean(values.all)) : await migrateToLatest(db);
      out(names.length ? `${values.rollback ? 'reverted' : 'applied'}: ${names.join(', ')}` : 'nothing to do');
    },
  },
  'client create': {
    usage:
      'client create --name NAME --redirect-uri URI [--redirect-uri URI…] [--post-logout-redirect-uri URI…]\n' +
      '              [--public] [--client-credentials] [--id ID] [--alg RS256|ES256] [--require-mfa] [--first-party] [--admin-api]',
    options: {
      name: { type: 'string' },
      id: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      public: { type: 'boolean' },
      'client-credentials': { type: 'boolean' },
      alg: { type: 'string' },
      'require-mfa': { type: 'boolean' },
      'first-party': { type: 'boolean' },
      'admin-api': { type: 'boolean' },
    },
    async run(values, { db, masterKey }) {
      const store = createClientStore(createQueries(db), createSecretBox(masterKey));
      const machine = Boolean(values['client-credentials']);
      const created = await store.register({
        client_name: values.name as string,
        client_id: values.id as string | undefined,
        redirect_uris: (values['redirect-uri'] as string[] | undefined) ?? [],
        post_logout_redirect_uris: (values['post-logout-redirect-uri'] as string[] | undefined) ?? [],
        grant_types: machine ? ['client_credentials'] : ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: values.public ? 'none' : 'client_secret_basic',
        id_token_signed_response_alg: (values.alg as 'RS256' | 'ES256' | undefined) ?? 'RS256',
        require_mfa: Boolean(values['require-mfa']),
        first_party: Boolean(values['first-party']),
        latchkey_admin_api: Boolean(values['admin-api']),
      });
      out(`client_id:     ${created.clientId}`);
      if (created.clientSecret) out(`client_secret: ${created.clientSecret}   (shown once: store it now)`);
    },
  },
  'client list': {
    usage: 'client list                    list registered clients',
    options: {},
    async run(_values, { db }) {
      for (const row of await createQueries(db).clients.list()) {
        out(`${row.client_id}\t${String(row.metadata.client_name)}\t${(row.metadata.redirect_uris as string[]).join(' ')}`);
      }
    },
  },
  'user create': {
    usage: 'user create --email EMAIL --password PASSWORD [--name NAME] [--role ROLE…] [--locale en|ko]',
    options: { email: { type: 'string' }, password: { type: 'string' }, name: { type: 'string' }, role: { type: 'string', multiple: true }, locale: { type: 'string' } },
    async run(values, { db, config }) {
      const user = await createUser(
        { queries: createQueries(db), hasher: createPasswordHasher(config.argon2) },
        { email: values.email as string, password: values.password as string, name: (values.name as string) ?? '', roles: values.role as never, locale: values.locale as never },
      );
      out(`created user ${user.id} <${user.email}>`);
    },
  },
  'admin create': {
    usage: 'admin create                   create the first super admin if there is no user yet (prints its password)',
    options: {},
    async run(_values, { db, config }) {
      const created = await ensureSuperAdmin({ queries: createQueries(db), hasher: createPasswordHasher(config.argon2) }, config.bootstrapAdmin);
      if (!created) {
        out('users exist already: nothing done (use `user create --role super_admin`)');
        return;
      }
      out(`super admin: ${created.email}${created.generatedPassword ? `  password: ${created.generatedPassword}` : ''}`);
    },
  },
  'user reset-mfa': {
    usage: 'user reset-mfa --email EMAIL          remove every second factor and recovery code of a user (audited)',
    options: { email: { type: 'string' } },
    async run(values, booted) {
      const email = z.email({ message: 'expected --email EMAIL' }).parse(values.email);
      const latchkey = await createLatchkey(booted);
      const user = await latchkey.queries.users.findByEmail(email);
      if (!user) throw new Error(`no user has the email ${email}`);
      await latchkey.mfa.reset(user, CLI_ACTOR);
      out(`reset the MFA of ${user.email}`);
    },
  },
  'settings enforce-mfa': {
    usage: 'settings enforce-mfa on|off            require a second factor of every user',
    options: {},
    async run(_values, booted, positionals) {
      const value = z.enum(['on', 'off'], { message: 'expected on or off' }).parse(positionals[0]);
      const latchkey = await createLatchkey(booted);
      await latchkey.mfa.setEnforcement(value === 'on', CLI_ACTOR);
      out(`multi-factor authentication is ${value === 'on' ? 'enforced' : 'not enforced'}`);
    },
  },
  'access import': {
    usage: 'access import FILE.csv [--write]        check a door CSV (email,name,kind,value); --write imports it, all or nothing',
    options: { write: { type: 'boolean' } },
    async run(values, booted, positionals) {
      const file = z.string({ message: 'expected the CSV file' }).min(1).parse(positionals[0]);
      const latchkey = await createLatchkey(booted);
      const report = await importAccessCsv({ queries: latchkey.queries, box: latchkey.box, lookup: latchkey.access.lookup }, fs.readFileSync(file, 'utf8'), !values.write);
      await latchkey.queries.audit.insert({ action: 'access.import', outcome: report.ok ? 'success' : 'failure', ...CLI_ACTOR, details: { dry_run: !values.write, rows: report.rows, problems: report.problems.length, created: report.created } });
      for (const problem of report.problems) process.stderr.write(`line ${problem.line}: ${problem.reason}\n`);
      if (!report.ok) throw new Error(`${report.problems.length} bad line(s): nothing was written`);
      out(values.write ? `imported ${report.rows} rows: ${report.created.users} new users, ${report.created.credentials} credentials, ${report.created.codes} codes` : `all ${report.rows} rows are valid (dry run: add --write to import)`);
    },
  },
  'audit export': {
    usage: 'audit export [--user ID] [--action A] [--outcome O] [--from ISO] [--to ISO] [--out FILE]   the audit log as CSV',
    options: { user: { type: 'string' }, action: { type: 'string' }, outcome: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' } },
    async run(values, { db }) {
      const filter = auditFilterSchema.parse({ user_id: values.user, action: values.action, outcome: values.outcome, from: values.from, to: values.to });
      const queries = createQueries(db);
      const target: NodeJS.WritableStream = values.out ? fs.createWriteStream(values.out as string) : process.stdout;
      await pipeline(Readable.from(auditCsv(queries, toAuditFilter(filter))), target, { end: target !== process.stdout });
      await queries.audit.insert({ action: 'audit.export', outcome: 'success', ...CLI_ACTOR, details: { filter } });
    },
  },
  'keys rotate': {
    usage: 'keys rotate [--activate-after SECONDS]   new signing and cookie keys; old ones stay published until what they signed expires',
    options: { 'activate-after': { type: 'string' } },
    async run(values, { db, masterKey, config }) {
      const queries = createQueries(db);
      const box = createSecretBox(masterKey);
      await ensureKeys(queries, box, systemClock);
      const delay = z.coerce.number().int().min(0).parse(values['activate-after'] ?? 2 * config.keyReloadSeconds + 5);
      const result = await rotateKeys(queries, box, systemClock, { activationDelaySeconds: delay, retainSeconds: Math.max(TOKEN_TTL.IdToken, TOKEN_TTL.AccessToken) + 300 });
      out(`new keys ${result.kids.join(', ')} sign from ${result.activatesAt.toISOString()}; old keys published until ${result.oldKeysExpireAt.toISOString()}`);
    },
  },
};

function help() {
  out('usage: latchkey <command> [options]   (npm run latchkey -- <command> …)\n');
  for (const command of Object.values(commands)) out(`  ${command.usage}`);
}

async function main(argv: string[]) {
  const name = [argv.slice(0, 2).join(' '), argv[0] ?? ''].find((candidate) => candidate in commands);
  if (!name || argv.includes('--help') || argv.includes('-h')) {
    if (name) out(`usage: latchkey ${commands[name]!.usage}`);
    else help();
    return name || argv.includes('--help') || argv.includes('-h') ? 0 : 64;
  }
  const command = commands[name]!;
  const { values, positionals } = parseArgs({ args: argv.slice(name.split(' ').length), options: command.options, strict: true, allowPositionals: true });
  const booted = await boot({ migrate: true });
  try {
    await command.run(values, booted, positionals);
    return 0;
  } finally {
    await booted.db.destroy();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof z.ZodError) {
      for (const issue of error.issues) process.stderr.write(`error: ${issue.path.join('.') || 'input'}: ${issue.message}\n`);
    } else {
      process.stderr.write(`error: ${(error as Error).message}\n`);
    }
    process.exit(1);
  },
);
