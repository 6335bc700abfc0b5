import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { recordingNotifier } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const notices = recordingNotifier();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ notifier: notices.notifier });
});
afterAll(() => server.close());

describe('the account console', () => {
  test('saves the profile, refusing an unknown time zone; dates then show in that zone', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    const bad = await agent.visit(`${server.url}/account/profile`, { form: { _csrf: csrfOf(page), name: 'Grace', locale: 'ko', time_zone: 'Mars/Olympus' } });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('That time zone is unknown');
    const saved = await agent.visit(`${server.url}/account/profile`, { form: { _csrf: csrfOf(page), name: 'Grace', locale: 'ko', time_zone: 'Asia/Seoul' } });
    expect(saved.html).toContain('프로필을 저장했습니다.');
    expect(await server.latchkey.queries.users.findById(user.id)).toMatchObject({ name: 'Grace', locale: 'ko', time_zone: 'Asia/Seoul' });
    const sessions = await agent.visit(`${server.url}/account/sessions`);
    expect(sessions.html).toMatch(/GMT\+9|KST/);
  });

  test('changes the password only with the current one, by the policy, and tells the user', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    const change = (current: string, next: string, again = next) =>
      agent.visit(`${server.url}/account/password`, { form: { _csrf: csrfOf(page), current_password: current, new_password: next, new_password_again: again } });
    expect((await change('wrong', 'a brand new passphrase')).html).toContain('The current password is wrong.');
    expect((await change(user.password, 'a brand new passphrase', 'something else')).html).toContain('The two new passwords');
    await server.latchkey.settings.write('password-policy', { min_length: 20 });
    expect((await change(user.password, 'only 16 letters!')).html).toContain('too short');
    expect((await change(user.password, 'a brand new passphrase')).html).toContain('Your password was changed.');
    await server.latchkey.settings.write('password-policy', { min_length: 8 });
    const row = await server.latchkey.queries.users.findById(user.id);
    expect((await server.latchkey.hasher.verify(row!.password_hash, 'a brand new passphrase')).valid).toBe(true);
    expect(notices.eventsFor(user.id)).toContain('password_changed');
    const failures = await server.latchkey.queries.audit.search({ userId: user.id, action: 'user.password_change', outcome: 'failure', limit: 10 });
    expect(failures).toHaveLength(1);
  });

  test('lists recent sign-ins and signs out the other sessions, keeping this one', async () => {
    const user = await aUser(server.latchkey);
    const other = await consoleSignIn(server.url, user.email, user.password, '/account/sessions');
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/sessions');
    expect(page.html).toContain('This browser');
    expect(page.html.match(/data-session=/g)).toHaveLength(2);
    expect((page.html.match(/<tr><td>/g) ?? []).length).toBeGreaterThanOrEqual(2);
    // Two remembered browsers: this one (its cookie names it) and another.
    const device = (label: string) => ({ id: crypto.randomUUID(), user_id: user.id, public_key_sealed: 'v1.unused', key_thumbprint: crypto.randomUUID(), label, created_at: new Date(), last_used_at: null, expires_at: new Date(Date.now() + 86_400_000) });
    const [mine, theirs] = [device('this browser'), device('another browser')];
    await server.latchkey.queries.rememberedDevices.insert(mine);
    await server.latchkey.queries.rememberedDevices.insert(theirs);
    agent.setCookie('lk_device', mine.id);
    const done = await agent.visit(`${server.url}/account/sessions/sign-out-others`, { form: { _csrf: csrfOf(page) } });
    expect(done.html).toContain('Your other sessions were signed out.');
    expect(await server.database.db('remembered_devices').where({ user_id: user.id }).pluck('id')).toEqual([mine.id]);
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(1);
    const kicked = await other.agent.visit(`${server.url}/account/sessions`);
    expect(kicked.html).toContain('name="password"');
    expect(notices.eventsFor(user.id)).toContain('signed_out_elsewhere');
  });
});

describe('the admin console by role', () => {
  test('an auditor reads users, settings and the audit log, but cannot change settings', async () => {
    const auditor = await aUser(server.latchkey, { roles: ['auditor'] });
    const { agent, page } = await consoleSignIn(server.url, auditor.email, auditor.password, '/admin/settings');
    expect(page.status).toBe(200);
    expect(page.html.replace(/<form[^>]*action="\/account\/sign-out"[\s\S]*?<\/form>/, '')).not.toContain('type="submit"');
    const attempt = await agent.visit(`${server.url}/admin/settings/enforce-mfa`, { form: { _csrf: csrfOf(page), version: '0', enforce: 'on' } });
    expect(attempt.status).toBe(403);
    expect((await server.latchkey.mfa.readEnforcement()).value).toBe(false);
    expect((await agent.visit(`${server.url}/admin/audit?action=login.`)).html).toContain('login.password');
    expect((await agent.visit(`${server.url}/admin/clients`)).status).toBe(200);
    const csv = await agent.request(`${server.url}/admin/audit/export.csv?action=login.`);
    expect(csv.headers.get('content-type')).toContain('text/csv');
  });

  test('a credential manager sees doors and people but not settings, and generates an MFA code', async () => {
    const manager = await aUser(server.latchkey, { roles: ['access_credential_manager'] });
    const person = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, manager.email, manager.password, `/admin/users/${person.id}`);
    expect(page.status).toBe(200);
    expect(page.html).not.toContain('/reset-mfa');
    const generated = await agent.visit(`${server.url}/admin/users/${person.id}/mfa-codes`, { form: { _csrf: csrfOf(page), length: '8' } });
    expect(generated.html).toMatch(/data-generated-code>\d{8}</);
    expect(await server.latchkey.access.listCodes(person.id)).toHaveLength(1);
    expect((await agent.visit(`${server.url}/admin/settings`)).status).toBe(403);
    const doors = await agent.visit(`${server.url}/admin/doors`);
    expect(doors.html).toContain('/admin/doors/import');
    const importPage = await agent.visit(`${server.url}/admin/doors/import`);
    const report = await agent.visit(`${server.url}/admin/doors/import`, { form: { _csrf: csrfOf(importPage), csv: 'email,name,kind,value\nbad-email,X,card,ZZ-1\n', dry_run: 'on' } });
    expect(report.status).toBe(422);
    expect(report.html).toContain('Line 2');
  });
});
