import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { authenticateWithPassword, type PasswordLoginDeps } from '../../src/interactions/password-login.js';
import { accountGuessKey } from '../../src/security/password-guesses.js';
import { createPasswordHasher } from '../../src/security/passwords.js';
import { createThrottle } from '../../src/security/throttle.js';
import { aUser } from '../helpers/factories.js';
import { queriesDuring } from '../helpers/queries.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
let now = new Date('2026-03-01T09:00:00Z');
const clock = { now: () => now };
let deps: PasswordLoginDeps;

beforeAll(async () => {
  server = await startTestServer({ clock });
  const { queries, hasher, settings } = server.latchkey;
  await settings.write('lockout', { login_account_failures: 5, login_ip_failures: 8, login_window_seconds: 900, mfa_account_failures: 5 });
  deps = { queries, hasher, throttle: createThrottle(queries, clock), settings };
});
afterAll(() => server.close());

const attempt = (email: string, password: string, ip = '198.51.100.7') => authenticateWithPassword(deps, { email, password, ip });

describe('the password step', () => {
  test('accepts the right password whatever the email case', async () => {
    const user = await aUser(server.latchkey, { email: 'Grace.Hopper@Example.test' });
    const outcome = await attempt('grace.hopper@example.TEST', user.password);
    expect(outcome).toMatchObject({ ok: true, user: { id: user.id } });
  });

  test('an unknown user and a wrong password answer alike, and the audit log keeps the real reason', async () => {
    const user = await aUser(server.latchkey);
    const unknown = await attempt('nobody-here@example.test', 'whatever', '203.0.113.1');
    const wrong = await attempt(user.email, 'not-the-password', '203.0.113.2');
    expect(unknown).toEqual({ ok: false, reason: 'invalid_credentials' });
    expect(wrong).toEqual(unknown);
    const reasons = (await server.latchkey.queries.audit.list({ action: 'login.password', limit: 2 })).map((e) => e.details.reason);
    expect(reasons).toEqual(['wrong_password', 'unknown_user']);
  });

  test('an unknown user takes as long to refuse as a wrong password (dummy hash)', async () => {
    const user = await aUser(server.latchkey);
    const time = async (fn: () => Promise<unknown>) => {
      const started = performance.now();
      await fn();
      return performance.now() - started;
    };
    const rounds = 6;
    let unknown = 0;
    let wrong = 0;
    for (let i = 0; i < rounds; i++) {
      unknown += await time(() => attempt(`ghost-${i}@example.test`, 'x', `192.0.2.${i}`));
      wrong += await time(() => attempt(user.email, `bad-${i}`, `192.0.2.${100 + i}`));
    }
    // Both include one argon2id verify (~12 ms); without the dummy hash an unknown user would answer in ~1 ms.
    expect(unknown / rounds).toBeGreaterThan(0.5 * (wrong / rounds));
  });

  test('a disabled account is refused like a wrong password', async () => {
    const user = await aUser(server.latchkey);
    await server.database.db('users').where({ id: user.id }).update({ status: 'disabled' });
    expect(await attempt(user.email, user.password, '192.0.2.200')).toEqual({ ok: false, reason: 'invalid_credentials' });
  });

  test('locks an account after repeated failures, whether or not it exists, with growing backoff', async () => {
    const user = await aUser(server.latchkey);
    for (const email of [user.email, 'no-such-person@example.test']) {
      for (let i = 0; i < 5; i++) await attempt(email, 'wrong', `10.9.${i}.1`);
      const locked = await attempt(email, email === user.email ? user.password : 'x', '10.9.99.1');
      expect(locked).toMatchObject({ ok: false, reason: 'throttled', retryAfterSeconds: 30 });
    }
    now = new Date(now.getTime() + 31_000);
    expect(await attempt(user.email, 'wrong', '10.9.100.1')).toEqual({ ok: false, reason: 'invalid_credentials' });
    // One more failure past the limit doubles the lock.
    expect(await attempt(user.email, user.password, '10.9.101.1')).toMatchObject({ reason: 'throttled', retryAfterSeconds: 60 });
    now = new Date(now.getTime() + 61_000);
    expect(await attempt(user.email, user.password, '10.9.102.1')).toMatchObject({ ok: true });
    // Success clears the account's count.
    expect(await attempt(user.email, 'wrong', '10.9.103.1')).toEqual({ ok: false, reason: 'invalid_credentials' });
  });

  test('throttles one client IP trying many accounts', async () => {
    const ip = '198.51.100.250';
    for (let i = 0; i < 8; i++) await attempt(`spray-${i}@example.test`, 'Winter2026!', ip);
    const user = await aUser(server.latchkey);
    expect(await attempt(user.email, user.password, ip)).toMatchObject({ ok: false, reason: 'throttled' });
    expect(await attempt(user.email, user.password, '198.51.100.251')).toMatchObject({ ok: true });
  });

  test('counts failures across instances: the counters live in the database', async () => {
    const user = await aUser(server.latchkey);
    const other = { ...deps, throttle: createThrottle(server.latchkey.queries, clock) };
    for (let i = 0; i < 5; i++) {
      await authenticateWithPassword(i % 2 ? deps : other, { email: user.email, password: 'nope', ip: `10.8.${i}.1` });
    }
    expect(await attempt(user.email, user.password, '10.8.50.1')).toMatchObject({ reason: 'throttled' });
  });

  test('a right password clears its failures and is audited by one statement', async () => {
    const user = await aUser(server.latchkey);
    await attempt(user.email, 'not-the-password', '198.51.100.60');
    const seen = await queriesDuring(server.database.db, () => attempt(user.email, user.password, '198.51.100.60'));
    expect(seen.filter((sql) => sql.includes('throttle_counters') && sql.includes('audit_events'))).toHaveLength(1);
    expect(await server.latchkey.queries.throttle.find(accountGuessKey(user.email))).toBeUndefined();
    const [entry] = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'login.password', limit: 1 });
    expect(entry).toMatchObject({ outcome: 'success', details: { reason: 'password_verified' } });
  });

  test('upgrades a weaker stored hash on a successful login', async () => {
    const weak = createPasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1 });
    const user = await aUser(server.latchkey);
    await server.database.db('users').where({ id: user.id }).update({ password_hash: await weak.hash(user.password) });
    expect(await attempt(user.email, user.password, '192.0.2.250')).toMatchObject({ ok: true });
    const stored = (await server.latchkey.queries.users.findById(user.id))!.password_hash!;
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await attempt(user.email, user.password, '192.0.2.251')).toMatchObject({ ok: true });
  });
  test('40 concurrent guesses from one address at 40 accounts evaluate at most the per-IP limit (8 here)', async () => {
    const ip = '203.0.113.99';
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => attempt(`nobody-${i}@example.test`, 'wrong-password', ip)));
    expect(outcomes.filter((o) => !o.ok && o.reason === 'invalid_credentials').length).toBeLessThanOrEqual(8);
    const evaluated = (await server.latchkey.queries.audit.list({ action: 'login.password' })).filter((e) => e.ip === ip && e.details.reason !== 'throttled');
    expect(evaluated.length).toBeLessThanOrEqual(8);
  });
});
