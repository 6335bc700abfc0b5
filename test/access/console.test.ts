import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The admin console's door-people pages: what they show, and what never travels in a URL. */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

test('a generated MFA code is shown once, on the answer to the POST itself: never in a URL', async () => {
  const manager = await aUser(server.latchkey, { roles: ['access_credential_manager'] });
  const person = await aUser(server.latchkey);
  const { agent, page } = await consoleSignIn(server.url, manager.email, manager.password, `/admin/users/${person.id}`);
  const target = `${server.url}/admin/users/${person.id}/mfa-codes`;
  const answer = await agent.request(target, { form: { _csrf: csrfOf(page), length: '8' } });
  expect(answer.status).toBe(201);
  expect(answer.headers.get('location')).toBeNull();
  const html = await answer.text();
  const code = /data-generated-code>(\d{8})</.exec(html)![1]!;
  expect((await server.latchkey.access.listCodes(person.id)).map((c) => c.code)).toEqual([code]);
  // Shown once: the user's page, visited again, does not announce it.
  expect((await agent.visit(`${server.url}/admin/users/${person.id}`)).html).not.toContain('data-generated-code');
});

test('a credential manager sees an admin’s page without their codes or credentials, and cannot add any', async () => {
  const manager = await aUser(server.latchkey, { roles: ['access_credential_manager'] });
  const boss = await aUser(server.latchkey, { roles: ['super_admin'] });
  await server.latchkey.access.addMfaCode(boss.id, { code: '602917' }, { actorId: null });
  const { agent, page } = await consoleSignIn(server.url, manager.email, manager.password, `/admin/users/${boss.id}`);
  expect(page.status).toBe(200);
  expect(page.html).not.toContain('602917');
  expect(page.html).not.toContain(`/admin/users/${boss.id}/mfa-codes`);
  const withForm = await agent.visit(`${server.url}/admin/users/${(await aUser(server.latchkey)).id}`);
  const refused = await agent.visit(`${server.url}/admin/users/${boss.id}/mfa-codes`, { form: { _csrf: csrfOf(withForm), length: '6' } });
  expect(refused.status).toBe(403);
  expect(await server.latchkey.access.listCodes(boss.id)).toHaveLength(1);
});
