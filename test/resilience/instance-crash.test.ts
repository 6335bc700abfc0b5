import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { startCluster } from '../helpers/cluster.js';
import { CALLBACK } from '../helpers/factories.js';
import { completeLogin, relyingParty, startLogin } from '../helpers/relying-party.js';

let setup: Awaited<ReturnType<typeof startCluster>>;
beforeAll(async () => {
  setup = await startCluster(2);
}, 60_000);
afterAll(() => setup?.stop());

test('kill -9 one of two instances in the middle of logins: the other finishes every one of them', async () => {
  const [doomed, survivor] = setup.servers;
  const client = await setup.registerClient();
  const rp = await relyingParty(setup.url, client.clientId, client.clientSecret);
  const users = await Promise.all(Array.from({ length: 8 }, () => setup.addUser()));

  // Eight browsers on the doomed instance, each at its login page, half of them already sending their password.
  const onDoomed = (url: string) => url.replace(setup.url, doomed!.url);
  const logins = await Promise.all(users.map(async () => {
    const started = await startLogin(rp, { prompt: '' });
    const agent = started.agent.rerouted(onDoomed);
    return { ...started, agent, page: await agent.visit(started.page.url) };
  }));
  const inFlight = logins.slice(0, 4).map((login, i) => login.agent.submit(login.page, '/login', { email: users[i]!.email, password: users[i]!.password }).catch(() => undefined));
  doomed!.child.kill('SIGKILL');
  await Promise.all(inFlight);
  // As a balancer's health check would, before the browsers come back: its dead connections are closed by now.
  await new Promise((resolve) => setTimeout(resolve, 300));

  // The same browsers (same cookies), now through the balancer, which only reaches the survivor.
  for (const [i, login] of logins.entries()) {
    const agent = login.agent.rerouted((url) => url);
    // The interaction lives in PostgreSQL: the page reloads on the survivor, and the password goes there.
    let page = await agent.visit(login.page.url);
    if (!page.url.startsWith(CALLBACK)) page = await agent.submit(page, '/login', { email: users[i]!.email, password: users[i]!.password });
    expect(page.url.startsWith(CALLBACK)).toBe(true);
    const tokens = await completeLogin(rp, login, page.url);
    expect(tokens.claims()!.sub).toBe(users[i]!.id);
  }
  expect(survivor!.child.exitCode).toBeNull();
  expect(survivor!.output()).not.toMatch(/"level":(50|60)/);
}, 60_000);
