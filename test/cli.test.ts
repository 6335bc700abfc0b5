import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { PROJECT_ROOT } from '../src/paths.js';
import { onRealPostgres, openTestDatabase, type TestDatabase } from './helpers/database.js';

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

function cli(...args: string[]) {
  const result = spawnSync(process.execPath, ['dist/src/cli.js', ...args], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', LATCHKEY_DATA_DIR: dataDir, ...(database ? { DATABASE_URL: database.url! } : {}) },
  });
  return { code: result.status, out: result.stdout, err: result.stderr };
}

describe('the latchkey CLI', () => {
  test('--help lists every command; an unknown command fails with usage', () => {
    const help = cli('--help');
    expect(help.code).toBe(0);
    for (const command of ['migrate', 'client create', 'user create', 'admin create', 'user reset-mfa', 'settings enforce-mfa', 'access import', 'audit export', 'keys rotate']) {
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
    expect(refused.err).toContain(`in use by process ${process.pid}`);
  });

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
