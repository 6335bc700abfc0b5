import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Middleware } from 'koa';
import * as oidc from 'openid-client';
import { aClient } from './helpers/factories.js';
import { relyingParty } from './helpers/relying-party.js';
import { startTestServer, type TestServer } from './helpers/server.js';

/**
 * The lean path: the endpoints machines call (token, introspection, revocation, JWKS, discovery, userinfo) must not
 * pass through what serves pages (body parsers, CSRF, page routers, console sessions). Each app-level middleware
 * is wrapped with a counter, so the test sees exactly which layers a request went through.
 */
let server: TestServer;
let counted: http.Server;
let base: string;
let calls: number[];
let names: string[];

beforeAll(async () => {
  server = await startTestServer();
  const { app } = server.latchkey;
  calls = app.middleware.map(() => 0);
  names = app.middleware.map((mw, i) => `${i}:${mw.name || 'anonymous'}`);
  app.middleware = app.middleware.map((mw, i) => ((ctx, next) => {
    calls[i]! += 1;
    return mw(ctx, next);
  }) as Middleware);
  counted = http.createServer(app.callback());
  await new Promise<void>((resolve) => counted.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(counted.address() as AddressInfo).port}`;
});
afterAll(async () => {
  counted.closeAllConnections();
  await new Promise((resolve) => counted.close(resolve));
  await server.close();
});

/** The layers one request went through, by index and name. */
async function layersOf(request: () => Promise<unknown>) {
  calls.fill(0);
  await request();
  return calls.flatMap((n, i) => (n > 0 ? [names[i]!] : []));
}

describe('the lean path to the provider', () => {
  test('machine endpoints go through at most the request log, metrics, error handler, security headers and the provider', async () => {
    const client = await aClient(server.latchkey, { grant_types: ['client_credentials'], redirect_uris: [] });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const basic = `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`;
    const form = (body: Record<string, string>) => ({ method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
    const { access_token: token } = await oidc.clientCredentialsGrant(config, {});

    const requests: Record<string, () => Promise<Response>> = {
      discovery: () => fetch(`${base}/.well-known/openid-configuration`),
      jwks: () => fetch(`${base}/jwks`),
      token: () => fetch(`${base}/token`, form({ grant_type: 'client_credentials' })),
      introspection: () => fetch(`${base}/token/introspection`, form({ token })),
      revocation: () => fetch(`${base}/token/revocation`, form({ token })),
      userinfo: () => fetch(`${base}/me`, { headers: { authorization: `Bearer ${token}` } }),
    };
    const page = await layersOf(() => fetch(`${base}/account`));
    const report: Record<string, string[]> = {};
    for (const [name, request] of Object.entries(requests)) report[name] = await layersOf(request);
    const lean = report.token!;
    expect(lean.length).toBeLessThanOrEqual(5);
    // Every machine endpoint takes the same few layers; a page takes more (the counting itself works).
    for (const layers of Object.values(report)) expect(layers).toEqual(lean);
    expect(page.length).toBeGreaterThan(lean.length);
  });

  test('discovery names only endpoints on the lean path, besides the authorization and logout pages', async () => {
    const discovery = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    const endpoints = Object.entries(discovery).filter(([key]) => key.endsWith('_endpoint') || key === 'jwks_uri');
    const pages = ['authorization_endpoint', 'end_session_endpoint'];
    const machine = endpoints.filter(([key]) => !pages.includes(key)).map(([, url]) => new URL(String(url)).pathname);
    const layers = await Promise.all(machine.map((path) => layersOf(() => fetch(`${base}${path}`))));
    const fewest = Math.min(...layers.map((l) => l.length));
    expect(layers.map((l, i) => [machine[i], l.length])).toEqual(machine.map((path) => [path, fewest]));
  });
});
