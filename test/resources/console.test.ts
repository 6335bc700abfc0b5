import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The console's APIs page acts through the admin API's operations: same roles, same validation. */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

test('a super admin registers and deletes an API from the console; bad input names the field', async () => {
  const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
  const { agent, page } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/resources');
  expect(page.status).toBe(200);
  expect(page.html).toContain('action="/admin/resources"');
  const form = { _csrf: csrfOf(page), identifier: 'https://console.example.test', name: 'Console API', scopes: 'a:read  a:write', access_token_ttl: '600', token_format: 'jwt', signing_alg: 'ES256', machine_clients: '' };
  const bad = await agent.request(`${server.url}/admin/resources`, { form: { ...form, access_token_ttl: '5' } });
  expect(bad.status).toBe(400);
  expect(await bad.text()).toContain('access_token_ttl');

  const listed = await agent.visit(`${server.url}/admin/resources`, { form });
  expect(listed.url).toContain('notice=resource_registered');
  expect(listed.html).toContain('https://console.example.test');
  expect(await server.latchkey.queries.resources.find('https://console.example.test')).toMatchObject({ scopes: ['a:read', 'a:write'], access_token_ttl: 600, signing_alg: 'ES256' });

  const asked = await agent.visit(`${server.url}/admin/resources/delete`, { form: { _csrf: csrfOf(listed), identifier: 'https://console.example.test' } });
  expect(asked.html).toContain('Delete this API?');
  expect(await server.latchkey.queries.resources.find('https://console.example.test')).toBeDefined();
  const deleted = await agent.submit(asked, '/admin/resources/delete');
  expect(deleted.url).toContain('notice=resource_deleted');
  expect(await server.latchkey.queries.resources.find('https://console.example.test')).toBeUndefined();
});

test('an auditor sees the list without the forms, and a POST is refused', async () => {
  const auditor = await aUser(server.latchkey, { roles: ['auditor'] });
  const { agent, page } = await consoleSignIn(server.url, auditor.email, auditor.password, '/admin/resources');
  expect(page.status).toBe(200);
  expect(page.html).not.toContain('action="/admin/resources"');
  const withForm = await agent.visit(`${server.url}/account/security`);
  const refused = await agent.request(`${server.url}/admin/resources`, { form: { _csrf: csrfOf(withForm), identifier: 'https://x.example.test', name: 'x', access_token_ttl: '600', token_format: 'jwt', signing_alg: 'RS256' } });
  expect(refused.status).toBe(403);
});
