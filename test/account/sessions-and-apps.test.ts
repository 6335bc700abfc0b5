import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aClient, aUser } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { signOutEverywhere } from '../../src/account/sessions.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

/** The consent page's form (the logout form oidc-provider posts also ends in /confirm). */
const CONSENT_FORM = /action="\/interaction\/[^"]+\/confirm"/;

/** An app (not first party) and a user who signed into it once, allowing `scope`; with their tokens. */
async function aConnectedApp(scope = 'openid email profile offline_access') {
  const user = await aUser(server.latchkey);
  const client = await aClient(server.latchkey);
  const config = await relyingParty(server.url, client.clientId, client.clientSecret);
  const login = await startLogin(config, { scope });
  const page = await signInWithPassword(login, user.email, user.password);
  const tokens = await completeLogin(config, login, page.url);
  return { user, client, config, tokens, agent: login.agent };
}

const sessionRows = (html: string) => [...html.matchAll(/<tr data-session="([^"]+)">([\s\S]*?)<\/tr>/g)].map(([, uid, row]) => ({ uid: uid!, row: row! }));

describe('consent is remembered per user and app', () => {
  test('a new browser is not asked again; new scopes and prompt=consent are, and only new scopes are listed', async () => {
    const { user, config } = await aConnectedApp('openid email');
    const consents = await server.latchkey.queries.consents.find(user.id, (config.clientMetadata().client_id));
    expect(consents).toMatchObject({ scopes: ['email', 'openid'] });

    // Another browser (no session, no grant of its own): password, then straight back to the app.
    const again = await startLogin(config, { scope: 'openid email', prompt: '' });
    const back = await again.agent.submit(again.page, '/login', { email: user.email, password: user.password });
    expect(back.html).not.toMatch(CONSENT_FORM);
    expect(back.url).toContain('code=');
    expect((await completeLogin(config, again, back.url)).claims()).toMatchObject({ sub: user.id });

    // The app asks for more: only what is new is put to the user.
    const more = await startLogin(config, { scope: 'openid email profile', prompt: '' });
    const asked = await more.agent.submit(more.page, '/login', { email: user.email, password: user.password });
    expect(asked.html).toMatch(CONSENT_FORM);
    expect(asked.html).toContain('See your name and language');
    expect(asked.html).not.toContain('See your email address');
    const granted = await more.agent.submit(asked, '/confirm');
    expect((await completeLogin(config, more, granted.url)).scope?.split(' ').sort()).toEqual(['email', 'openid', 'profile']);
    expect(await server.latchkey.queries.consents.find(user.id, config.clientMetadata().client_id)).toMatchObject({ scopes: ['email', 'openid', 'profile'] });

    // prompt=consent asks again, listing what the app asks for.
    const forced = await startLogin(config, { scope: 'openid email', prompt: 'consent' });
    const reasked = await forced.agent.submit(forced.page, '/login', { email: user.email, password: user.password });
    expect(reasked.html).toMatch(CONSENT_FORM);
    expect(reasked.html).toContain('See your email address');
  });

  test('an API\'s scopes are remembered too: a new one is asked, alone', async () => {
    const api = `https://api.example.test/remembered-${Date.now()}`;
    await server.latchkey.resources.register({ identifier: api, name: 'Orders', scopes: ['orders:read', 'orders:write'] });
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const first = await startLogin(config, { resource: api, scope: 'openid orders:read', prompt: '' });
    const asked = await first.agent.submit(first.page, '/login', { email: user.email, password: user.password });
    expect(asked.html).toContain('orders:read');
    await first.agent.submit(asked, '/confirm');
    expect(await server.latchkey.queries.consents.find(user.id, client.clientId)).toMatchObject({ resource_scopes: { [api]: ['orders:read'] } });

    const same = await startLogin(config, { resource: api, scope: 'openid orders:read', prompt: '' });
    expect((await same.agent.submit(same.page, '/login', { email: user.email, password: user.password })).url).toContain('code=');

    const wider = await startLogin(config, { resource: api, scope: 'openid orders:read orders:write', prompt: '' });
    const again = await wider.agent.submit(wider.page, '/login', { email: user.email, password: user.password });
    expect(again.html).toContain('orders:write');
    expect(again.html).not.toContain('orders:read');
  });

  test('one user\'s consent is not another\'s', async () => {
    const { config } = await aConnectedApp('openid email');
    const other = await aUser(server.latchkey);
    const login = await startLogin(config, { scope: 'openid email', prompt: '' });
    const page = await login.agent.submit(login.page, '/login', { email: other.email, password: other.password });
    expect(page.html).toMatch(CONSENT_FORM);
  });

  test('first-party apps still skip consent, and are not recorded as connected', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { first_party: true });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config, { scope: 'openid email', prompt: '' });
    const page = await login.agent.submit(login.page, '/login', { email: user.email, password: user.password });
    expect(page.url).toContain('code=');
    expect(await server.latchkey.queries.consents.listFor(user.id)).toEqual([]);
  });
});

describe('connected apps', () => {
  test('lists the app with what was allowed; revoking ends its refresh token and the next sign-in asks again', async () => {
    const { user, client, config, tokens } = await aConnectedApp();
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/sessions');
    expect(page.html).toContain(`data-app="${client.clientId}"`);
    expect(page.html).toContain('Test App');
    expect(page.html).toContain('See your email address');

    // Without the form token nothing happens.
    const forged = await agent.visit(`${server.url}/account/apps/revoke`, { form: { client_id: client.clientId } });
    expect(forged.status).toBe(403);
    expect(await server.latchkey.queries.consents.find(user.id, client.clientId)).toBeDefined();

    const done = await agent.submit(page, '/account/apps/revoke');
    expect(done.html).toContain('The app&#39;s access was revoked.');
    expect(done.html).not.toContain(`data-app="${client.clientId}"`);
    expect(await server.latchkey.queries.consents.find(user.id, client.clientId)).toBeUndefined();
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    const [event] = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'user.app_revoked' });
    expect(event).toMatchObject({ actor_id: user.id, client_id: client.clientId });

    // The browser that signed into the app still has its session, but no grant: consent is asked again.
    const next = await startLogin(config, { scope: 'openid email', prompt: '' }, agent);
    expect(next.page.html).toMatch(CONSENT_FORM);
  });

  test('another user\'s app, or a made-up one, is not found, and changes nothing', async () => {
    const { user, client, config, tokens } = await aConnectedApp();
    const mallory = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, mallory.email, mallory.password, '/account/sessions');
    const theirs = await agent.visit(`${server.url}/account/apps/revoke`, { form: { _csrf: csrfOf(page), client_id: client.clientId } });
    expect(theirs.status).toBe(404);
    const bad = await agent.visit(`${server.url}/account/apps/revoke`, { form: { _csrf: csrfOf(page), client_id: '../../x y' } });
    expect(bad.status).toBe(400);
    expect(await server.latchkey.queries.consents.find(user.id, client.clientId)).toBeDefined();
    expect((await oidc.refreshTokenGrant(config, tokens.refresh_token!)).access_token).toBeTruthy();
  });
});

describe('sessions per device', () => {
  test('lists each session with its address and apps; signs one out with its tokens; not another user\'s', async () => {
    const { user, config, tokens } = await aConnectedApp();
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/sessions');
    const rows = sessionRows(page.html);
    expect(rows).toHaveLength(2);
    const appSession = rows.find((r) => !r.row.includes('This browser'))!;
    expect(appSession.row).toContain('Test App');
    expect(appSession.row).toContain('127.0.0.1');

    const mallory = await aUser(server.latchkey);
    const intruder = await consoleSignIn(server.url, mallory.email, mallory.password, '/account/sessions');
    const refused = await intruder.agent.visit(`${server.url}/account/sessions/sign-out`, { form: { _csrf: csrfOf(intruder.page), session: appSession.uid } });
    expect(refused.status).toBe(404);
    for (const session of ['', 'x'.repeat(65), 'a b', '../x']) {
      expect((await intruder.agent.visit(`${server.url}/account/sessions/sign-out`, { form: { _csrf: csrfOf(intruder.page), session } })).status).toBe(400);
    }
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(2);

    const done = await agent.visit(`${server.url}/account/sessions/sign-out`, { form: { _csrf: csrfOf(page), session: appSession.uid } });
    expect(done.html).toContain('The session was signed out.');
    expect(sessionRows(done.html)).toHaveLength(1);
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect(await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'user.sign_out_session' })).toHaveLength(1);
    // Signing a session out is not revoking the app: the user's consent stays.
    expect(await server.latchkey.queries.consents.listFor(user.id)).toHaveLength(1);
  });

  test('sign out from a console page ends this browser\'s session; without the form token it does not', async () => {
    const user = await aUser(server.latchkey, { roles: ['auditor'] });
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/admin/users');
    expect(page.html).toContain('action="/account/sign-out"');
    const forged = await agent.visit(`${server.url}/account/sign-out`, { form: { logout: 'yes' } });
    expect(forged.status).toBe(403);
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(1);

    const out = await agent.submit(page, '/account/sign-out');
    expect(out.url).toBe(`${server.url}/account/signed-out`);
    expect(out.html).toContain('You are signed out');
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(0);
    expect((await agent.visit(`${server.url}/admin/users`)).html).toContain('name="password"');
    expect(await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'user.sign_out' })).toEqual([expect.objectContaining({ actor_id: user.id })]);
  });

  test('an admin signs a user out everywhere: sessions end and refresh tokens stop working', async () => {
    const { user, config, tokens } = await aConnectedApp();
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { agent, page } = await consoleSignIn(server.url, admin.email, admin.password, `/admin/users/${user.id}`);
    const done = await agent.submit(page, `/admin/users/${user.id}/sessions`);
    expect(done.status).toBe(200);
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(0);
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect(await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'user.revoke_sessions' })).toHaveLength(1);
  });

  test('a sign-in finished but not yet resumed makes no session once the user is signed out everywhere', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config, { scope: 'openid' });
    // The password is right and the sign-in is done; the browser holds the way back to the provider, unfollowed.
    const done = await login.agent.request(login.page.url.replace(/\/?$/, '/login'), { form: { _csrf: csrfOf(login.page), email: user.email, password: user.password } });
    expect(done.status).toBe(303);
    const resume = new URL(done.headers.get('location')!, login.page.url).toString();
    await signOutEverywhere({ queries: server.latchkey.queries }, user.id);
    const after = await login.agent.visit(resume);
    expect(after.url).not.toContain('code=');
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(0);
  });

  test('changing one\'s own password ends every other session and its tokens; this one goes on', async () => {
    const { user, config, tokens } = await aConnectedApp();
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    const changed = await agent.submit(page, '/account/password', { current_password: user.password, new_password: 'a brand new passphrase', new_password_again: 'a brand new passphrase' });
    expect(changed.url).toContain('notice=password_changed');
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(1);
    expect((await agent.visit(`${server.url}/account/sessions`)).url).toBe(`${server.url}/account/sessions`);
  });
});
