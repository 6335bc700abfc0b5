import { spawn } from 'node:child_process';
import http from 'node:http';
import type Provider from 'oidc-provider';
import { PROJECT_ROOT } from '../src/paths.js';
import { freePort } from '../test/helpers/process.js';
import { closedLoop, SECONDS } from './harness.js';

export const TOKEN_CONCURRENCY = Number(process.env.BENCH_TOKEN_CONCURRENCY ?? 16);

/** Refresh tokens as a finished sign-in with offline_access leaves them: one grant and one token per chain. */
export async function mintRefreshTokens(provider: Provider, clientId: string, accountId: string, chains: number): Promise<string[]> {
  const client = await provider.Client.find(clientId);
  if (!client) throw new Error(`no client ${clientId}`);
  const tokens: string[] = [];
  for (let i = 0; i < chains; i++) {
    const grant = new provider.Grant({ clientId, accountId });
    grant.addOIDCScope('openid offline_access');
    const grantId = await grant.save();
    const token = new provider.RefreshToken({ client, accountId, grantId, scope: 'openid offline_access', gty: 'authorization_code', authTime: Math.floor(Date.now() / 1000) });
    tokens.push(await token.save());
  }
  return tokens;
}

export interface TokenClient {
  client_id: string;
  client_secret: string;
}

export async function startBareProvider(client: TokenClient, chains: number) {
  const port = await freePort();
  const child = spawn(process.execPath, ['dist/bench/bare-provider.js'], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH, NODE_ENV: 'production', PORT: String(port), BENCH_CLIENT: JSON.stringify(client), BENCH_REFRESH_CHAINS: String(chains) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`bare provider exited with ${code}`)));
  });
  const { refreshTokens } = JSON.parse(line) as { refreshTokens: string[] };
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, refreshTokens, stop: () => child.kill() };
}

/**
 * POSTs to a token endpoint over a keep-alive agent with plain `http.request`: a lean client, so that the load
 * generator spends less of the two cores than the servers it measures.
 */
function tokenEndpoint(baseUrl: string, client: TokenClient) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: TOKEN_CONCURRENCY });
  const target = new URL(`${baseUrl}/token`);
  const authorization = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
  return (form: Record<string, string>) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const payload = new URLSearchParams(form).toString();
      const request = http.request(
        { agent, host: target.hostname, port: target.port, method: 'POST', path: target.pathname, headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(payload) } },
        (response) => {
          let text = '';
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () => (response.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`HTTP ${response.statusCode}: ${text.slice(0, 200)}`))));
        },
      );
      request.on('error', reject);
      request.end(payload);
    });
}

/** `params` adds e.g. `resource` (RFC 8707): a JWT access token for that API instead of an opaque, stored one. */
export async function benchClientCredentials(baseUrl: string, client: TokenClient, seconds = SECONDS, params: Record<string, string> = {}) {
  const post = tokenEndpoint(baseUrl, client);
  const grant = async () => {
    const body = await post({ grant_type: 'client_credentials', ...params });
    if (typeof body.access_token !== 'string') throw new Error('no access token');
  };
  for (let i = 0; i < 50; i++) await grant();
  return closedLoop(TOKEN_CONCURRENCY, seconds, grant);
}

/** Each worker follows one rotation chain: every answer's new refresh token is the next request's. */
export async function benchRefresh(baseUrl: string, client: TokenClient, refreshTokens: string[], seconds = SECONDS) {
  const post = tokenEndpoint(baseUrl, client);
  const current = [...refreshTokens];
  const refresh = async (worker: number) => {
    const body = await post({ grant_type: 'refresh_token', refresh_token: current[worker]! });
    if (typeof body.refresh_token !== 'string' || typeof body.id_token !== 'string') throw new Error('no rotated refresh token and ID token');
    current[worker] = body.refresh_token;
  };
  return closedLoop(Math.min(TOKEN_CONCURRENCY, current.length), seconds, refresh);
}
