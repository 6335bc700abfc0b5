import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { PROJECT_ROOT } from '../src/paths.js';
import pg from 'pg';
import { consoleSignIn } from './helpers/console.js';
import { onRealPostgres, openTestDatabase, type TestDatabase } from './helpers/database.js';
import { freePort, startServerProcess, type ServerProcess } from './helpers/process.js';

let database: TestDatabase | undefined;
let dataDir: string;
beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-cli-'));
  if (onRealPostgres) database = await openTestDatabase();
});
afterAll(async () => {
  await database?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function cliIn(dir: string, args: string[], options: { input?: string; database?: TestDatabase } = {}) {
  const result = spawnSync(process.execPath, ['dist/src/cli.js', ...args], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    input: options.input,
    env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', LATCHKEY_DATA_DIR: dir, ...(options.database ? { DATABASE_URL: options.database.url! } : {}) },
  });
  return { code: result.status, out: result.stdout, err: result.stderr };
}
const cli = (...args: string[]) => cliIn(dataDir, args, { database });

describe('the latchkey CLI', () => {
  test('--help lists every command; an unknown command fails with usage', () => {
    const help = cli('--help');
    expect(help.code).toBe(0);
    for (const command of ['migrate', 'client create', 'user create', 'admin create', 'user reset-mfa', 'user reset-password', 'demo', 'settings enforce-mfa', 'access import', 'audit export', 'keys rotate']) {
      expect(help.out).toContain(command);
    }
    expect(cli('client', 'create', '--help').out).toContain('--redirect-uri');
    expect(cli('frobnicate').code).toBe(64);
  });

  // On PostgreSQL any number of processes share the database.
  (onRealPostgres ? test.skip : test)('refuses, saying why, to open an embedded database another process holds', () => {
    fs.mkdirSync(dataDir, { recursive: true });
    fs.writeFileSync(path.join(dataDir, 'latchkey.lock'), String(process.pid));
    const refused = cli('client', 'list');
    fs.rmSync(path.join(dataDir, 'latchkey.lock'));
    expect(refused.code).toBe(75);
    expect(refused.err).toContain(`in use by process ${process.pid}, which does not share it`);
    expect(refused.err).not.toMatch(/stop/i);
  }, 30_000);

  test('registers a client, refuses a bad one naming the field, and administers MFA', () => {
    const bad = cli('client', 'create', '--name', 'Bad', '--redirect-uri', 'http://evil.example/cb');
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('redirect_uris.0: expected https');

    const created = cli('client', 'create', '--name', 'Good', '--redirect-uri', 'https://app.example/cb', '--require-mfa');
    expect(created.code).toBe(0);
    expect(created.out).toMatch(/client_id: +\S+/);
    expect(created.out).toMatch(/client_secret: +\S{43}/);

    expect(cli('settings', 'enforce-mfa', 'maybe').code).toBe(1);
    const enforce = cli('settings', 'enforce-mfa', 'on');
    expect(enforce.code).toBe(0);
    expect(enforce.out).toContain('enforced');

    const common = cli('user', 'create', '--email', 'cli.user@example.test', '--password', 'passwordpassword');
    expect(common.code).toBe(1);
    expect(common.err).toContain('this password is among the most commonly used');
    expect(cli('user', 'create', '--email', 'cli.user@example.test', '--password', 'an unusual cli passphrase').out).toContain('<cli.user@example.test>');

    const unknown = cli('user', 'reset-mfa', '--email', 'nobody@example.test');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no user has the email nobody@example.test');
  }, 90_000);

  test('imports a door CSV (a bad one writes nothing and fails) and exports the audit log as CSV', () => {
    const good = path.join(dataDir, 'good.csv');
    const bad = path.join(dataDir, 'bad.csv');
    fs.writeFileSync(good, 'email,name,kind,value\ncli.person@example.test,CLI Person,card,CLI-0001\n');
    fs.writeFileSync(bad, 'email,name,kind,value\nnot-an-email,X,card,CLI-0002\n');
    const refused = cli('access', 'import', bad, '--write');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('line 2');
    expect(cli('access', 'import', good).out).toContain('dry run');
    expect(cli('access', 'import', good, '--write').out).toContain('1 new users');

    const exported = cli('audit', 'export', '--action', 'access.');
    expect(exported.code).toBe(0);
    const lines = exported.out.trim().split('\n');
    expect(lines[0]).toBe('id,occurred_at,action,outcome,actor_id,subject_id,client_id,ip,user_agent,details');
    expect(lines.filter((line) => line.includes('access.import'))).toHaveLength(3);
    expect(cli('audit', 'export', '--from', 'yesterday').err).toContain('from');
  }, 90_000);
});

describe('the latchkey CLI: APIs (resource indicators)', () => {
  test('registers, lists and deletes an API; refuses bad input naming the field', () => {
    expect(cli('resource', 'create', '--identifier', 'orders', '--name', 'Orders').err).toContain('identifier');
    expect(cli('resource', 'create', '--identifier', 'https://cli.example.test', '--name', 'Orders', '--ttl', '5').err).toContain('access_token_ttl');
    const created = cli('resource', 'create', '--identifier', 'https://cli.example.test', '--name', 'Orders', '--scope', 'orders:read', '--alg', 'ES256', '--ttl', '600');
    expect([created.code, created.out]).toEqual([0, expect.stringContaining('jwt tokens, ES256, 600 s, scopes: orders:read')]);
    expect(cli('resource', 'create', '--identifier', 'https://cli.example.test', '--name', 'Again').err).toContain('exists');
    expect(cli('resource', 'list').out).toContain('https://cli.example.test\tOrders\tjwt/ES256\t600s\torders:read');
    expect(cli('resource', 'delete', '--identifier', 'https://cli.example.test').code).toBe(0);
    expect(cli('resource', 'delete', '--identifier', 'https://cli.example.test').code).toBe(1);
    expect(cli('resource', 'list').out).not.toContain('https://cli.example.test');
  }, 90_000);
});

// The embedded database lives inside the server process: the CLI goes through the server's share of it.
(onRealPostgres ? describe.skip : describe)('the CLI beside a running server on the embedded database', () => {
  let shared: string;
  let server: ServerProcess;
  beforeAll(async () => {
    shared = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-shared-'));
    // Created and migrated beforehand, so that the server's start is only a start, even on a busy machine.
    expect(cliIn(shared, ['migrate']).code).toBe(0);
    const port = await freePort();
    server = await startServerProcess({ LATCHKEY_DATA_DIR: shared, LATCHKEY_ISSUER: `http://127.0.0.1:${port}` }, port);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    fs.rmSync(shared, { recursive: true, force: true });
  });
  const beside = (args: string[], input?: string) => cliIn(shared, args, { input });

  test('first start says where to go; the share is for the owner only, on loopback', () => {
    for (const place of [`${server.url}/admin`, `${server.url}/account`, `OpenID issuer:   ${server.url}`, 'npm run demo', 'admin@latchkey.local']) {
      expect(server.output()).toContain(place);
    }
    const share = path.join(shared, 'latchkey.share.json');
    expect(fs.statSync(share).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(share, 'utf8'))).toMatchObject({ pid: server.child.pid, password: expect.stringMatching(/^[\w-]{43}$/), issuer: server.url });
  });

  test('creates and lists while the server runs, and the server sees the change at once', async () => {
    const created = beside(['user', 'create', '--email', 'beside@example.test', '--password', 'created beside the server']);
    expect(created.code).toBe(0);
    expect(beside(['client', 'list']).out).toContain('latchkey-console');

    const signedIn = await consoleSignIn(server.url, 'beside@example.test', 'created beside the server', '/account/security');
    expect(signedIn.page.url).toBe(`${server.url}/account/security`);

    // The server caches settings: a CLI change reaches its very next sign-in.
    expect(beside(['settings', 'enforce-mfa', 'on']).code).toBe(0);
    const enforced = await consoleSignIn(server.url, 'beside@example.test', 'created beside the server', '/account/security');
    expect(enforced.page.url).toMatch(new RegExp(`^${server.url}/interaction/`));
    expect(beside(['settings', 'enforce-mfa', 'off']).code).toBe(0);
  }, 90_000);

  test('user reset-password: printed once or read from stdin, and forces a change at the next sign-in', async () => {
    const reset = beside(['user', 'reset-password', 'beside@example.test']);
    expect(reset.code).toBe(0);
    const generated = /password: (\S+) +\(shown once\)/.exec(reset.out)![1]!;
    const first = await consoleSignIn(server.url, 'beside@example.test', generated, '/account/security');
    expect(first.page.url).toBe(`${server.url}/account/profile?notice=choose_password`);

    const given = beside(['user', 'reset-password', 'beside@example.test', '--password-stdin'], 'typed by the operator\n');
    expect(given.code).toBe(0);
    expect(given.out).not.toContain('typed by the operator');
    const second = await consoleSignIn(server.url, 'beside@example.test', 'typed by the operator', '/account/security');
    expect(second.page.url).toBe(`${server.url}/account/profile?notice=choose_password`);

    expect(beside(['user', 'reset-password', 'nobody@example.test']).err).toContain('no user has the email nobody@example.test');
    expect(beside(['user', 'reset-password', 'beside@example.test', '--password-stdin'], 'short\n').code).toBe(1);
  }, 90_000);

  test('a wrong password is refused by the share, and the server stops cleanly, taking the share file with it', async () => {
    const { port } = JSON.parse(fs.readFileSync(path.join(shared, 'latchkey.share.json'), 'utf8')) as { port: number };
    const intruder = new pg.Client({ host: '127.0.0.1', port, user: 'latchkey', password: 'guessed', database: 'latchkey' });
    await expect(intruder.connect()).rejects.toThrow('password authentication failed');
    await intruder.end().catch(() => undefined);

    expect(await server.stop()).toBe(0);
    expect(fs.existsSync(path.join(shared, 'latchkey.share.json'))).toBe(false);
    expect(fs.existsSync(path.join(shared, 'latchkey.lock'))).toBe(false);
    // With the server gone, the CLI opens the directory itself again.
    expect(beside(['client', 'list']).code).toBe(0);
  }, 60_000);
});
