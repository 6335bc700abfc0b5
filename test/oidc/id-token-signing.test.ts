import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { SIGNING_ALGORITHMS } from '../../src/oidc/keys.js';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aClient, aUser } from '../helpers/factories.js';
import { signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

describe('ID token signing per client', () => {
  test('discovery and the JWKS offer every algorithm, one key each', async () => {
    const discovery = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Record<string, string[]>;
    expect([...discovery.id_token_signing_alg_values_supported!].sort()).toEqual([...SIGNING_ALGORITHMS].sort());
    const { keys } = (await (await fetch(`${server.url}/jwks`)).json()) as { keys: Array<{ alg: string; kty: string; crv?: string }> };
    expect(keys.map((k) => [k.alg, k.kty, k.crv])).toEqual(
      expect.arrayContaining([['RS256', 'RSA', undefined], ['ES256', 'EC', 'P-256'], ['EdDSA', 'OKP', 'Ed25519']]),
    );
  });

  test.each(SIGNING_ALGORITHMS)('a client registered for %s gets ID tokens openid-client verifies against the JWKS', async (alg) => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { id_token_signed_response_alg: alg });
    const config = await oidc.discovery(new URL(server.url), client.clientId, { client_secret: client.clientSecret, id_token_signed_response_alg: alg }, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    // openid-client then checks each ID token's signature with the issuer's published keys, not only the TLS channel.
    oidc.enableNonRepudiationChecks(config);
    const login = await startLogin(config);
    const page = await signInWithPassword(login, user.email, user.password);
    const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: login.verifier, expectedNonce: login.nonce, expectedState: login.state, idTokenExpected: true });
    expect(decodeProtectedHeader(tokens.id_token!).alg).toBe(alg);
    expect(tokens.claims()!.sub).toBe(user.id);
    const verified = await jwtVerify(tokens.id_token!, createRemoteJWKSet(new URL(`${server.url}/jwks`)), { issuer: server.url, audience: client.clientId, algorithms: [alg] });
    expect(verified.payload.sub).toBe(user.id);
  });

  test('RS256 is the default; an unknown or symmetric algorithm is refused naming the field', async () => {
    const { token } = await anAdmin(server.latchkey, server.url, ['super_admin']);
    const api = apiClient(server.url);
    const created = await api('POST', '/api/admin/clients', token, { client_name: 'Default', redirect_uris: ['https://app.example.test/cb'] });
    expect((created.json.client as Record<string, unknown>).id_token_signed_response_alg).toBe('RS256');
    for (const alg of ['HS256', 'none', 'PS256', 'es256']) {
      const refused = await api('POST', '/api/admin/clients', token, { client_name: 'Bad', redirect_uris: ['https://app.example.test/cb'], id_token_signed_response_alg: alg });
      expect([alg, refused.status, refused.json.field]).toEqual([alg, 400, 'id_token_signed_response_alg']);
    }
    const clientId = (created.json.client as { client_id: string }).client_id;
    const edited = await api('PATCH', `/api/admin/clients/${clientId}`, token, { id_token_signed_response_alg: 'EdDSA' });
    expect(edited.json.id_token_signed_response_alg).toBe('EdDSA');
  });
});
