import { spawnSync } from 'node:child_process';
import { describe, expect, test } from '@jest/globals';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { PROJECT_ROOT } from '../../src/paths.js';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

describe('configuration', () => {
  test('a newcomer needs to set nothing', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 3000, issuer: 'http://localhost:3000', database: { url: undefined, dataDir: './data' } });
    expect(config.argon2).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
  });

  test('each bad value is named with what was expected', () => {
    const problems = problemsOf({ PORT: 'eighty', DATABASE_URL: 'mysql://x', LATCHKEY_TRUST_PROXY: 'maybe', LATCHKEY_ARGON2_MEMORY_KIB: '1024' });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: expected a whole number \(got "eighty"\)$/),
        expect.stringMatching(/^DATABASE_URL: expected a postgres:\/\/ URL/),
        expect.stringMatching(/^LATCHKEY_TRUST_PROXY: expected true or false/),
        expect.stringMatching(/^LATCHKEY_ARGON2_MEMORY_KIB: expected at least 19456/),
      ]),
    );
  });

  test('production requires a master key, and secrets are never echoed', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([expect.stringMatching(/^LATCHKEY_MASTER_KEY: required in production/)]);
    const [problem] = problemsOf({ LATCHKEY_MASTER_KEY: 'too-short-secret' });
    expect(problem).toMatch(/^LATCHKEY_MASTER_KEY: expected 32 bytes/);
    expect(problem).not.toContain('too-short-secret');
  });

  test('production refuses an http issuer, except on a loopback host', () => {
    const production = { NODE_ENV: 'production', LATCHKEY_MASTER_KEY: 'a'.repeat(64) };
    expect(problemsOf({ ...production, LATCHKEY_ISSUER: 'http://id.example.com' })).toEqual([expect.stringMatching(/^LATCHKEY_ISSUER: expected https in production/)]);
    expect(problemsOf({ ...production, LATCHKEY_ISSUER: 'http://10.0.0.5:3000' })).toHaveLength(1);
    expect(problemsOf({ ...production, LATCHKEY_ISSUER: 'http://127.0.0.1.example.com' })).toHaveLength(1);
    for (const issuer of ['https://id.example.com', 'http://localhost:3000', 'http://127.0.0.1:3000', 'http://127.8.9.10', 'http://[::1]:3000']) {
      expect(problemsOf({ ...production, LATCHKEY_ISSUER: issuer })).toEqual([]);
    }
    expect(problemsOf({ LATCHKEY_ISSUER: 'http://id.example.com' })).toEqual([]);
  });

  test('behind proxies, the number of trusted hops; LATCHKEY_TRUST_PROXY=true is one hop', () => {
    expect(loadConfig({})).toMatchObject({ trustProxy: false, proxyHops: 0 });
    expect(loadConfig({ LATCHKEY_TRUST_PROXY: 'true' })).toMatchObject({ trustProxy: true, proxyHops: 1 });
    expect(loadConfig({ LATCHKEY_TRUST_PROXY: 'false' })).toMatchObject({ trustProxy: false, proxyHops: 0 });
    expect(loadConfig({ LATCHKEY_TRUSTED_PROXY_HOPS: '2' })).toMatchObject({ trustProxy: true, proxyHops: 2 });
    expect(problemsOf({ LATCHKEY_TRUSTED_PROXY_HOPS: 'all' })).toEqual([expect.stringMatching(/^LATCHKEY_TRUSTED_PROXY_HOPS: expected a whole number/)]);
    expect(problemsOf({ LATCHKEY_TRUST_PROXY: 'true', LATCHKEY_TRUSTED_PROXY_HOPS: '2' })).toEqual([expect.stringMatching(/^LATCHKEY_TRUST_PROXY: set LATCHKEY_TRUSTED_PROXY_HOPS alone/)]);
  });

  test('admin email and password go together', () => {
    expect(problemsOf({ LATCHKEY_ADMIN_EMAIL: 'root@example.test' })).toEqual([expect.stringMatching(/^LATCHKEY_ADMIN_PASSWORD:/)]);
  });

  test('the server refuses to start on bad config, saying why, with exit code 78', () => {
    const result = spawnSync(process.execPath, ['dist/src/main.js'], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH, PORT: '99999', LATCHKEY_ISSUER: 'not a url' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(78);
    expect(result.stderr).toContain('PORT: expected at most 65535 (got "99999")');
    expect(result.stderr).toContain('LATCHKEY_ISSUER: expected an http(s) URL');
  });
});
