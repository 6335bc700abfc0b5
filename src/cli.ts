#!/usr/bin/env node
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createUser, ensureSuperAdmin, resetPassword } from './admin/users.js';
import { createLatchkey } from './app.js';
import { startDemoApp } from './demo/demo-app.js';
import { importAccessCsv } from './access/csv.js';
import { auditCsv, auditFilterSchema, toAuditFilter } from './admin/api/audit.js';
import { boot } from './boot.js';
import { createQueries } from './db/index.js';
import { createChangeFeed } from './db/change-feed.js';
import { createResourceStore, MAX_RESOURCE_TOKEN_TTL } from './resources/resources.js';
import { migrateToLatest, rollbackMigrations } from './db/migrate.js';
import { createClientStore } from './oidc/clients.js';
import { ensureKeys, rotateKeys } from './oidc/keys.js';
import { TOKEN_TTL } from './oidc/provider.js';
import { systemClock } from './security/clock.js';
import { createSecretBox } from './security/secret-box.js';

interface Command {
  usage: string;
  options: NonNullable<Parameters<typeof parseArgs>[0]>['options'];
  run(values: Record<string, unknown>, ctx: Awaited<ReturnType<typeof boot>>, positionals: string[]): Promise<void>;
}

/** What the CLI does is done by whoever runs it on the server: no user, and the audit log says so. */
const CLI_ACTOR = { actorId: null, userAgent: 'latchkey-cli' };

const out = (text: string): void => void process.stdout.write(`${text}\n`);

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

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
      '              [--public] [--client-credentials] [--id ID] [--alg RS256|ES256|EdDSA] [--require-mfa] [--first-party] [--admin-api]',
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
        id_token_signed_response_alg: (values.alg as 'RS256' | undefined) ?? 'RS256',
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
  'resource create': {
    usage:
      'resource create --identifier URI --name NAME [--scope SCOPE…] [--ttl SECONDS] [--alg RS256|ES256|EdDSA] [--opaque]\n' +
      '                [--machine-client CLIENT_ID…]   register an API: clients naming it as `resource` get JWT access tokens for it',
    options: {
      identifier: { type: 'string' },
      name: { type: 'string' },
      scope: { type: 'string', multiple: true },
      ttl: { type: 'string' },
      alg: { type: 'string' },
      opaque: { type: 'boolean' },
      'machine-client': { type: 'string', multiple: true },
    },
    async run(values, { db }) {
      await withResources(db, async (queries, resources) => {
        const row = await resources.register({
          identifier: values.identifier as string,
          name: values.name as string,
          scopes: (values.scope as string[] | undefined) ?? [],
          ...(values.ttl === undefined ? {} : { access_token_ttl: z.coerce.number().parse(values.ttl) }),
          ...(values.alg === undefined ? {} : { signing_alg: values.alg as 'RS256' }),
          token_format: values.opaque ? 'opaque' : 'jwt',
          machine_clients: (values['machine-client'] as string[] | undefined) ?? [],
        });
        await queries.audit.insert({ action: 'resource.register', outcome: 'success', ...CLI_ACTOR, details: { identifier: row.identifier, scopes: row.scopes, token_format: row.token_format, machine_clients: row.machine_clients } });
        out(`registered ${row.identifier}: ${row.token_format} tokens, ${row.signing_alg}, ${row.access_token_ttl} s, scopes: ${row.scopes.join(' ') || '(none)'}`);
      });
    },
  },
  'resource list': {
    usage: 'resource list                  list registered APIs',
    options: {},
    async run(_values, { db }) {
      const queries = createQueries(db);
      let after: string | undefined;
      for (;;) {
        const rows = await queries.resources.page(after, 200);
        for (const row of rows) out(`${row.identifier}\t${row.name}\t${row.token_format}/${row.signing_alg}\t${row.access_token_ttl}s\t${row.scopes.join(' ')}`);
        if (rows.length < 200) return;
        after = rows.at(-1)!.identifier;
      }
    },
  },
  'resource delete': {
    usage: 'resource delete --identifier URI   no new tokens for this API (JWTs already issued stay valid until they expire)',
    options: { identifier: { type: 'string' } },
    async run(values, { db }) {
      const identifier = z.string({ message: 'expected --identifier URI' }).min(1).parse(values.identifier);
      await withResources(db, async (queries, resources) => {
        if ((await resources.remove(identifier)) === 0) throw new Error(`no API has the identifier ${identifier}`);
        await queries.audit.insert({ action: 'resource.delete', outcome: 'success', ...CLI_ACTOR, details: { identifier } });
        out(`deleted ${identifier}`);
      });
    },
  },
  'user create': {
    usage: 'user create --email EMAIL --password PASSWORD [--name NAME] [--role ROLE…] [--locale en|ko]',
    options: { email: { type: 'string' }, password: { type: 'string' }, name: { type: 'string' }, role: { type: 'string', multiple: true }, locale: { type: 'string' } },
    async run(values, booted) {
      const user = await createUser(
        await createLatchkey(booted),
        { email: values.email as string, password: values.password as string, name: (values.name as string) ?? '', roles: values.role as never, locale: values.locale as never },
      );
      out(`created user ${user.id} <${user.email}>`);
    },
  },
  'admin create': {
    usage: 'admin create                   create the first super admin if there is no user yet (prints its password)',
    options: {},
    async run(_values, booted) {
      const created = await ensureSuperAdmin(await createLatchkey(booted), booted.config.bootstrapAdmin);
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
  'user reset-password': {
    usage:
      'user reset-password EMAIL [--password-stdin]   a one-time password (printed once, or read from stdin) that must be changed at\n' +
      '              the next sign-in; lifts the sign-in lockout and ends the sessions; second factors stay (audited)',
    options: { 'password-stdin': { type: 'boolean' } },
    async run(values, booted, positionals) {
      const email = z.email({ message: 'expected the email of the user' }).parse(positionals[0]);
      const given = values['password-stdin'] ? (await readStdin()).replace(/\r?\n$/, '') : undefined;
      const latchkey = await createLatchkey(booted);
      const user = await latchkey.queries.users.findByEmail(email);
      if (!user) throw new Error(`no user has the email ${email}`);
      const people = { queries: latchkey.queries, hasher: latchkey.hasher, settings: latchkey.settings, notifier: latchkey.notifier, clock: latchkey.clock, issuer: booted.config.issuer, issuerName: booted.config.issuerName };
      const { generatedPassword } = await resetPassword(people, user, given, CLI_ACTOR);
      out(`reset the password of ${user.email}: it must be changed at the next sign-in`);
      if (generatedPassword) out(`  password: ${generatedPassword}   (shown once)`);
      if (user.status !== 'active') out(`  note: the account is ${user.status}; an admin can enable it again`);
    },
  },
  demo: {
    usage: 'demo [--password-only]          sign in to a demo app and see its ID token (sub, amr, acr); asks for a second factor unless --password-only',
    options: { 'password-only': { type: 'boolean' } },
    async run(values, booted) {
      const latchkey = await createLatchkey(booted);
      const demo = await startDemoApp({ issuer: booted.config.issuer, clients: latchkey.clients, requireMfa: !values['password-only'] });
      out(`Open ${demo.startUrl} in a browser and sign in (the demo app sends you on to Latchkey's authorization URL:`);
      out(`  ${demo.authorizationUrl} )`);
      out(`No account yet? Use the first admin's, or: npm run latchkey -- user create --email you@example.com --password '…'`);
      const giveUp = (message: string, code: number) => () =>
        void demo.close().finally(() => {
          process.stderr.write(`${message}\n`);
          process.exit(code);
        });
      const timeout = setTimeout(giveUp('error: no sign-in came back within 10 minutes', 1), 10 * 60_000);
      process.once('SIGINT', giveUp('demo stopped; its client is removed', 130));
      try {
        const claims = await demo.claims;
        out(`\nSigned in. The ID token says:\n  sub: ${String(claims.sub)}\n  amr: ${JSON.stringify(claims.amr)}\n  acr: ${String(claims.acr)}\n`);
        out(JSON.stringify(claims, null, 2));
      } finally {
        clearTimeout(timeout);
        await demo.close();
        await latchkey.close();
      }
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
      // The server's operator: every right an admin could have.
      const report = await importAccessCsv({ queries: latchkey.queries, box: latchkey.box, lookup: latchkey.access.lookup, notifier: latchkey.notifier }, fs.readFileSync(file, 'utf8'), !values.write, { mayCreateUsers: true, mayManageAdmins: true });
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
      const result = await rotateKeys(queries, box, systemClock, { activationDelaySeconds: delay, retainSeconds: Math.max(TOKEN_TTL.IdToken, TOKEN_TTL.AccessToken, MAX_RESOURCE_TOKEN_TTL) + 300 });
      out(`new keys ${result.kids.join(', ')} sign from ${result.activatesAt.toISOString()}; old keys published until ${result.oldKeysExpireAt.toISOString()}`);
    },
  },
};

/** Changes announced to running servers, so that none keeps serving a deleted or changed API from its cache. */
async function withResources(db: Awaited<ReturnType<typeof boot>>['db'], work: (queries: ReturnType<typeof createQueries>, resources: ReturnType<typeof createResourceStore>) => Promise<void>) {
  const feed = createChangeFeed(db);
  const queries = createQueries(db);
  try {
    await work(queries, createResourceStore(queries, feed));
  } finally {
    await feed.close();
  }
}

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
  const booted = await boot({ migrate: true, role: 'cli' });
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
