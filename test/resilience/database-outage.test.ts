import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { startCluster, recordStatuses } from '../helpers/cluster.js';
import { CALLBACK } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';

/** PostgreSQL itself stopped and started under the server, as in a failover or a restart for an upgrade. */
const version = fs.readdirSync('/etc/postgresql')[0]!;
const cluster = (action: 'start' | 'stop') => execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', action, ...(action === 'stop' ? ['-m', 'fast'] : [])], { stdio: 'pipe' });
const pgReady = () => {
  try {
    execFileSync('pg_isready', ['-h', '127.0.0.1', '-p', '5432', '-q']);
    return true;
  } catch {
    return false;
  }
};

let setup: Awaited<ReturnType<typeof startCluster>>;
beforeAll(async () => {
  setup = await startCluster(1, { LATCHKEY_LOGIN_IP_FAILURES: '10000' });
}, 60_000);
afterAll(async () => {
  if (!pgReady()) cluster('start');
  await setup?.stop();
});

const timed = async <T>(work: () => Promise<T>) => {
  const t0 = performance.now();
  const value = await work();
  return { value, ms: performance.now() - t0 };
};

test('while PostgreSQL is down the server answers 503 at once and /readyz fails; it recovers by itself', async () => {
  const [server] = setup.servers;
  const user = await setup.addUser();
  const client = await setup.registerClient();
  const config = await relyingParty(setup.url, client.clientId, client.clientSecret);
  const login = async () => {
    const started = await startLogin(config, { prompt: '' });
    const page = await signInWithPassword(started, user.email, user.password);
    if (!page.url.startsWith(CALLBACK)) throw new Error(`stopped at ${page.url} (${page.status})`);
    await completeLogin(config, started, page.url);
  };
  await login();

  const statuses = recordStatuses();
  let stopping = false;
  const outcomes: Array<'ok' | 'failed'> = [];
  // Two users signing in over and over while the database goes away and comes back.
  const background = Promise.all(
    [0, 1].map(async () => {
      while (!stopping) {
        outcomes.push(await login().then(() => 'ok' as const, () => 'failed' as const));
      }
    }),
  );
  try {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    cluster('stop');
    const readyz = await timed(() => fetch(`${server!.url}/readyz`));
    expect(readyz.value.status).toBe(503);
    expect(readyz.ms).toBeLessThan(2000);
    const authorize = await timed(() => startLogin(config, { prompt: '' }));
    expect(authorize.value.page.status).toBe(503);
    expect(authorize.value.page.headers.get('retry-after')).toBe('5');
    expect(authorize.ms).toBeLessThan(4000);
    const token = await timed(() => fetch(`${server!.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}` }, body: 'grant_type=authorization_code&code=x&redirect_uri=' + encodeURIComponent(CALLBACK) }));
    expect(token.value.status).toBe(503);
    expect(token.ms).toBeLessThan(4000);

    cluster('start');
    const back = performance.now();
    while (!pgReady()) await new Promise((resolve) => setTimeout(resolve, 50));
    const recovered = await timed(async () => {
      for (;;) {
        if ((await fetch(`${server!.url}/readyz`)).ok) {
          try {
            await login();
            return;
          } catch {
            // not yet: the pool is still replacing its dead connections
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });
    expect(performance.now() - back).toBeLessThan(5000);
    expect(recovered.ms).toBeLessThan(5000);
  } finally {
    stopping = true;
    await background;
    statuses.restore();
  }
  // Requests failed while the database was away, always as 503: never a 500, never a hang.
  expect(statuses.seen.filter((s) => s.status >= 500 && s.status !== 503)).toEqual([]);
  expect(outcomes.filter((o) => o === 'failed').length).toBeGreaterThan(0);
  expect(outcomes.slice(-2)).toEqual(['ok', 'ok']);

  // Nothing half-written: every interaction and session row is whole, and sign-ins go on as before.
  const rows = await setup.database.db('oidc_model_instances').whereIn('model', ['Interaction', 'Session', 'AuthorizationCode']).select('model', 'payload');
  for (const row of rows) {
    expect(typeof row.payload).toBe('object');
    if (row.model === 'Interaction') expect(row.payload).toMatchObject({ returnTo: expect.any(String), params: expect.any(Object) });
    if (row.model === 'Session') expect(row.payload).toMatchObject({ uid: expect.any(String) });
  }
  await login();
}, 60_000);
