import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { aClient, AFTER_LOGOUT, aUser, CALLBACK } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

describe('authorization code + PKCE with openid-client as the app', () => {
  test('signs in through the login page, then userinfo, refresh, introspection, revocation and logout', async () => {
    const user = await aUser(server.latchkey, { name: 'Ada Lovelace' });
    const client = await aClient(server.latchkey, { id_token_signed_response_alg: 'ES256' });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);

    const login = await startLogin(config);
    expect(login.page.html).toContain('name="password"');
    const callback = await signInWithPassword(login, user.email, user.password);
    expect(callback.url.startsWith(CALLBACK)).toBe(true);

    const tokens = await completeLogin(config, login, callback.url);
    const claims = tokens.claims()!;
    expect(claims.sub).toBe(user.id);
    expect(claims.aud).toBe(client.clientId);
    expect(claims.nonce).toBe(login.nonce);
    expect(claims.amr).toEqual(['pwd']);

    // openid-client trusts the TLS channel for the ID token; check the signature against the published JWKS too.
    const jwks = createRemoteJWKSet(new URL(`${server.url}/jwks`));
    const verified = await jwtVerify(tokens.id_token!, jwks, { issuer: server.url, audience: client.clientId, algorithms: ['ES256'] });
    expect(verified.payload.sub).toBe(user.id);

    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, user.id);
    expect(userinfo).toMatchObject({ sub: user.id, email: user.email, name: 'Ada Lovelace', email_verified: false });

    const introspected = await oidc.tokenIntrospection(config, tokens.access_token);
    expect(introspected).toMatchObject({ active: true, sub: user.id, client_id: client.clientId });

    expect(tokens.refresh_token).toBeDefined();
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    // Rotation: the old refresh token is spent, and presenting it again is treated as theft.
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

    const fresh = await oidc.refreshTokenGrant(config, refreshed.refresh_token!).catch((e: unknown) => e);
    expect(fresh).toMatchObject({ error: 'invalid_grant' });

    const second = await startLogin(config, {}, login.agent);
    // The browser still has its session: only consent is asked (prompt=consent), no password.
    expect(second.page.html).not.toContain('name="password"');
    const again = await completeLogin(config, second, (await second.agent.submit(second.page, '/confirm')).url);

    await oidc.tokenRevocation(config, again.access_token);
    expect(await oidc.tokenIntrospection(config, again.access_token)).toMatchObject({ active: false });

    const logoutUrl = oidc.buildEndSessionUrl(config, { id_token_hint: again.id_token!, post_logout_redirect_uri: AFTER_LOGOUT, state: 'bye' });
    const confirmPage = await login.agent.visit(logoutUrl.toString());
    expect(confirmPage.html).toContain('op.logoutForm');
    const form = /<form[^>]*id="op.logoutForm"[^>]*action="([^"]+)"[\s\S]*?name="xsrf" value="([^"]+)"/.exec(confirmPage.html)!;
    const done = await login.agent.visit(new URL(form[1]!, server.url).toString(), { form: { xsrf: form[2]!, logout: 'yes' } });
    expect(done.url).toBe(`${AFTER_LOGOUT}?state=bye`);

    // Signed out: a new authorization request asks for the password again.
    const afterLogout = await startLogin(config, {}, login.agent);
    expect(afterLogout.page.html).toContain('name="password"');
  });

  test('a first-party app is not asked for consent; a third-party app is, with the scopes it asked for', async () => {
    const user = await aUser(server.latchkey);
    const firstParty = await aClient(server.latchkey, { first_party: true });
    const trusted = await relyingParty(server.url, firstParty.clientId, firstParty.clientSecret);
    const login = await startLogin(trusted, { prompt: '', scope: 'openid email' });
    const afterPassword = await login.agent.submit(login.page, '/login', { email: user.email, password: user.password });
    expect(afterPassword.url.startsWith(CALLBACK)).toBe(true);
    const tokens = await completeLogin(trusted, login, afterPassword.url);
    expect(tokens.claims()!.sub).toBe(user.id);
    expect(tokens.scope?.split(' ').sort()).toEqual(['email', 'openid']);
    expect(await oidc.fetchUserInfo(trusted, tokens.access_token, user.id)).toMatchObject({ email: user.email });

    const thirdParty = await aClient(server.latchkey);
    const other = await relyingParty(server.url, thirdParty.clientId, thirdParty.clientSecret);
    const asked = await startLogin(other, { prompt: '', scope: 'openid email' });
    const consentPage = await asked.agent.submit(asked.page, '/login', { email: user.email, password: user.password });
    expect(consentPage.url).toContain('/interaction/');
    expect(consentPage.html).toContain('/confirm"');
  });

  test('a public client must use PKCE and gets tokens with it', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { token_endpoint_auth_method: 'none' });
    const config = await relyingParty(server.url, client.clientId);

    const withoutPkce = await startLogin(config, { code_challenge: '', code_challenge_method: '' });
    expect(withoutPkce.page.url).toContain('error=invalid_request');
    expect(decodeURIComponent(withoutPkce.page.url)).toContain('PKCE');

    const login = await startLogin(config);
    const callback = await signInWithPassword(login, user.email, user.password);
    const tokens = await completeLogin(config, login, callback.url);
    expect(tokens.claims()!.sub).toBe(user.id);
  });

  test('client credentials give a machine client an access token, and no refresh token', async () => {
    const client = await aClient(server.latchkey, { grant_types: ['client_credentials'], redirect_uris: [] });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const tokens = await oidc.clientCredentialsGrant(config);
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.refresh_token).toBeUndefined();
    expect(await oidc.tokenIntrospection(config, tokens.access_token)).toMatchObject({ active: true, client_id: client.clientId });

    const wrongSecret = await relyingParty(server.url, client.clientId, 'not-the-secret');
    await expect(oidc.clientCredentialsGrant(wrongSecret)).rejects.toMatchObject({ error: 'invalid_client' });
  });

  test('the sign-in pages speak Korean when the app asks for it', async () => {
    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config, { ui_locales: 'ko-KR en' });
    expect(login.page.html).toContain('<html lang="ko">');
    expect(login.page.html).toContain('비밀번호');
  });
});
