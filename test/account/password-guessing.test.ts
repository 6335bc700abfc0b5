import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { authenticateWithPassword } from '../../src/interactions/password-login.js';
import { createThrottle } from '../../src/security/throttle.js';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  await server.latchkey.settings.write('lockout', { login_account_failures: 5, login_ip_failures: 1000, login_window_seconds: 900, mfa_account_failures: 5 });
});
afterAll(() => server.close());

async function signedIn() {
  const user = await aUser(server.latchkey);
  const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
  const change = (current: string, next = 'a brand new passphrase') =>
    agent.request(`${server.url}/account/password`, { form: { _csrf: csrfOf(page), current_password: current, new_password: next, new_password_again: next } });
  return { user, agent, page, change };
}

describe('guessing the current password from a signed-in session', () => {
  test('the password change form locks after the limit, with Retry-After, even for the right password', async () => {
    const { user, change } = await signedIn();
    for (let i = 0; i < 5; i++) expect((await change(`wrong guess ${i}`)).status).toBe(400);
    const locked = await change(user.password);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await locked.text()).toContain('Too many attempts');
    expect((await server.latchkey.hasher.verify((await server.latchkey.queries.users.findById(user.id))!.password_hash, user.password)).valid).toBe(true);
  });

  test('shares one counter with sign-in: guesses made here are not a fresh budget there', async () => {
    const { user, change } = await signedIn();
    for (let i = 0; i < 5; i++) await change(`wrong guess ${i}`);
    const { queries, hasher, settings } = server.latchkey;
    const login = await authenticateWithPassword({ queries, hasher, settings, throttle: createThrottle(queries, server.latchkey.clock) }, { email: user.email, password: user.password, ip: '192.0.2.9' });
    expect(login).toMatchObject({ ok: false, reason: 'throttled' });
  });

  test('40 concurrent guesses: at most the limit are checked', async () => {
    const { user, change } = await signedIn();
    await Promise.all(Array.from({ length: 40 }, (_, i) => change(`racing guess ${i}`).then((r) => r.text())));
    const checked = await server.latchkey.queries.audit.search({ userId: user.id, action: 'user.password_change', outcome: 'failure', limit: 100 });
    expect(checked.filter((e) => e.details.reason === 'wrong_password')).toHaveLength(5);
  });

  test('re-authentication shares it too, and says when to try again', async () => {
    const { agent, change, page } = await signedIn();
    for (let i = 0; i < 5; i++) await change(`wrong guess ${i}`);
    const reauth = await agent.request(`${server.url}/account/reauth`, { form: { _csrf: csrfOf(page), password: 'another guess' } });
    expect(reauth.status).toBe(429);
    expect(Number(reauth.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await reauth.text()).toContain('Too many attempts');
  });
});
