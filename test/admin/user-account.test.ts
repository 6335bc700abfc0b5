import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ParsedMail } from 'mailparser';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { BrowserAgent } from '../helpers/browser-agent.js';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aClient, APP_ORIGIN, aUser, CALLBACK } from '../helpers/factories.js';
import { completeLogin, relyingParty, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startSmtpServer } from '../helpers/smtp.js';

let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let superAdmin: Awaited<ReturnType<typeof anAdmin>>;
beforeAll(async () => {
  smtp = await startSmtpServer();
  server = await startTestServer({ env: { LATCHKEY_SMTP_URL: smtp.url } });
  api = apiClient(server.url);
  superAdmin = await anAdmin(server.latchkey, server.url, ['super_admin']);
});
afterAll(async () => {
  await server.close();
  await smtp.close();
});

/** The first mail to `to` whose subject matches. */
async function mailTo(to: string, subject: RegExp): Promise<ParsedMail> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = smtp.messages.find((m) => (Array.isArray(m.to) ? m.to : [m.to]).some((a) => a?.text.includes(to)) && subject.test(m.subject ?? ''));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no mail to ${to} matching ${subject}`);
    await smtp.messageTo(to).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
const NEW_PASSWORD = 'chosen after the admin helped';

describe("an admin edits a user's name and email", () => {
  test('over the API: the canonical address is unique, and the old address is told', async () => {
    const user = await aUser(server.latchkey, { name: 'Old Name' });
    const other = await aUser(server.latchkey);
    const changed = await api('PATCH', `/api/admin/users/${user.id}`, superAdmin.token, { name: 'New Name', email: `Moved-${user.id.slice(0, 8)}@Example.TEST` });
    expect(changed.status).toBe(200);
    const moved = `moved-${user.id.slice(0, 8)}@example.test`;
    expect(changed.json).toMatchObject({ name: 'New Name', email: moved });
    expect((await server.latchkey.queries.users.findById(user.id))!.email_verified).toBe(false);

    const notice = await mailTo(user.email, /email address of your account was changed/);
    expect(notice.text).toContain(moved);
    const [audit] = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'user.update' });
    expect(audit).toMatchObject({ actor_id: superAdmin.user.id, details: { email_from: user.email, email_to: moved } });

    // Another account's address in another case is that address: a field error.
    expect((await api('PATCH', `/api/admin/users/${user.id}`, superAdmin.token, { email: other.email.toUpperCase() })).json).toMatchObject({ status: 409, field: 'email' });
    expect((await api('PATCH', `/api/admin/users/${user.id}`, superAdmin.token, { email: 'not an address' })).json).toMatchObject({ status: 400, field: 'email' });
    expect((await server.latchkey.queries.users.findById(user.id))!.email).toBe(moved);
  });

  test('20 users moved to one address at once: one gets it, the rest are the email field’s 409, none a 500', async () => {
    const users = await Promise.all(Array.from({ length: 20 }, () => aUser(server.latchkey)));
    const target = `contested-${users[0]!.id.slice(0, 8)}@example.test`;
    const answers = await Promise.all(users.map((u, i) => api('PATCH', `/api/admin/users/${u.id}`, superAdmin.token, { email: i % 2 ? target.toUpperCase() : target })));
    expect(answers.map((a) => a.status).sort()).toEqual([200, ...Array(19).fill(409)]);
    expect(answers.filter((a) => a.status === 409).every((a) => a.json.field === 'email')).toBe(true);
  });

  test('in the console: a taken address comes back on the form, with what was typed', async () => {
    const user = await aUser(server.latchkey, { name: 'Console Person' });
    const other = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, superAdmin.user.email, superAdmin.user.password, `/admin/users/${user.id}`);
    expect(page.html).toContain(`/admin/users/${user.id}/profile`);
    const refused = await agent.submit(page, `/admin/users/${user.id}/profile`, { name: 'Typed Name', email: other.email });
    expect(refused.status).toBe(409);
    expect(refused.html).toContain('value="Typed Name"');
    expect(refused.html).toMatch(/id="user-edit-email"[^>]*aria-invalid="true"/);
    const saved = await agent.submit(refused, `/admin/users/${user.id}/profile`, { name: 'Typed Name', email: `console-${user.id.slice(0, 8)}@example.test` });
    expect(saved.url).toBe(`${server.url}/admin/users/${user.id}?notice=user_saved`);
    expect((await server.latchkey.queries.users.findById(user.id))!.name).toBe('Typed Name');
  });
});

describe('an admin helps a user who forgot their password', () => {
  test('mails them a reset code, which they use on the page the mail links to', async () => {
    const user = await aUser(server.latchkey, { locale: 'ko' });
    const sent = await api('POST', `/api/admin/users/${user.id}/password-reset`, superAdmin.token);
    expect(sent.status).toBe(202);
    expect(Date.parse(String(sent.json.expires_at))).toBeGreaterThan(Date.now());
    const mail = await mailTo(user.email, /비밀번호 재설정/);
    expect(mail.text).toContain('관리자가');
    const code = /^\s+(\d{8})$/m.exec(mail.text!)![1]!;
    const link = /(http\S+\/password-reset\/code)/.exec(mail.text!)![1]!;
    expect(link).toBe(`${server.url}/password-reset/code`);

    const agent = new BrowserAgent(APP_ORIGIN);
    const page = await agent.visit(link);
    const done = await agent.submit(page, '/password-reset/code', { email: user.email, code, password: NEW_PASSWORD, password_again: NEW_PASSWORD });
    expect(done.url).toBe(`${server.url}/password-reset/done`);
    const row = (await server.latchkey.queries.users.findById(user.id))!;
    expect((await server.latchkey.hasher.verify(row.password_hash!, NEW_PASSWORD)).valid).toBe(true);
    const [audit] = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'password_reset.code_sent' });
    expect(audit).toMatchObject({ outcome: 'success', actor_id: superAdmin.user.id });
  });

  test('sets a temporary password, generated or given, that must be changed; codes mailed before stop working', async () => {
    const user = await aUser(server.latchkey);
    await api('POST', `/api/admin/users/${user.id}/password-reset`, superAdmin.token);
    const code = /^\s+(\d{8})$/m.exec((await mailTo(user.email, /Reset your/)).text!)![1]!;

    const generated = await api('PUT', `/api/admin/users/${user.id}/password`, superAdmin.token, {});
    expect(generated.status).toBe(200);
    const temporary = String(generated.json.generated_password);
    expect(temporary.length).toBeGreaterThanOrEqual(15);
    expect((await server.latchkey.queries.users.findById(user.id))!.must_change_password).toBe(true);
    expect((await api('PUT', `/api/admin/users/${user.id}/password`, superAdmin.token, { password: 'short' })).json).toMatchObject({ status: 400, field: 'password' });
    expect((await api('PUT', `/api/admin/users/${user.id}/password`, superAdmin.token, { password: 'given by the administrator' })).json).toEqual({});

    const agent = new BrowserAgent(APP_ORIGIN);
    const page = await agent.visit(`${server.url}/password-reset/code`);
    const stale = await agent.submit(page, '/password-reset/code', { email: user.email, code, password: NEW_PASSWORD, password_again: NEW_PASSWORD });
    expect(stale.status).toBe(401);

    const { page: landed } = await consoleSignIn(server.url, user.email, 'given by the administrator', '/account/security');
    expect(landed.url).toBe(`${server.url}/account/profile?notice=choose_password`);
    const audit = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'user.password_reset' });
    expect(audit.map((e) => e.actor_id)).toEqual([superAdmin.user.id, superAdmin.user.id]);
  });

  test('a temporary password opens no app until the user chose their own at the sign-in', async () => {
    const user = await aUser(server.latchkey);
    const temporary = String((await api('PUT', `/api/admin/users/${user.id}/password`, superAdmin.token, {})).json.generated_password);
    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    const asked = await login.agent.submit(login.page, '/login', { email: user.email, password: temporary });
    expect(asked.status).toBe(200);
    expect(asked.html).toContain('This password was set by an administrator');
    const weak = await login.agent.submit(asked, '/login', { email: user.email, password: temporary, new_password: 'password', new_password_again: 'password' });
    expect(weak.status).toBe(400);
    expect(weak.html).toContain('aria-invalid="true"');
    const mismatch = await login.agent.submit(asked, '/login', { email: user.email, password: temporary, new_password: 'a long new passphrase', new_password_again: 'a long new passphrase!' });
    expect(mismatch.status).toBe(400);
    const row = await server.latchkey.queries.users.findById(user.id);
    expect(row!.must_change_password).toBe(true);
    const done = await login.agent.submit(asked, '/login', { email: user.email, password: temporary, new_password: 'a long new passphrase', new_password_again: 'a long new passphrase' });
    const consented = done.html.includes('/confirm"') ? await login.agent.submit(done, '/confirm') : done;
    expect(consented.url.startsWith(CALLBACK)).toBe(true);
    expect((await completeLogin(config, login, consented.url)).claims()!.sub).toBe(user.id);
    const changed = await server.latchkey.queries.users.findById(user.id);
    expect(changed!.must_change_password).toBe(false);
    expect((await server.latchkey.hasher.verify(changed!.password_hash, 'a long new passphrase')).valid).toBe(true);
    expect((await server.latchkey.hasher.verify(changed!.password_hash, temporary)).valid).toBe(false);
  });

  test('in the console: a generated temporary password is shown once, and a reset code can be mailed', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, superAdmin.user.email, superAdmin.user.password, `/admin/users/${user.id}`);
    const shown = await agent.submit(page, `/admin/users/${user.id}/password`, { password: '' });
    expect(shown.status).toBe(201);
    const temporary = /data-generated-code>([^<]+)</.exec(shown.html)![1]!;
    const row = (await server.latchkey.queries.users.findById(user.id))!;
    expect((await server.latchkey.hasher.verify(row.password_hash!, temporary)).valid).toBe(true);
    const again = await agent.visit(`${server.url}/admin/users/${user.id}`);
    expect(again.html).not.toContain(temporary);

    const mailed = await agent.submit(again, `/admin/users/${user.id}/password-reset`);
    expect(mailed.url).toBe(`${server.url}/admin/users/${user.id}?notice=reset_sent`);
    await mailTo(user.email, /Reset your/);
    expect(csrfOf(mailed)).toBeTruthy();
  });

  test('a user admin may not reset the password of someone holding a role', async () => {
    const userAdmin = await anAdmin(server.latchkey, server.url, ['access_user_admin']);
    const auditor = await aUser(server.latchkey, { roles: ['auditor'] });
    expect((await api('POST', `/api/admin/users/${auditor.id}/password-reset`, userAdmin.token)).status).toBe(403);
    expect((await api('PUT', `/api/admin/users/${auditor.id}/password`, userAdmin.token, {})).status).toBe(403);
    expect((await api('PATCH', `/api/admin/users/${auditor.id}`, userAdmin.token, { email: 'taken-over@example.test' })).status).toBe(403);
    const plain = await aUser(server.latchkey);
    expect((await api('POST', `/api/admin/users/${plain.id}/password-reset`, userAdmin.token)).status).toBe(202);
  });
});
