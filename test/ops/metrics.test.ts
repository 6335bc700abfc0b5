import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { aClient, aUser } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const METRICS_TOKEN = 'metrics-token-for-the-test-0123';
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ env: { LATCHKEY_METRICS_TOKEN: METRICS_TOKEN } });
});
afterAll(() => server.close());

const scrape = async () => {
  const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  return response.text();
};
const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : 0;
};

describe('/metrics', () => {
  test('asks for its token when one is configured', async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);
  });

  test('counts sign-ins by outcome and factor, tokens by grant type, and HTTP latency by route', async () => {
    const before = await scrape();
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    await login.agent.submit(login.page, '/login', { email: user.email, password: 'wrong password' });
    await completeLogin(config, login, (await signInWithPassword(login, user.email, user.password)).url);

    const after = await scrape();
    const delta = (series: string) => value(after, series) - value(before, series);
    expect(delta('latchkey_logins_total{outcome="success",factor="none"}')).toBe(1);
    expect(delta('latchkey_logins_total{outcome="failure",factor="password"}')).toBe(1);
    expect(delta('latchkey_tokens_issued_total{grant_type="authorization_code"}')).toBe(1);
    expect(delta('latchkey_http_request_duration_seconds_count{route="token",method="POST",status="2xx"}')).toBe(1);
    expect(after).toMatch(/latchkey_db_pool_connections\{state="max"\} \d+/);
    expect(after).toMatch(/latchkey_process_resident_memory_bytes \d+/);
  });

  test('a URL nobody knows adds no new series (route labels are a fixed set)', async () => {
    await fetch(`${server.url}/no/such/${Date.now()}`);
    const text = await scrape();
    expect(text).not.toContain('/no/such');
    expect(text).toMatch(/route="other"/);
  });
});
