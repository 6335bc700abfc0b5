import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { consoleSignIn } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The audit page as people use it: a person found by email, days from a calendar, who and whom by email. */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

const today = () => new Date().toISOString().slice(0, 10);

describe('the audit page', () => {
  test("a person named by email shows their events, with the actor's and the subject's emails and readable details", async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const subject = await aUser(server.latchkey);
    await server.latchkey.queries.audit.insert({ action: 'user.update', outcome: 'success', actorId: admin.id, subjectId: subject.id, details: { changed: ['name'], email_from: 'old@example.test' } });
    await server.latchkey.queries.audit.insert({ action: 'user.update', outcome: 'success', actorId: admin.id, details: { unrelated: true } });
    const { agent } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/audit');
    const page = await agent.visit(`${server.url}/admin/audit?user=${encodeURIComponent(subject.email.toUpperCase())}&from=${today()}&to=${today()}`);
    expect(page.status).toBe(200);
    expect(page.html).toContain(`<a href="/admin/users/${subject.id}">${subject.email}</a>`);
    expect(page.html).toContain(`<a href="/admin/users/${admin.id}">${admin.email}</a>`);
    expect(page.html).toContain('<dt><code>email from</code></dt><dd><code>old@example.test</code></dd>');
    expect(page.html).not.toContain('unrelated');
    expect(page.html).toMatch(/id="f-from" name="from" type="date" value="\d{4}-\d{2}-\d{2}"/);
    expect(page.html).toContain(`export.csv?user_id=${subject.id}`);
  });

  test('days exclude events outside them; the last day is included', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { agent } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/audit');
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const until = await agent.visit(`${server.url}/admin/audit?user=${encodeURIComponent(admin.email)}&to=${yesterday}`);
    expect(until.html).not.toContain('login.password');
    const through = await agent.visit(`${server.url}/admin/audit?user=${encodeURIComponent(admin.email)}&to=${today()}`);
    expect(through.html).toContain('login.password');
  });

  test('an unknown person, a bad day or a backwards range come back as the form with the error on its field', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { agent } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/audit');
    const unknown = await agent.visit(`${server.url}/admin/audit?user=nobody%40example.test`);
    expect(unknown.status).toBe(400);
    expect(unknown.html).toMatch(/id="f-user" name="user" type="text" value="nobody@example.test"[^>]*aria-invalid="true"/);
    expect(unknown.html).toContain('No user has this email or id.');
    const badDay = await agent.visit(`${server.url}/admin/audit?from=2026-13-45`);
    expect(badDay.status).toBe(400);
    expect(badDay.html).toMatch(/id="f-from" name="from" type="date" value="2026-13-45"[^>]*aria-invalid="true"/);
    const backwards = await agent.visit(`${server.url}/admin/audit?from=2026-11-20&to=2026-11-10`);
    expect(backwards.status).toBe(400);
    expect(backwards.html).toMatch(/id="f-to"[^>]*aria-invalid="true"/);
  });
});
