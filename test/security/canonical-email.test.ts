import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as canonicalEmailMigration from '../../migrations/008-canonical-email.js';
import { authenticateWithPassword, type PasswordLoginDeps } from '../../src/interactions/password-login.js';
import { canonicalEmail } from '../../src/security/email.js';
import { createThrottle } from '../../src/security/throttle.js';
import { aUser } from '../helpers/factories.js';
import { openTestDatabase } from '../helpers/database.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
let deps: PasswordLoginDeps;
const clock = { now: () => new Date('2026-03-01T09:00:00Z') };

beforeAll(async () => {
  server = await startTestServer({ clock });
  const { queries, hasher, settings } = server.latchkey;
  deps = { queries, hasher, throttle: createThrottle(queries, clock), settings };
});
afterAll(() => server.close());

describe('one canonical email', () => {
  test('trims, folds compatibility forms, then lower-cases', () => {
    expect(canonicalEmail('  Grace.Hopper@Example.TEST ')).toBe('grace.hopper@example.test');
    expect(canonicalEmail('ＡＤＭＩＮ@example.test')).toBe('admin@example.test');
    expect(canonicalEmail('\u212Aim@example.test')).toBe('kim@example.test');
    expect(canonicalEmail('admİn@example.test')).not.toBe('admin@example.test');
  });

  test('is what is stored, so that lookups compare exactly', async () => {
    const user = await aUser(server.latchkey, { email: 'Ada.Lovelace@Example.TEST' });
    expect(user.email).toBe('ada.lovelace@example.test');
    expect((await server.latchkey.queries.users.findByEmail(' ADA.lovelace@example.test'))?.id).toBe(user.id);
  });

  test('a locked account gets no fresh guesses under another spelling of its email', async () => {
    const user = await aUser(server.latchkey, { email: 'locked-admin@example.test' });
    for (let i = 0; i < 5; i++) await authenticateWithPassword(deps, { email: user.email, password: 'wrong', ip: `10.7.${i}.1` });
    for (const spelling of ['LOCKED-ADMIN@example.test', ' locked-admin@example.test', 'ＬＯＣＫＥＤ-ADMİN@example.test', 'locked-admİn@example.test', 'locked-ADMİN@EXAMPLE.TEST']) {
      const outcome = await authenticateWithPassword(deps, { email: spelling, password: user.password, ip: '10.7.99.1' });
      // Either the spelling is the account's (and its lock holds) or it is another address (and no account at all).
      expect(outcome).not.toMatchObject({ ok: true });
      if (canonicalEmail(spelling) === user.email) expect(outcome).toMatchObject({ reason: 'throttled' });
    }
    const fullWidth = await authenticateWithPassword(deps, { email: 'ｌｏｃｋｅｄ-ａｄｍｉｎ@example.test', password: user.password, ip: '10.7.99.2' });
    expect(fullWidth).toMatchObject({ ok: false, reason: 'throttled' });
  });

  test('migration 008 rewrites stored emails, and refuses, naming them, users who would share one', async () => {
    const database = await openTestDatabase();
    try {
      const { db } = database;
      await canonicalEmailMigration.down(db);
      await db('users').insert([{ email: 'Mixed.Case@Example.TEST' }, { email: 'ａlice@example.test' }, { email: 'alice@example.test' }]);
      await expect(canonicalEmailMigration.up(db)).rejects.toThrow(/alice@example\.test: .*<ａlice@example\.test>, .*<alice@example\.test>[\s\S]*Nothing was changed/);
      expect(await db('users').pluck('email')).toContain('Mixed.Case@Example.TEST');
      await db('users').where({ email: 'ａlice@example.test' }).delete();
      await canonicalEmailMigration.up(db);
      expect((await db('users').pluck('email')).sort()).toEqual(['alice@example.test', 'mixed.case@example.test']);
      await expect(db('users').insert({ email: 'alice@example.test' })).rejects.toThrow(/users_email_unique/);
    } finally {
      await database.close();
    }
  });
});
