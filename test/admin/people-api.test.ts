import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aClient, APP_ORIGIN, aUser } from '../helpers/factories.js';
import { BrowserAgent } from '../helpers/browser-agent.js';
import { recordingNotifier } from '../helpers/mfa.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const notices = recordingNotifier();
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let superAdmin: Awaited<ReturnType<typeof anAdmin>>;

beforeAll(async () => {
  server = await startTestServer({ notifier: notices.notifier });
  api = apiClient(server.url);
  superAdmin = await anAdmin(server.latchkey, server.url, ['super_admin']);
});
afterAll(() => server.close());

describe('users over the admin API', () => {
  test('lists users by email with search, in stable pages however many are added meanwhile', async () => {
    const tag = `pager${Date.now()}`;
    for (const letter of ['c', 'a', 'e', 'b', 'd']) await aUser(server.latchkey, { email: `${letter}-${tag}@example.test` });
    const first = await api('GET', `/api/admin/users?q=${tag}&limit=2`, superAdmin.token);
    expect((first.json.users as Array<{ email: string }>).map((u) => u.email[0])).toEqual(['a', 'b']);
    await aUser(server.latchkey, { email: `aa-${tag}@example.test` });
    const second = await api('GET', `/api/admin/users?q=${tag}&limit=2&cursor=${first.json.next_cursor}`, superAdmin.token);
    expect((second.json.users as Array<{ email: string }>).map((u) => u.email[0])).toEqual(['c', 'd']);
    const third = await api('GET', `/api/admin/users?q=${tag}&limit=2&cursor=${second.json.next_cursor}`, superAdmin.token);
    expect(third.json).toMatchObject({ users: [{ email: `e-${tag}@example.test` }], next_cursor: null });
    expect(JSON.stringify(first.json)).not.toMatch(/password_hash|argon2/);
  });

  test('search treats % and _ as plain characters', async () => {
    await aUser(server.latchkey, { email: 'under_score@example.test' });
    await aUser(server.latchkey, { email: 'underxscore@example.test' });
    const found = await api('GET', '/api/admin/users?q=under_', superAdmin.token);
    expect((found.json.users as Array<{ email: string }>).map((u) => u.email)).toEqual(['under_score@example.test']);
  });

  test('creates a user with a password, refuses a taken email, and only a super admin hands out roles', async () => {
    const created = await api('POST', '/api/admin/users', superAdmin.token, { email: 'new.person@example.test', name: 'New', password: 'a long passphrase', roles: ['auditor'] });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ email: 'new.person@example.test', roles: ['auditor'], has_password: true, status: 'active' });
    expect((await api('POST', '/api/admin/users', superAdmin.token, { email: 'NEW.person@example.test', password: 'a long passphrase' })).json).toMatchObject({ status: 409, field: 'email' });
    const userAdmin = await anAdmin(server.latchkey, server.url, ['access_user_admin']);
    expect((await api('POST', '/api/admin/users', userAdmin.token, { email: 'x1@example.test', password: 'a long passphrase', roles: ['super_admin'] })).status).toBe(403);
    expect((await api('POST', '/api/admin/users', userAdmin.token, { email: 'x2@example.test', password: 'a long passphrase' })).status).toBe(201);
    expect((await api('POST', '/api/admin/users', superAdmin.token, { email: 'x3@example.test', password: 'short' })).json).toMatchObject({ status: 400, field: 'password' });
  });

  test('40 concurrent creations of one email, spelled differently: one user, the rest 409, none a 500', async () => {
    const spellings = Array.from({ length: 40 }, (_, i) => (i % 2 ? 'Racing.Person@Example.test' : 'racing.person@EXAMPLE.TEST'));
    const answers = await Promise.all(spellings.map((email) => api('POST', '/api/admin/users', superAdmin.token, { email, password: 'a long passphrase' })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, ...Array(39).fill(409)]);
    expect(answers.find((a) => a.status === 201)!.json).toMatchObject({ email: 'racing.person@example.test' });
  });

  test('invites a user, who sets a password through the emailed link once, and can then sign in', async () => {
    const invited = await api('POST', '/api/admin/users/invitations', superAdmin.token, { email: 'invitee@example.test', name: 'Invitee' });
    expect(invited.status).toBe(201);
    const userId = (invited.json.user as { id: string; has_password: boolean }).id;
    expect(invited.json.user).toMatchObject({ has_password: false });
    const link = notices.sent.find((n) => n.userId === userId && n.event === 'invited')!.details!.link!;
    expect(link).toMatch(new RegExp(`^${server.url}/invitation/[A-Za-z0-9_-]{40,}$`));

    const agent = new BrowserAgent(APP_ORIGIN);
    const page = await agent.visit(link);
    expect(page.html).toContain('invitee@example.test');
    const accept = (password: string) => agent.submit(page, '', { password, password_again: password });
    expect((await accept('short')).status).toBe(400);
    expect((await accept('my chosen passphrase')).url).toContain('/invitation/accepted');
    expect((await accept('another passphrase')).status).toBe(404);

    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    const tokens = await completeLogin(config, login, (await signInWithPassword(login, 'invitee@example.test', 'my chosen passphrase')).url);
    expect(tokens.claims()!.sub).toBe(userId);
    expect((await server.latchkey.queries.users.findById(userId))!.email_verified).toBe(true);
  });

  test('shows a user with their factors but never a secret', async () => {
    const user = await aUser(server.latchkey);
    const shown = await api('GET', `/api/admin/users/${user.id}`, superAdmin.token);
    expect(shown.json).toMatchObject({ id: user.id, email: user.email, factors: [], recovery_codes_left: 0 });
    expect(shown.text).not.toMatch(/secret|hash/i);
  });

  test('disabling signs the user out everywhere at once; their refresh token stops working', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { grant_types: ['authorization_code', 'refresh_token'] });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config, { scope: 'openid offline_access', prompt: 'consent' });
    const tokens = await completeLogin(config, login, (await signInWithPassword(login, user.email, user.password)).url);
    expect(tokens.refresh_token).toBeDefined();

    const disabled = await api('PATCH', `/api/admin/users/${user.id}`, superAdmin.token, { status: 'disabled' });
    expect(disabled.json).toMatchObject({ status: 'disabled' });
    const refreshed = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }),
    });
    expect(refreshed.status).toBe(400);
    expect((await api('PATCH', `/api/admin/users/${superAdmin.user.id}`, superAdmin.token, { status: 'disabled' })).json).toMatchObject({ status: 409, field: 'status' });
    expect((await api('PATCH', `/api/admin/users/${user.id}`, superAdmin.token, { status: 'active' })).json).toMatchObject({ status: 'active' });
  });

  test('sets roles idempotently; the last super admin keeps theirs; an access user admin cannot touch an admin', async () => {
    const user = await aUser(server.latchkey);
    for (let i = 0; i < 2; i++) {
      const set = await api('PUT', `/api/admin/users/${user.id}/roles`, superAdmin.token, { roles: ['auditor', 'access_user_manager', 'auditor'] });
      expect(set.json).toMatchObject({ roles: ['access_user_manager', 'auditor'] });
    }
    const audited = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'user.roles' });
    expect(audited[0]).toMatchObject({ actor_id: superAdmin.user.id });

    await server.database.db('users').whereRaw(`roles @> '["super_admin"]'`).whereNot({ id: superAdmin.user.id }).update({ status: 'disabled' });
    expect((await api('PUT', `/api/admin/users/${superAdmin.user.id}/roles`, superAdmin.token, { roles: [] })).json).toMatchObject({ status: 409, code: 'last_super_admin' });

    const userAdmin = await anAdmin(server.latchkey, server.url, ['access_user_admin']);
    expect((await api('PATCH', `/api/admin/users/${user.id}`, userAdmin.token, { name: 'Renamed' })).status).toBe(403);
  });

  test('revoking sessions ends the user\'s sessions and tokens and tells them', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    const tokens = await completeLogin(config, login, (await signInWithPassword(login, user.email, user.password)).url);
    const userinfo = () => fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect((await userinfo()).status).toBe(200);
    expect((await api('DELETE', `/api/admin/users/${user.id}/sessions`, superAdmin.token)).status).toBe(204);
    expect((await userinfo()).status).toBe(401);
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toEqual([]);
    expect(notices.eventsFor(user.id)).toContain('signed_out_elsewhere');
    expect((await api('DELETE', `/api/admin/users/${user.id}/sessions`, superAdmin.token)).status).toBe(204);
  });
});
