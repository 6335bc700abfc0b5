import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { BrowserAgent } from '../helpers/browser-agent.js';
import { aClient, APP_ORIGIN, aUser, CALLBACK } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

async function loginPage() {
  const client = await aClient(server.latchkey);
  const config = await relyingParty(server.url, client.clientId, client.clientSecret);
  return { ...(await startLogin(config)), config, client };
}

describe('bad input gets a clear answer, never a 500', () => {
  test('an unknown client is refused on the authorization endpoint with an error page', async () => {
    const agent = new BrowserAgent(APP_ORIGIN);
    const page = await agent.visit(`${server.url}/auth?client_id=nobody&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(CALLBACK)}`);
    expect(page.status).toBe(400);
    expect(page.html).toContain('invalid_client');
  });

  test('a redirect_uri that is not registered exactly is refused, and nothing is sent to it', async () => {
    const client = await aClient(server.latchkey);
    const agent = new BrowserAgent(APP_ORIGIN);
    for (const uri of [`${CALLBACK}/extra`, `${CALLBACK}?x=1`, CALLBACK.replace('127.0.0.1', 'localhost')]) {
      const page = await agent.visit(`${server.url}/auth?client_id=${client.clientId}&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(uri)}`);
      expect(page.status).toBe(400);
      expect(page.html).toContain('redirect_uri');
    }
  });

  test('a replayed authorization code is refused and revokes the tokens it gave', async () => {
    const user = await aUser(server.latchkey);
    const login = await loginPage();
    const callback = await signInWithPassword(login, user.email, user.password);
    const tokens = await completeLogin(login.config, login, callback.url);
    await expect(completeLogin(login.config, login, callback.url)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect(await oidc.tokenIntrospection(login.config, tokens.access_token)).toMatchObject({ active: false });
    await expect(oidc.refreshTokenGrant(login.config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('malformed JSON and forms to the token endpoint are OAuth errors', async () => {
    const client = await aClient(server.latchkey);
    const basic = `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`;
    for (const [type, body] of [
      ['application/json', '{"grant_type":'],
      ['application/x-www-form-urlencoded', 'grant_type=authorization_code&code=%E0%A4%A'],
      ['text/plain', 'hello'],
    ] as const) {
      const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': type, authorization: basic }, body });
      expect(response.status).toBe(400);
      expect(await response.json()).toHaveProperty('error');
    }
  });

  test('malformed, incomplete, oversized and forged login forms are answered with 4xx', async () => {
    const login = await loginPage();
    const action = `${server.url}/interaction/${/\/interaction\/([^/]+)\/login/.exec(login.page.html)![1]}/login`;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(login.page.html)![1]!;

    const missing = await login.agent.request(action, { form: { _csrf: csrf, email: 'x@example.test' } });
    expect(missing.status).toBe(400);
    expect(await missing.text()).toContain('Enter your email and password.');

    const forged = await login.agent.request(action, { form: { _csrf: 'forged', email: 'x@example.test', password: 'p' } });
    expect(forged.status).toBe(403);

    const brokenJson = await login.agent.request(action, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' } });
    expect(brokenJson.status).toBe(403);

    const garbage = await fetch(action, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', cookie: 'x=y' }, body: '{"email":' });
    expect(garbage.status).toBe(400);
    expect(await garbage.json()).toMatchObject({ code: 'malformed_body' });

    const huge = await login.agent.request(action, { form: { _csrf: csrf, email: 'x@example.test', password: 'p'.repeat(64 * 1024) } });
    expect(huge.status).toBe(413);

    const typed = await login.agent.request(action, { form: { _csrf: csrf, email: 'a'.repeat(400), password: 'x' } });
    expect(typed.status).toBe(400);
  });

  test('HTML sent as input comes back escaped', async () => {
    const login = await loginPage();
    const evil = '"><script>alert(1)</script>@example.test';
    const page = await login.agent.submit(login.page, '/login', { email: evil, password: 'wrong-password' });
    expect(page.status).toBe(401);
    expect(page.html).not.toContain('<script>alert(1)</script>');
    expect(page.html).toContain('&lt;script&gt;');
  });

  test('an expired or unknown interaction shows a clear error page', async () => {
    const agent = new BrowserAgent(APP_ORIGIN);
    const page = await agent.visit(`${server.url}/interaction/not-a-real-one`);
    expect(page.status).toBe(400);
    expect(page.html).toContain('Your sign-in has expired');
  });

  test('pages carry security headers and are never cached', async () => {
    const login = await loginPage();
    expect(login.page.headers.get('cache-control')).toBe('no-store');
    expect(login.page.headers.get('x-frame-options')).toBe('DENY');
    expect(login.page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(login.page.headers.get('x-content-type-options')).toBe('nosniff');
  });
});
