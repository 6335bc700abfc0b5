import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import * as oidc from 'openid-client';
import { ACR } from '../../src/mfa/policy.js';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aClient, aUser } from '../helpers/factories.js';
import { queriesDuring } from '../helpers/queries.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const API = 'https://api.example.test/orders';

let server: TestServer;
let api: ReturnType<typeof apiClient>;
let adminToken: string;
let machine: Awaited<ReturnType<typeof aClient>>;

beforeAll(async () => {
  server = await startTestServer();
  api = apiClient(server.url);
  adminToken = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
  machine = await aClient(server.latchkey, { grant_types: ['client_credentials'], redirect_uris: [] });
  const registered = await api('POST', '/api/admin/resources', adminToken, {
    identifier: API,
    name: 'Orders',
    scopes: ['orders:read', 'orders:write'],
    access_token_ttl: 900,
    machine_clients: [machine.clientId],
  });
  expect(registered.status).toBe(201);
});
afterAll(() => server.close());

/** What an API does with a bearer token: verify it against the issuer's published keys, no call to the issuer. */
async function verifyAsApi(token: string, audience = API) {
  const jwks = createRemoteJWKSet(new URL(`${server.url}/jwks`));
  return jwtVerify(token, jwks, { issuer: server.url, audience, typ: 'at+jwt', requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'] });
}

const machineConfig = () => relyingParty(server.url, machine.clientId, machine.clientSecret);

describe('registering an API', () => {
  test('bad input is a 400 naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ identifier: 'orders', name: 'x' }, 'identifier'],
      [{ identifier: 'https://api.example.test/#frag', name: 'x' }, 'identifier'],
      [{ identifier: 'https://api.example.test/?a=1', name: 'x' }, 'identifier'],
      [{ identifier: 'https://x.example.test', name: '' }, 'name'],
      [{ identifier: 'https://x.example.test', name: 'x', scopes: ['openid'] }, 'scopes'],
      [{ identifier: 'https://x.example.test', name: 'x', scopes: ['has space'] }, 'scopes'],
      [{ identifier: 'https://x.example.test', name: 'x', scopes: ['a', 'a'] }, 'scopes'],
      [{ identifier: 'https://x.example.test', name: 'x', access_token_ttl: 10 }, 'access_token_ttl'],
      [{ identifier: 'https://x.example.test', name: 'x', access_token_ttl: 10 * 24 * 3600 }, 'access_token_ttl'],
      [{ identifier: 'https://x.example.test', name: 'x', signing_alg: 'HS256' }, 'signing_alg'],
      [{ identifier: 'https://x.example.test', name: 'x', signing_alg: 'none' }, 'signing_alg'],
      [{ identifier: 'https://x.example.test', name: 'x', token_format: 'paseto' }, 'token_format'],
      [{ identifier: 'https://x.example.test', name: 'x', machine_clients: ['no-such-client'] }, 'machine_clients'],
      [{ identifier: 'https://x.example.test', name: 'x', surprise: true }, ''],
    ];
    for (const [body, field] of cases) {
      const response = await api('POST', '/api/admin/resources', adminToken, body);
      expect([JSON.stringify(body), response.status]).toEqual([JSON.stringify(body), 400]);
      if (field) expect(JSON.stringify(response.json)).toContain(field);
    }
    expect((await api('GET', `/api/admin/resources/${encodeURIComponent('https://x.example.test')}`, adminToken)).status).toBe(404);
  });

  test('an identifier is registered once, also under concurrent requests', async () => {
    const body = { identifier: 'https://race.example.test', name: 'Race' };
    const statuses = (await Promise.all(Array.from({ length: 10 }, () => api('POST', '/api/admin/resources', adminToken, body)))).map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(9);
  });

  test('is read, edited and deleted through the API, and audited', async () => {
    const path = `/api/admin/resources/${encodeURIComponent('https://race.example.test')}`;
    expect((await api('GET', path, adminToken)).json).toMatchObject({ identifier: 'https://race.example.test', scopes: [], access_token_ttl: 3600, signing_alg: 'RS256', token_format: 'jwt' });
    expect((await api('PATCH', path, adminToken, { identifier: 'https://other.example.test' })).status).toBe(400);
    expect((await api('PATCH', path, adminToken, { scopes: ['a'], signing_alg: 'ES256' })).json).toMatchObject({ scopes: ['a'], signing_alg: 'ES256' });
    const list = await api('GET', '/api/admin/resources', adminToken);
    expect((list.json.resources as Array<{ identifier: string }>).map((r) => r.identifier)).toEqual(expect.arrayContaining([API, 'https://race.example.test']));
    expect((await api('DELETE', path, adminToken)).status).toBe(204);
    expect((await api('GET', path, adminToken)).status).toBe(404);
    const actions = (await server.database.db('audit_events').where('action', 'like', 'resource.%')).map((row: { action: string }) => row.action);
    expect(actions).toEqual(expect.arrayContaining(['resource.register', 'resource.edit', 'resource.delete']));
  });

  test('an auditor may read but not register', async () => {
    const auditor = (await anAdmin(server.latchkey, server.url, ['auditor'])).token;
    expect((await api('GET', '/api/admin/resources', auditor)).status).toBe(200);
    expect((await api('POST', '/api/admin/resources', auditor, { identifier: 'https://y.example.test', name: 'y' })).status).toBe(403);
  });
});

describe('client credentials for an API', () => {
  test('give a JWT access token (RFC 9068) the API verifies against our JWKS alone', async () => {
    const tokens = await oidc.clientCredentialsGrant(await machineConfig(), { resource: API, scope: 'orders:read openid unknown' });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.expires_in).toBe(900);
    const { payload, protectedHeader } = await verifyAsApi(tokens.access_token);
    expect(protectedHeader).toMatchObject({ typ: 'at+jwt', alg: 'RS256' });
    expect(payload).toMatchObject({ iss: server.url, aud: API, sub: machine.clientId, client_id: machine.clientId, scope: 'orders:read' });
    expect(payload.exp! - payload.iat!).toBe(900);
    // Another API does not accept it.
    await expect(verifyAsApi(tokens.access_token, 'https://api.example.test/billing')).rejects.toThrow();
  });

  test('cost no database round trip, so nothing is written', async () => {
    const config = await machineConfig();
    await oidc.clientCredentialsGrant(config, { resource: API, scope: 'orders:read' });
    const seen = await queriesDuring(server.database.db, () => oidc.clientCredentialsGrant(config, { resource: API, scope: 'orders:read' }));
    expect(seen.filter((sql) => /^\s*(insert|update|delete)/i.test(sql))).toEqual([]);
    expect(seen).toEqual([]);
  });

  test('an unknown, malformed or second resource is invalid_target', async () => {
    const config = await machineConfig();
    for (const resource of ['https://api.example.test/unknown', 'not a uri', `${API}#x`]) {
      await expect(oidc.clientCredentialsGrant(config, { resource })).rejects.toMatchObject({ error: 'invalid_target' });
    }
    const body = new URLSearchParams([['grant_type', 'client_credentials'], ['resource', API], ['resource', 'https://api.example.test/other']]);
    const response = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${machine.clientId}:${machine.clientSecret}`).toString('base64')}` },
      body,
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/invalid_target|invalid_request/);
  });

  test('a machine client the API does not list gets invalid_target, and one removed from the list stops getting tokens', async () => {
    const stranger = await aClient(server.latchkey, { grant_types: ['client_credentials'], redirect_uris: [] });
    const config = await relyingParty(server.url, stranger.clientId, stranger.clientSecret);
    await expect(oidc.clientCredentialsGrant(config, { resource: API })).rejects.toMatchObject({ error: 'invalid_target' });
    const path = `/api/admin/resources/${encodeURIComponent(API)}`;
    await api('PATCH', path, adminToken, { machine_clients: [machine.clientId, stranger.clientId] });
    await oidc.clientCredentialsGrant(config, { resource: API });
    await api('PATCH', path, adminToken, { machine_clients: [machine.clientId] });
    await expect(oidc.clientCredentialsGrant(config, { resource: API })).rejects.toMatchObject({ error: 'invalid_target' });
  });

  test('a deleted client leaves the list: a new client given its id inherits nothing', async () => {
    const gone = await aClient(server.latchkey, { client_id: 'reused-id', grant_types: ['client_credentials'], redirect_uris: [] });
    const path = `/api/admin/resources/${encodeURIComponent(API)}`;
    await api('PATCH', path, adminToken, { machine_clients: [machine.clientId, gone.clientId] });
    await server.latchkey.clients.remove(gone.clientId);
    expect((await api('GET', path, adminToken)).json.machine_clients).toEqual([machine.clientId]);
    const reborn = await aClient(server.latchkey, { client_id: 'reused-id', grant_types: ['client_credentials'], redirect_uris: [] });
    const config = await relyingParty(server.url, reborn.clientId, reborn.clientSecret);
    await expect(oidc.clientCredentialsGrant(config, { resource: API })).rejects.toMatchObject({ error: 'invalid_target' });
  });

  test('ES256 when the API asks for it; opaque tokens, stored and revocable, when it wants those', async () => {
    const es = 'https://es.example.test';
    const opaque = 'https://opaque.example.test';
    await api('POST', '/api/admin/resources', adminToken, { identifier: es, name: 'ES', scopes: ['x'], signing_alg: 'ES256', machine_clients: [machine.clientId] });
    await api('POST', '/api/admin/resources', adminToken, { identifier: opaque, name: 'Opaque', scopes: ['x'], token_format: 'opaque', machine_clients: [machine.clientId] });
    const config = await machineConfig();
    const signed = await oidc.clientCredentialsGrant(config, { resource: es, scope: 'x' });
    expect(decodeProtectedHeader(signed.access_token).alg).toBe('ES256');
    expect((await verifyAsApi(signed.access_token, es)).payload.scope).toBe('x');

    const stored = await oidc.clientCredentialsGrant(config, { resource: opaque, scope: 'x' });
    expect(stored.access_token.split('.')).toHaveLength(1);
    expect(await oidc.tokenIntrospection(config, stored.access_token)).toMatchObject({ active: true, aud: opaque, scope: 'x' });
    await oidc.tokenRevocation(config, stored.access_token);
    expect(await oidc.tokenIntrospection(config, stored.access_token)).toMatchObject({ active: false });
  });

  test('without a resource the token stays opaque', async () => {
    const tokens = await oidc.clientCredentialsGrant(await machineConfig(), {});
    expect(tokens.access_token.split('.')).toHaveLength(1);
  });
});

describe('a user signing in to an app that calls an API', () => {
  async function signIn(clientOverrides: Parameters<typeof aClient>[1]) {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, clientOverrides);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config, { resource: API, scope: 'openid email orders:read offline_access' });
    const page = await signInWithPassword(login, user.email, user.password);
    const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: login.verifier, expectedNonce: login.nonce, expectedState: login.state, idTokenExpected: true }, { resource: API });
    return { user, client, config, tokens };
  }

  const expectUserToken = (payload: JWTPayload, user: { id: string }, clientId: string) =>
    expect(payload).toMatchObject({ iss: server.url, aud: API, sub: user.id, client_id: clientId, scope: 'orders:read', acr: ACR.password, amr: ['pwd'] });

  test('gets a JWT for the API with the sign-in’s acr and amr (first-party app: no consent)', async () => {
    const { user, client, tokens, config } = await signIn({ first_party: true });
    const { payload } = await verifyAsApi(tokens.access_token);
    expectUserToken(payload, user, client.clientId);
    expect(typeof payload.auth_time).toBe('number');
    // The refresh token keeps the resource: a refreshed token for it is a JWT of the same sign-in.
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: API });
    expectUserToken((await verifyAsApi(refreshed.access_token)).payload, user, client.clientId);
  });

  test('a third-party app gets it once the user consented to the API scope, shown on the consent page', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config, { resource: API, scope: 'openid orders:read' });
    const consent = await login.agent.submit(login.page, '/login', { email: user.email, password: user.password });
    expect(consent.html).toContain('orders:read');
    expect(consent.html).toContain(API);
    const page = await login.agent.submit(consent, '/confirm');
    const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: login.verifier, expectedNonce: login.nonce, expectedState: login.state }, { resource: API });
    expectUserToken((await verifyAsApi(tokens.access_token)).payload, user, client.clientId);
  });

  test('a token request for a resource the user was not asked about is invalid_target', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { first_party: true });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config, { prompt: '' });
    const page = await signInWithPassword(login, user.email, user.password);
    await expect(
      oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: login.verifier, expectedNonce: login.nonce, expectedState: login.state }, { resource: API }),
    ).rejects.toMatchObject({ error: 'invalid_target' });
  });

  test('without a resource at the token endpoint, the access token stays opaque and serves userinfo', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { first_party: true });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config, { resource: API, scope: 'openid email orders:read', prompt: '' });
    const page = await signInWithPassword(login, user.email, user.password);
    const tokens = await completeLogin(config, login, page.url);
    expect(tokens.access_token.split('.')).toHaveLength(1);
    expect(await oidc.fetchUserInfo(config, tokens.access_token, user.id)).toMatchObject({ sub: user.id, email: user.email });
  });
});
