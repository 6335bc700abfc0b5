import { expect, test } from '@jest/globals';
import type { Page } from 'playwright-core';
import { aUser } from '../helpers/factories.js';
import { artifactPath } from '../helpers/chromium.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { browserTestbed } from '../helpers/browser-testbed.js';

const clock = steppingClock();
const bed = browserTestbed({ clock });

async function signIn(page: Page, path: string, user: { email: string; password: string }, labels = { email: 'Email', password: 'Password', submit: 'Sign in' }) {
  await page.goto(`${bed.server.url}${path}`);
  await page.getByLabel(labels.email).fill(user.email);
  await page.getByLabel(labels.password).fill(user.password);
  await page.getByRole('button', { name: labels.submit }).click();
}

test('an admin turns on enforcement and resets a user\'s MFA from the console', async () => {
  const admin = await aUser(bed.server.latchkey, { roles: ['super_admin'], name: 'Ada Admin' });
  // Under enforcement the admin pages need a session with a second factor: the admin has one and uses it.
  const { secret } = await enrolTotp(bed.server.latchkey, admin, clock);
  const user = await aUser(bed.server.latchkey, { name: 'Lost Phone' });
  await enrolTotp(bed.server.latchkey, user, clock);
  const context = await bed.browser.newContext({ locale: 'en-GB', timezoneId: 'Asia/Seoul' });
  const page = await context.newPage();

  await signIn(page, '/admin/settings', admin);
  clock.nextStep();
  await page.getByLabel('Code').fill(referenceTotp(secret, clock.now()));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('heading', { name: 'Settings' }).waitFor();
  const enforce = page.getByLabel('Enforce multi-factor authentication');
  expect(await enforce.isChecked()).toBe(false);
  await enforce.check();
  await page.locator('form[action="/admin/settings/enforce-mfa"]').getByRole('button', { name: 'Save' }).click();
  await page.getByText('Settings saved.').waitFor();
  expect(await page.getByLabel('Enforce multi-factor authentication').isChecked()).toBe(true);
  expect((await bed.server.latchkey.mfa.readEnforcement()).value).toBe(true);
  await page.screenshot({ path: artifactPath('admin-settings-en.png'), fullPage: true });

  await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Users' }).click();
  await page.getByLabel('Search by email or name').fill(user.email);
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByRole('link', { name: user.email }).click();
  await page.getByText('Authenticator app').first().waitFor();
  await page.getByRole('link', { name: 'Reset MFA' }).click();
  await page.getByText(`Remove every two-step verification method and recovery code of ${user.email}?`).waitFor();
  await page.getByRole('button', { name: 'Reset MFA' }).click();
  await page.getByText('Two-step verification was reset.').waitFor();
  await page.getByText('None').first().waitFor();
  expect(await bed.server.database.db('user_factors').where({ user_id: user.id })).toHaveLength(0);
  const [reset] = await bed.server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.reset' });
  expect(reset).toMatchObject({ actor_id: admin.id });
  await page.screenshot({ path: artifactPath('admin-user-reset-en.png'), fullPage: true });
  await bed.server.latchkey.mfa.setEnforcement(false, { actorId: admin.id });
  await context.close();
});

test('a user sets their preferred method from the account page', async () => {
  const user = await aUser(bed.server.latchkey, { name: 'Two Methods' });
  const { secret } = await enrolTotp(bed.server.latchkey, user, clock);
  await bed.server.latchkey.access.addMfaCode(user.id, { code: '583920' }, { actorId: null });
  await bed.server.latchkey.access.enableWebPin(user.id, '583920', { actorId: user.id });
  const context = await bed.browser.newContext({ locale: 'en-GB' });
  const page = await context.newPage();

  await signIn(page, '/account/security', user);
  clock.nextStep();
  await page.getByLabel('Code').fill(referenceTotp(secret, clock.now()));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('heading', { name: 'Sign-in & security' }).waitFor();
  const pinRow = page.locator('tr', { hasText: 'Door PIN' });
  expect(await pinRow.locator('.badge').count()).toBe(0);

  await pinRow.getByRole('button', { name: 'Make preferred' }).click();
  await page.getByText('Your preferred method was changed.').waitFor();
  expect(await page.locator('tr', { hasText: 'Door PIN' }).locator('.badge').innerText()).toBe('Preferred');
  expect(await page.locator('tr', { hasText: 'Authenticator app' }).locator('.badge').count()).toBe(0);
  const row = await bed.server.latchkey.queries.users.findById(user.id);
  expect(row!.preferred_factor_id).toBe('pin');
  await page.screenshot({ path: artifactPath('account-preferred-en.png'), fullPage: true });
  await context.close();
});

test('the consoles render in Korean for a Korean browser', async () => {
  const admin = await aUser(bed.server.latchkey, { roles: ['super_admin'], name: '김관리' });
  const site = await bed.server.latchkey.access.createSite({ name: '서울 본사', time_zone: 'Asia/Seoul' }, { actorId: null });
  await bed.server.latchkey.access.createSchedule(site.id, { name: '평일 근무', windows: [{ days: [1, 2, 3, 4, 5], start: 480, end: 1080, mode: 'card_and_code' }] }, { actorId: null });
  const context = await bed.browser.newContext({ locale: 'ko-KR', timezoneId: 'Asia/Seoul', extraHTTPHeaders: { 'accept-language': 'ko-KR,ko;q=0.9' } });
  const page = await context.newPage();
  await signIn(page, '/admin/users', admin, { email: '이메일', password: '비밀번호', submit: '로그인' });

  const pages: Array<[path: string, heading: string, shot: string]> = [
    ['/admin/users', '사용자', 'admin-users-ko.png'],
    ['/admin/settings', '설정', 'admin-settings-ko.png'],
    ['/admin/audit', '감사 로그', 'admin-audit-ko.png'],
    ['/admin/clients', '앱', 'admin-clients-ko.png'],
    [`/admin/doors/sites/${site.id}`, '서울 본사', 'admin-site-ko.png'],
    ['/admin/doors/import', 'CSV 가져오기', 'admin-import-ko.png'],
    ['/account/profile', '프로필', 'account-profile-ko.png'],
    ['/account/security', '로그인 및 보안', 'account-security-ko.png'],
    ['/account/sessions', '세션 및 기기', 'account-sessions-ko.png'],
  ];
  for (const [path, heading, shot] of pages) {
    await page.goto(`${bed.server.url}${path}`);
    expect([path, await page.getByRole('heading', { level: 1 }).innerText()]).toEqual([path, heading]);
    expect(await page.locator('html').getAttribute('lang')).toBe('ko');
    await page.screenshot({ path: artifactPath(shot), fullPage: true });
  }
  // The weekly grid names the days and modes in Korean; dates show in the viewer's zone.
  await page.goto(`${bed.server.url}/admin/doors/sites/${site.id}`);
  expect(await page.locator('table.week th').allInnerTexts()).toEqual(expect.arrayContaining(['월', '금']));
  expect(await page.locator('table.week td.mode-card_and_code').first().innerText()).toBe('카드 + 코드');
  await page.goto(`${bed.server.url}/account/sessions`);
  expect(await page.locator('tr[data-session] td').nth(2).innerText()).toMatch(/KST|GMT\+9/);
  await context.close();
});
