import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { BrowserAgent } from '../helpers/browser-agent.js';
import { APP_ORIGIN } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const IP_LIMIT = 5;

/** One wrong password on the console's login form, sent through a proxy that appended `forwardedFor`. */
async function wrongPassword(server: TestServer, email: string, forwardedFor: string) {
  const agent = new BrowserAgent(APP_ORIGIN);
  const page = await agent.visit(`${server.url}/account/security`);
  const [, action, csrf] = /<form[^>]*action="([^"]+\/login)"[\s\S]*?name="_csrf" value="([^"]+)"/.exec(page.html)!;
  const response = await agent.request(new URL(action!.replace(/&amp;/g, '&'), page.url).toString(), {
    form: { _csrf: csrf!, email, password: 'not the password' },
    headers: { 'x-forwarded-for': forwardedFor },
  });
  await response.text();
}

async function sprayFrom(env: Record<string, string>, forwarded: (i: number) => string) {
  const server = await startTestServer({ env });
  try {
    const { settings, queries } = server.latchkey;
    await settings.write('lockout', { login_account_failures: 5, login_ip_failures: IP_LIMIT, login_window_seconds: 900, mfa_account_failures: 5 });
    // Password spraying: one guess per account, each with a different forged left-most X-Forwarded-For entry.
    for (let i = 0; i <= IP_LIMIT; i++) await wrongPassword(server, `spray-${i}@example.test`, forwarded(i));
    return (await queries.audit.list({ action: 'login.password', limit: 20 })).map((e) => ({ ip: e.ip, reason: e.details.reason }));
  } finally {
    await server.close();
  }
}

describe('the client address behind trusted proxies', () => {
  test('one hop (LATCHKEY_TRUST_PROXY=true): the address the proxy saw, whatever the client wrote before it', async () => {
    const events = await sprayFrom({ LATCHKEY_TRUST_PROXY: 'true' }, (i) => `10.66.0.${i}, 198.51.100.77`);
    expect(new Set(events.map((e) => e.ip))).toEqual(new Set(['198.51.100.77']));
    expect(events[0]).toMatchObject({ reason: 'throttled' });
  });

  test('two hops: the address two entries from the right, forged entries before it ignored', async () => {
    const events = await sprayFrom({ LATCHKEY_TRUSTED_PROXY_HOPS: '2' }, (i) => `10.66.0.${i}, 203.0.113.5, 10.0.0.2`);
    expect(new Set(events.map((e) => e.ip))).toEqual(new Set(['203.0.113.5']));
    expect(events[0]).toMatchObject({ reason: 'throttled' });
  });

  test('no proxy: X-Forwarded-For is not read at all', async () => {
    const events = await sprayFrom({}, (i) => `10.66.0.${i}`);
    expect(new Set(events.map((e) => e.ip))).toEqual(new Set(['127.0.0.1']));
  });
});
