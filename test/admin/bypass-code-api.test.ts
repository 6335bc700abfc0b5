import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import type { Role } from '../../src/admin/users.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, recordingNotifier, steppingClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Who may issue a helpdesk bypass code for whom, over the admin API and the console. */
const clock = steppingClock();
const notices = recordingNotifier();
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let superAdmin: Awaited<ReturnType<typeof anAdmin>>;
let helpdesk: Awaited<ReturnType<typeof anAdmin>>;

beforeAll(async () => {
  server = await startTestServer({ clock, notifier: notices.notifier });
  api = apiClient(server.url);
  [superAdmin, helpdesk] = await Promise.all([anAdmin(server.latchkey, server.url, ['super_admin']), anAdmin(server.latchkey, server.url, ['helpdesk'])]);
});
afterAll(() => server.close());

async function userWithFactor(roles: Role[] = []) {
  const user = await aUser(server.latchkey, { roles });
  await enrolTotp(server.latchkey, user, clock);
  return user;
}
const issue = (token: string, userId: string, body: unknown = { reason: 'lost phone, called from the desk line' }) => api('POST', `/api/admin/users/${userId}/bypass-code`, token, body);

describe('issuing a bypass code over the admin API', () => {
  test('a super admin gets the code once, not cached; the issuer and reason are audited and the user is told', async () => {
    const user = await userWithFactor();
    const reply = await issue(superAdmin.token, user.id);
    expect(reply.status).toBe(201);
    expect(reply.json.code).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    expect(reply.headers.get('cache-control')).toContain('no-store');
    const [event] = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.bypass_code_issued' });
    expect(event).toMatchObject({ actor_id: superAdmin.user.id });
    expect(event!.details.reason).toBe('lost phone, called from the desk line');
    expect(JSON.stringify(event)).not.toContain(String(reply.json.code));
    expect(notices.eventsFor(user.id)).toContain('bypass_code_issued');
  });

  test('a helpdesk may issue for users without roles only, and cannot hand out roles', async () => {
    expect((await issue(helpdesk.token, (await userWithFactor()).id)).status).toBe(201);
    for (const roles of [['auditor'], ['super_admin'], ['helpdesk']] as const) {
      const admin = await userWithFactor([...roles]);
      expect((await issue(helpdesk.token, admin.id)).status).toBe(403);
      expect(await server.database.db('bypass_codes').where({ user_id: admin.id })).toHaveLength(0);
    }
    const plain = await aUser(server.latchkey);
    expect((await api('PUT', `/api/admin/users/${plain.id}/roles`, helpdesk.token, { roles: ['helpdesk'] })).status).toBe(403);
    expect((await api('POST', '/api/admin/users', helpdesk.token, { email: 'hd-made@example.test', password: 'a long passphrase' })).status).toBe(403);
    expect((await api('GET', `/api/admin/users/${plain.id}`, helpdesk.token)).status).toBe(200);
  });

  test('other roles may not issue; a reason is required; not for oneself or a user with no factor', async () => {
    const user = await userWithFactor();
    const auditor = await anAdmin(server.latchkey, server.url, ['auditor']);
    expect((await issue(auditor.token, user.id)).status).toBe(403);
    expect((await issue(superAdmin.token, user.id, {})).json).toMatchObject({ status: 400, field: 'reason' });
    expect((await issue(superAdmin.token, user.id, { reason: '  ' })).json).toMatchObject({ status: 400, field: 'reason' });
    expect((await issue(superAdmin.token, user.id, { reason: 'ok then', extra: 1 })).status).toBe(400);
    expect((await issue(superAdmin.token, superAdmin.user.id)).json).toMatchObject({ status: 409, code: 'own_account' });
    expect((await issue(superAdmin.token, (await aUser(server.latchkey)).id)).json).toMatchObject({ status: 409, code: 'no_second_factor' });
  });

  test('the OpenAPI document describes the operation and its roles', async () => {
    const doc = (await api('GET', '/api/admin/openapi.json', undefined)).json as { paths: Record<string, Record<string, { operationId: string }>> };
    expect(doc.paths['/api/admin/users/{id}/bypass-code']?.post?.operationId).toBe('issueBypassCode');
  });
});

describe('issuing a bypass code in the console', () => {
  test('the user page takes a reason and shows the code on that answer only', async () => {
    const user = await userWithFactor();
    const { agent, page } = await consoleSignIn(server.url, superAdmin.user.email, superAdmin.user.password, `/admin/users/${user.id}`);
    expect(page.html).toContain('One-time helpdesk code');
    const missing = await agent.visit(`${server.url}/admin/users/${user.id}/bypass-code`, { form: { _csrf: csrfOf(page), reason: '' } });
    expect(missing.status).toBe(400);
    expect(missing.html).toContain('aria-invalid="true"');
    const shown = await agent.submit(page, '/bypass-code', { reason: 'lost phone' });
    expect(shown.status).toBe(201);
    const code = /data-generated-code>([^<]+)</.exec(shown.html)![1]!;
    expect(code).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    expect(shown.url).not.toContain(code);
    expect((await agent.visit(`${server.url}/admin/users/${user.id}`)).html).not.toContain(code);
  });

  test("a helpdesk sees the form on a plain user's page, not on an admin's", async () => {
    const [plain, admin] = [await userWithFactor(), await userWithFactor(['auditor'])];
    const { agent, page } = await consoleSignIn(server.url, helpdesk.user.email, helpdesk.user.password, `/admin/users/${plain.id}`);
    expect(page.html).toContain('/bypass-code"');
    expect((await agent.visit(`${server.url}/admin/users/${admin.id}`)).html).not.toContain('/bypass-code"');
    const refused = await agent.visit(`${server.url}/admin/users/${admin.id}/bypass-code`, { form: { _csrf: csrfOf(page), reason: 'lost phone' } });
    expect(refused.status).toBe(403);
  });
});
