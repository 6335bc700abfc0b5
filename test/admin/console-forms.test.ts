import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aClient, aUser } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** A failed admin form comes back as the same page, with what was typed and the error on its field. */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

const signedInAdmin = async (path: string) => {
  const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
  return consoleSignIn(server.url, admin.email, admin.password, path);
};

describe('admin console forms', () => {
  test('a bad redirect URI: the client form again, typed values kept, the error on the field; a good one registers', async () => {
    const { agent, page } = await signedInAdmin('/admin/clients');
    const form = { _csrf: csrfOf(page), client_name: 'Forms app', kind: 'web', redirect_uri: 'not a uri', require_mfa: 'on' };
    const bad = await agent.visit(`${server.url}/admin/clients`, { form });
    expect(bad.status).toBe(400);
    expect(bad.url).toBe(`${server.url}/admin/clients`);
    expect(bad.html).toContain('<h1>Apps</h1>');
    expect(bad.html).toMatch(/id="redirect-uri" name="redirect_uri" type="text" value="not a uri"[^>]*aria-invalid="true" aria-describedby="redirect-uri-error"/);
    expect(bad.html).toContain('id="redirect-uri-error"');
    expect(bad.html).toContain('id="client-name" name="client_name" type="text" value="Forms app"');
    expect(bad.html).toMatch(/id="client-require-mfa" name="require_mfa" value="on" checked/);
    expect(bad.html).toMatch(/<option value="web" selected>/);

    const good = await agent.visit(`${server.url}/admin/clients`, { form: { ...form, redirect_uri: 'https://forms.example.test/callback' } });
    expect(good.status).toBe(201);
    expect(good.html).toContain('data-client-secret');
  });

  test('a duplicate invitation: the invite form again, the email kept and the error on it, in the admin\'s language', async () => {
    const existing = await aUser(server.latchkey);
    const { agent, page } = await signedInAdmin('/admin/users');
    const dup = await agent.visit(`${server.url}/admin/users/invite`, { form: { _csrf: csrfOf(page), email: existing.email, name: 'Twice' } });
    expect(dup.status).toBe(409);
    expect(dup.html).toMatch(new RegExp(`id="invite-email" name="email" type="email" value="${existing.email}"[^>]*aria-invalid="true" aria-describedby="invite-email-error"`));
    expect(dup.html).toContain('id="invite-email-error">A user with this email exists.');
    expect(dup.html).toContain('value="Twice"');

    const ko = await agent.visit(`${server.url}/admin/users/invite?ui_locales=ko`, { form: { _csrf: csrfOf(page), email: existing.email, name: '' } });
    expect(ko.html).toContain('id="invite-email-error">');
    expect(ko.html).not.toContain('A user with this email exists.');
  });

  test('a setting out of range: the settings page again with the error on that number', async () => {
    const { agent, page } = await signedInAdmin('/admin/settings');
    const version = /action="\/admin\/settings\/password-policy">[\s\S]*?name="version" value="(\d+)"/.exec(page.html)![1]!;
    const bad = await agent.visit(`${server.url}/admin/settings/password-policy`, { form: { _csrf: csrfOf(page), version, min_length: '3' } });
    expect(bad.status).toBe(400);
    expect(bad.html).toMatch(/id="min-length" name="min_length" type="number" value="3"[^>]*aria-invalid="true"/);
  });

  test('deleting an app asks first, on a page that works without script; only the confirmation deletes', async () => {
    const client = await aClient(server.latchkey, { client_name: 'Doomed app' });
    const { agent, page } = await signedInAdmin('/admin/clients');
    const asked = await agent.visit(`${server.url}/admin/clients/${encodeURIComponent(client.clientId)}/delete`, { form: { _csrf: csrfOf(page) } });
    expect(asked.status).toBe(200);
    expect(asked.html).toContain('Delete “Doomed app”?');
    expect(asked.html).toContain('name="confirm" value="yes"');
    expect(asked.html).toContain('href="/admin/clients"');
    expect(await server.latchkey.queries.clients.find(client.clientId)).toBeDefined();
    const deleted = await agent.submit(asked, '/delete');
    expect(deleted.url).toContain('notice=client_deleted');
    expect(await server.latchkey.queries.clients.find(client.clientId)).toBeUndefined();
  });
});
