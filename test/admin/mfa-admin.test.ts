import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { UserRow } from '../../src/db/users.js';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { accessTokenFor, adminApiTokens } from '../helpers/admin-api.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, recordingNotifier, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const clock = steppingClock();
const notices = recordingNotifier();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ clock, notifier: notices.notifier });
});
afterAll(() => server.close());

const factorsOf = (userId: string) => server.database.db('user_factors').where({ user_id: userId });

const tokenFor = (user: { email: string; password: string }, adminApi: boolean) => accessTokenFor(server.latchkey, server.url, user, adminApi);

const api = (path: string, token: string | undefined, init: RequestInit = {}) =>
  fetch(`${server.url}/api/admin${path}`, { ...init, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...init.headers } });

describe('the admin console', () => {
  test('is closed to users without an admin role', async () => {
    const user = await aUser(server.latchkey);
    const { page } = await consoleSignIn(server.url, user.email, user.password, '/admin');
    expect(page.status).toBe(403);
  });

  test('turns enforcement on, and refuses a save based on a stale read', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    // Under enforcement the admin pages need a session with a second factor (test/console/step-up.test.ts).
    const { secret } = await enrolTotp(server.latchkey, admin, clock);
    clock.nextStep();
    const { agent, page } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/settings', referenceTotp(secret, clock.now()));
    expect(page.html).toContain('Enforce multi-factor authentication');
    const version = /name="version" value="(\d+)"/.exec(page.html)![1]!;
    const saved = await agent.visit(`${server.url}/admin/settings/enforce-mfa`, { form: { _csrf: csrfOf(page), version, enforce: 'on' } });
    expect(saved.html).toContain('Settings saved.');
    expect((await server.latchkey.mfa.readEnforcement()).value).toBe(true);
    const stale = await agent.visit(`${server.url}/admin/settings/enforce-mfa`, { form: { _csrf: csrfOf(page), version } });
    expect(stale.html).toContain('Someone else changed these settings');
    expect((await server.latchkey.mfa.readEnforcement()).value).toBe(true);
    await server.latchkey.mfa.setEnforcement(false, { actorId: admin.id });
  });

  test('resets a user\'s MFA after a confirmation step, audited as the admin\'s act', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const user = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, user, clock);
    const { agent, page: list } = await consoleSignIn(server.url, admin.email, admin.password, `/admin/users?q=${encodeURIComponent(user.email)}`);
    expect(list.html).toContain(user.email);
    const page = await agent.visit(`${server.url}/admin/users/${user.id}`);
    expect(page.html).toContain('Authenticator app');
    const confirm = await agent.visit(`${server.url}/admin/users/${user.id}/reset-mfa`);
    expect(confirm.html).toContain(user.email);
    expect(await factorsOf(user.id)).toHaveLength(1);
    const done = await agent.submit(confirm, '/reset-mfa');
    expect(done.html).toContain('Two-step verification was reset.');
    expect(await factorsOf(user.id)).toHaveLength(0);
    expect((await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.reset' }))[0]).toMatchObject({ actor_id: admin.id });
    expect(notices.eventsFor(user.id)).toContain('mfa_reset_by_admin');
  });
});

describe('the admin API', () => {
  test('needs a bearer token from an admin-API client, issued to a super admin', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const user = await aUser(server.latchkey);
    expect((await api('/settings/enforce-mfa', undefined)).status).toBe(401);
    expect((await api('/settings/enforce-mfa', 'not-a-real-token-at-all')).status).toBe(401);
    expect((await api('/settings/enforce-mfa', await tokenFor(admin, false))).status).toBe(403);
    expect((await api('/settings/enforce-mfa', await tokenFor(user, true))).status).toBe(403);
    const ok = await api('/settings/enforce-mfa', await tokenFor(admin, true));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ enabled: false });
  });

  test('sets enforcement with optimistic concurrency, and names the field of a bad body', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    // Under enforcement the admin API needs a token from a sign-in with a second factor (api-step-up.test.ts).
    const { secret } = await enrolTotp(server.latchkey, admin, clock);
    clock.nextStep();
    const token = (await adminApiTokens(server.latchkey, server.url, admin, { code: referenceTotp(secret, clock.now()) })).tokens.access_token;
    const etag = (await api('/settings/enforce-mfa', token)).headers.get('etag')!;

    const bad = await api('/settings/enforce-mfa', token, { method: 'PUT', body: JSON.stringify({ enabled: 'yes' }) });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
    expect(await bad.json()).toMatchObject({ status: 400, field: 'enabled' });

    const put = await api('/settings/enforce-mfa', token, { method: 'PUT', body: JSON.stringify({ enabled: true }), headers: { 'if-match': etag } });
    expect(put.status).toBe(200);
    const stale = await api('/settings/enforce-mfa', token, { method: 'PUT', body: JSON.stringify({ enabled: false }), headers: { 'if-match': etag } });
    expect(stale.status).toBe(412);
    expect((await server.latchkey.mfa.readEnforcement()).value).toBe(true);
    const off = await api('/settings/enforce-mfa', token, { method: 'PUT', body: JSON.stringify({ enabled: false }) });
    expect(off.status).toBe(200);
  });

  test('resets a user\'s MFA; unknown and malformed ids are 404', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const user = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, user, clock);
    const token = await tokenFor(admin, true);
    expect((await api(`/users/${user.id}/mfa`, token, { method: 'DELETE' })).status).toBe(204);
    expect(await factorsOf(user.id)).toHaveLength(0);
    expect((await api(`/users/${user.id}/mfa`, token, { method: 'DELETE' })).status).toBe(204);
    expect((await api('/users/00000000-0000-4000-8000-000000000000/mfa', token, { method: 'DELETE' })).status).toBe(404);
    expect((await api('/users/nope/mfa', token, { method: 'DELETE' })).status).toBe(404);
    const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    expect(row.preferred_factor_id).toBeNull();
  });
});
