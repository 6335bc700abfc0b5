import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DEMO_CLIENT_ID, startDemoApp } from '../../src/demo/demo-app.js';
import { ACR } from '../../src/mfa/policy.js';
import { BrowserAgent, type Page } from '../helpers/browser-agent.js';
import { aUser } from '../helpers/factories.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

const secretOf = (page: Page) => /id="totp-secret">([A-Z2-7 ]+)</.exec(page.html)![1]!.replace(/ /g, '');

describe('latchkey demo', () => {
  test('a newcomer signs in with password and a new authenticator and sees the ID token: sub, amr, acr', async () => {
    const user = await aUser(server.latchkey);
    const demo = await startDemoApp({ issuer: server.url, clients: server.latchkey.clients, requireMfa: true });
    try {
      expect(demo.authorizationUrl).toMatch(new RegExp(`^${server.url}/auth\\?client_id=${DEMO_CLIENT_ID}&response_type=code&redirect_uri=http%3A%2F%2F127\\.0\\.0\\.1%3A\\d+%2Fcallback&.*code_challenge_method=S256`));
      // A browser that never stops early: it follows the redirect back into the demo app and shows its page.
      const browser = new BrowserAgent('never:');
      const login = await browser.visit(demo.startUrl);
      expect(login.url.startsWith(`${server.url}/interaction/`)).toBe(true);
      // Someone else's return to the demo does not end the run.
      expect((await fetch(`${demo.startUrl}callback?code=x&state=forged`)).status).toBe(400);

      const enrol = await browser.submit(login, '/login', { email: user.email, password: user.password });
      const codes = await browser.submit(enrol, '/enrol', { code: referenceTotp(secretOf(enrol), new Date()) });
      const shown = await browser.submit(codes, '/continue');
      expect(shown.url.startsWith(`${demo.startUrl}callback?`)).toBe(true);
      expect(shown.html).toContain('Latchkey signed you in');
      expect(shown.html).toContain(user.id);
      expect(shown.html).toContain(ACR.mfa);

      const claims = await demo.claims;
      expect(claims).toMatchObject({ sub: user.id, acr: ACR.mfa, aud: DEMO_CLIENT_ID, iss: server.url });
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
      // The code is good once, and the run is over.
      expect((await fetch(shown.url)).status).toBe(410);
    } finally {
      await demo.close();
    }
    // The client goes with the run: nobody can later listen on its loopback port and collect codes.
    expect(await server.latchkey.queries.clients.find(DEMO_CLIENT_ID)).toBeUndefined();
  });

  test("a run killed before its end leaves a client the next run points at its own port; --password-only asks for the password alone", async () => {
    const user = await aUser(server.latchkey);
    await server.latchkey.clients.register({ client_name: 'Latchkey demo', client_id: DEMO_CLIENT_ID, token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], redirect_uris: ['http://127.0.0.1:9/callback'] });
    const demo = await startDemoApp({ issuer: server.url, clients: server.latchkey.clients, requireMfa: false });
    try {
      expect((await server.latchkey.queries.clients.find(DEMO_CLIENT_ID))!.metadata.redirect_uris).toEqual([`${demo.startUrl}callback`]);
      const browser = new BrowserAgent('never:');
      const login = await browser.visit(demo.startUrl);
      const shown = await browser.submit(login, '/login', { email: user.email, password: user.password });
      expect(shown.html).toContain(ACR.password);
      expect(await demo.claims).toMatchObject({ sub: user.id, amr: ['pwd'] });
    } finally {
      await demo.close();
    }
  });

  test('says so when Latchkey is not running, or is reached at another URL than its issuer', async () => {
    await expect(startDemoApp({ issuer: 'http://127.0.0.1:9', clients: server.latchkey.clients, requireMfa: true })).rejects.toThrow('start it first (npm start)');
    // A discovery document that names another issuer (a proxy in between, a wrong LATCHKEY_ISSUER) is not trusted.
    const impostor = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: server.url, authorization_endpoint: `${server.url}/auth`, token_endpoint: `${server.url}/token`, jwks_uri: `${server.url}/jwks` })));
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const elsewhere = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
      await expect(startDemoApp({ issuer: elsewhere, clients: server.latchkey.clients, requireMfa: true })).rejects.toThrow(`calls itself ${server.url}`);
    } finally {
      impostor.close();
    }
  });
});
