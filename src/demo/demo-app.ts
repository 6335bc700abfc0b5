import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import { z } from 'zod';
import type { ClientStore } from '../oidc/clients.js';

/**
 * `latchkey demo`: the smallest relying party, so a newcomer sees a whole sign-in (password, second factor, ID
 * token) without writing an app. It does what any app does, with plain fetch and jose (both at hand in production):
 * authorization code + PKCE as a public client on a loopback redirect URI (RFC 8252), then the ID token verified
 * against the provider's published keys, its nonce checked, and its claims shown.
 */

export const DEMO_CLIENT_ID = 'latchkey-demo';

const discoverySchema = z.object({ issuer: z.string(), authorization_endpoint: z.url(), token_endpoint: z.url(), jwks_uri: z.url() });
const tokenSchema = z.object({ id_token: z.string() });

export class DemoError extends Error {}

export interface DemoApp {
  /** Open this in a browser: it sends the browser on to the authorization URL. */
  startUrl: string;
  authorizationUrl: string;
  /** The verified ID token's claims, once the browser came back with a code. */
  claims: Promise<JWTPayload>;
  close(): Promise<void>;
}

const base64url = (bytes: Buffer) => bytes.toString('base64url');
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The demo client, registered (or pointed at this run's port) as a first-party public app. */
async function registerDemoClient(clients: ClientStore, redirectUri: string, requireMfa: boolean) {
  const settings = { redirect_uris: [redirectUri], require_mfa: requireMfa, first_party: true };
  if (await clients.edit(DEMO_CLIENT_ID, settings)) return;
  await clients.register({ client_name: 'Latchkey demo', client_id: DEMO_CLIENT_ID, token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], ...settings });
}

async function discover(issuer: string) {
  let response: Response;
  try {
    response = await fetch(`${issuer}/.well-known/openid-configuration`);
  } catch {
    throw new DemoError(`Latchkey is not answering at ${issuer}: start it first (npm start), then run the demo again.`);
  }
  if (!response.ok) throw new DemoError(`${issuer} is not a Latchkey issuer (discovery answered ${response.status})`);
  const provider = discoverySchema.parse(await response.json());
  // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was fetched from.
  if (provider.issuer !== issuer) throw new DemoError(`${issuer} calls itself ${provider.issuer}: set LATCHKEY_ISSUER to the URL it is reached at`);
  return provider;
}

function page(title: string, body: string) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:1rem;overflow:auto}</style></head>
<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

export async function startDemoApp(options: { issuer: string; clients: ClientStore; requireMfa: boolean }): Promise<DemoApp> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const redirectUri = `${origin}/callback`;

  let provider: z.output<typeof discoverySchema>;
  try {
    provider = await discover(options.issuer);
    // Left by a run that was killed: pointed at this run's port.
    await registerDemoClient(options.clients, redirectUri, options.requireMfa);
  } catch (error) {
    server.close();
    throw error;
  }
  const jwks = createRemoteJWKSet(new URL(provider.jwks_uri));
  const verifier = base64url(crypto.randomBytes(32));
  const state = base64url(crypto.randomBytes(16));
  const nonce = base64url(crypto.randomBytes(16));
  const authorizationUrl = new URL(provider.authorization_endpoint);
  authorizationUrl.search = new URLSearchParams({
    client_id: DEMO_CLIENT_ID,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    code_challenge: base64url(crypto.createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    state,
    nonce,
  }).toString();

  /** The browser's return: the code exchanged once, with the PKCE verifier, and the ID token checked. */
  const isOurs = (query: URLSearchParams) => {
    const given = Buffer.from(query.get('state') ?? '');
    return given.length === state.length && crypto.timingSafeEqual(given, Buffer.from(state));
  };
  async function finish(query: URLSearchParams): Promise<JWTPayload> {
    if (query.has('error')) throw new DemoError(`the sign-in ended with ${query.get('error')}: ${query.get('error_description') ?? ''}`);
    const response = await fetch(provider.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: query.get('code') ?? '', redirect_uri: redirectUri, client_id: DEMO_CLIENT_ID, code_verifier: verifier }),
    });
    if (!response.ok) throw new DemoError(`the token endpoint refused the code (${response.status}): ${await response.text()}`);
    const { payload } = await jwtVerify(tokenSchema.parse(await response.json()).id_token, jwks, { issuer: provider.issuer, audience: DEMO_CLIENT_ID });
    if (payload.nonce !== nonce) throw new DemoError('the ID token is not for this sign-in (nonce)');
    return payload;
  }

  let settle: { resolve(claims: JWTPayload): void; reject(error: Error): void };
  const claims = new Promise<JWTPayload>((resolve, reject) => (settle = { resolve, reject }));
  let used = false;
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', origin);
    const send = (status: number, html: string, then?: () => void) => {
      if (then) res.once('finish', then);
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
    };
    if (url.pathname === '/') return void res.writeHead(302, { location: authorizationUrl.toString() }).end();
    if (url.pathname !== '/callback') return send(404, page('Not found', ''));
    // A request that is not this sign-in's return (no state, or another one) is refused without ending the run.
    if (!isOurs(url.searchParams)) return send(400, page('Not this sign-in', '<p>The state does not match this sign-in.</p>'));
    if (used) return send(410, page('Already signed in', '<p>This demo run is over: run <code>npm run demo</code> again.</p>'));
    used = true;
    finish(url.searchParams).then(
      (payload) => {
        const { sub, amr, acr } = payload;
        send(200, page('Signed in', `<p>Latchkey signed you in. The app received this ID token:</p>
<dl><dt><code>sub</code></dt><dd><code>${escapeHtml(String(sub))}</code></dd><dt><code>amr</code> (how)</dt><dd><code>${escapeHtml(JSON.stringify(amr))}</code></dd><dt><code>acr</code> (how strong)</dt><dd><code>${escapeHtml(String(acr))}</code></dd></dl>
<pre>${escapeHtml(JSON.stringify(payload, null, 2))}</pre>`), () => settle.resolve(payload));
      },
      (error: Error) => send(400, page('The sign-in did not complete', `<p>${escapeHtml(error.message)}</p>`), () => settle.reject(error)),
    );
  });

  return {
    startUrl: `${origin}/`,
    authorizationUrl: authorizationUrl.toString(),
    claims,
    // The client goes with the run: a first-party client left pointing at a loopback port that anyone on this machine
    // could listen on later would hand them codes without a consent screen.
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await options.clients.remove(DEMO_CLIENT_ID);
    },
  };
}
