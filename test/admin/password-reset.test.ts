import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ensureSuperAdmin, resetPassword } from '../../src/admin/users.js';
import { throttleKeys } from '../../src/interactions/password-login.js';
import { createThrottle } from '../../src/security/throttle.js';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, recordingNotifier } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const notices = recordingNotifier();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ notifier: notices.notifier });
});
afterAll(() => server.close());

const CHOOSE = '/account/profile?notice=choose_password';
const people = () => ({ ...server.latchkey, issuer: server.url });
const cli = { actorId: null, userAgent: 'latchkey-cli' };

describe('a password someone else chose', () => {
  test("the first admin's generated password opens only the password change, once", async () => {
    const admin = (await ensureSuperAdmin(server.latchkey, undefined))!;
    expect(admin.generatedPassword).toBeDefined();
    expect((await server.latchkey.queries.users.findByEmail(admin.email))!.must_change_password).toBe(true);

    const { agent, page } = await consoleSignIn(server.url, admin.email, admin.generatedPassword!, '/admin/users');
    expect(page.url).toBe(`${server.url}${CHOOSE}`);
    expect(page.html).toContain('Choose your own password before going on');
    // Every other console page and form sends back there, and does nothing.
    for (const path of ['/admin/users', '/admin/settings', '/account/security', '/account/sessions']) {
      expect((await agent.visit(`${server.url}${path}`)).url).toBe(`${server.url}${CHOOSE}`);
    }
    const renamed = await agent.visit(`${server.url}/account/profile`, { form: { _csrf: csrfOf(page), name: 'Mallory', locale: '', time_zone: '' } });
    expect(renamed.url).toBe(`${server.url}${CHOOSE}`);
    expect((await server.latchkey.queries.users.findByEmail(admin.email))!.name).toBe('Administrator');

    const changed = await agent.visit(`${server.url}/account/password`, {
      form: { _csrf: csrfOf(page), current_password: admin.generatedPassword!, new_password: 'my own admin passphrase', new_password_again: 'my own admin passphrase' },
    });
    expect(changed.html).toContain('Your password was changed.');
    expect((await server.latchkey.queries.users.findByEmail(admin.email))!.must_change_password).toBe(false);
    const users = await agent.visit(`${server.url}/admin/users`);
    expect(users.url).toBe(`${server.url}/admin/users`);
    expect(users.status).toBe(200);
  });

  test('a user who chose their own password is never asked', async () => {
    const user = await aUser(server.latchkey);
    expect((await server.latchkey.queries.users.findById(user.id))!.must_change_password).toBe(false);
    const { page } = await consoleSignIn(server.url, user.email, user.password, '/account/security');
    expect(page.url).toBe(`${server.url}/account/security`);
  });
});

describe('an operator resets a password (latchkey user reset-password)', () => {
  test('lifts the lockout, ends the sessions, keeps the second factor, is audited and forces a change', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, { now: () => new Date() });
    expect(secret).toBeTruthy();
    const before = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    expect(before.page.html).toContain('name="code"');

    // Locked out: the account's sign-in counter is locked, as after too many wrong passwords.
    const throttle = createThrottle(server.latchkey.queries, server.latchkey.clock);
    const rule = { key: throttleKeys.account(user.email), limit: 1, windowSeconds: 900, baseLockSeconds: 900, onSuccess: 'reset' as const };
    await throttle.reserve([rule]);
    expect((await throttle.reserve([rule])).allowed).toBe(false);
    const locked = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    expect(locked.page.html).toContain('name="password"');

    const { generatedPassword } = await resetPassword(people(), (await server.latchkey.queries.users.findById(user.id))!, undefined, cli);
    expect(generatedPassword).toMatch(/^[\w-]{20}$/);
    const row = (await server.latchkey.queries.users.findById(user.id))!;
    expect(row.must_change_password).toBe(true);
    expect((await server.latchkey.hasher.verify(row.password_hash!, user.password)).valid).toBe(false);
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(0);
    expect(await server.latchkey.mfa.methodsFor(row)).toHaveLength(1);
    expect(notices.eventsFor(user.id)).toContain('password_changed');
    const [audit] = await server.latchkey.queries.audit.search({ userId: user.id, action: 'user.password_reset', limit: 5 });
    expect(audit).toMatchObject({ outcome: 'success', actor_id: null, user_agent: 'latchkey-cli', details: { generated: true } });

    // The new password signs in (no lockout left), the second factor is still asked for, then the change comes first.
    const after = await consoleSignIn(server.url, user.email, generatedPassword!, '/account/security');
    expect(after.page.html).toContain('name="code"');
  });

  test('a password given by the operator must meet the policy, and is also for one sign-in', async () => {
    const user = await aUser(server.latchkey);
    const row = (await server.latchkey.queries.users.findById(user.id))!;
    await expect(resetPassword(people(), row, 'short', cli)).rejects.toThrow('at least 15');
    await server.latchkey.settings.write('password-policy', { min_length: 20 });
    await expect(resetPassword(people(), row, 'fifteen letters', cli)).rejects.toMatchObject({ status: 400, field: 'password' });
    await server.latchkey.settings.write('password-policy', { min_length: 8 });
    expect(await resetPassword(people(), row, 'given by the operator', cli)).toEqual({ generatedPassword: undefined });
    const { page } = await consoleSignIn(server.url, user.email, 'given by the operator', '/account/sessions');
    expect(page.url).toBe(`${server.url}${CHOOSE}`);
  });
});
