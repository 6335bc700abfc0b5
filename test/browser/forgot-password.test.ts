import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { artifactPath } from '../helpers/chromium.js';
import { appSignIn } from '../helpers/browser-app.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { browserTestbed } from '../helpers/browser-testbed.js';
import { startSmtpServer } from '../helpers/smtp.js';

const clock = steppingClock();
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
beforeAll(async () => {
  smtp = await startSmtpServer();
});
const bed = browserTestbed(() => ({ clock, env: { LATCHKEY_SMTP_URL: smtp.url } }));
afterAll(async () => {
  await smtp?.close();
});

const NEW_PASSWORD = 'remembered at last, a long one';

test('forgot password: a code from the mail, a new password, back to the app, and the second factor still asked', async () => {
  const user = await aUser(bed.server.latchkey, { name: 'Forgetful Fiona' });
  const { secret } = await enrolTotp(bed.server.latchkey, user, clock);
  const app = await appSignIn(bed.browser, bed.server.latchkey, bed.server.url, { locale: 'en-GB' });
  const { page } = app;
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.getByLabel('Email').fill(user.email);
  await page.screenshot({ path: artifactPath('forgot-password-request-en.png'), fullPage: true });
  await page.getByRole('button', { name: 'Send me a code' }).click();
  await page.getByText('If an account exists for this address, we sent it a code').waitFor();

  // The first mail to the user was the notice of their new authenticator: the reset code follows it.
  let mail = smtp.messages.find((m) => m.subject === 'Reset your Latchkey password');
  for (const deadline = Date.now() + 15_000; !mail && Date.now() < deadline; mail = smtp.messages.find((m) => m.subject === 'Reset your Latchkey password')) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const code = /^\s+(\d{8})$/m.exec(mail?.text ?? '')![1]!;
  await page.getByLabel('Code from the email').fill(code);
  await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await page.getByLabel('New password again').fill(NEW_PASSWORD);
  await page.screenshot({ path: artifactPath('forgot-password-code-en.png'), fullPage: true });
  await page.getByRole('button', { name: 'Set new password' }).click();

  // The same sign-in, on its login page: the new password, then the second factor as always.
  await page.getByText('Your password was changed. Sign in with your new password.').waitFor();
  const tokens = await app.passwordAndTotp(user.email, NEW_PASSWORD, () => {
    clock.nextStep();
    return referenceTotp(secret, clock.now());
  });
  expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
  await app.context.close();
});

test('the forgot password pages in Korean', async () => {
  const { context, page } = await appSignIn(bed.browser, bed.server.latchkey, bed.server.url, { locale: 'ko-KR', extraHTTPHeaders: { 'accept-language': 'ko-KR,ko;q=0.9' } });
  await page.getByRole('link', { name: '비밀번호를 잊으셨나요?' }).click();
  expect(await page.getByRole('heading').first().innerText()).toBe('비밀번호 재설정');
  await page.screenshot({ path: artifactPath('forgot-password-request-ko.png'), fullPage: true });
  await page.getByLabel('이메일').fill('nobody@example.test');
  await page.getByRole('button', { name: '코드 받기' }).click();
  await page.getByText('이 주소로 된 계정이 있으면 코드를 보냈습니다').waitFor();
  await page.screenshot({ path: artifactPath('forgot-password-code-ko.png'), fullPage: true });
  await context.close();
});

test('an admin edits a user: a taken address stays on the form with its error, then a reset code is mailed', async () => {
  const admin = await aUser(bed.server.latchkey, { roles: ['super_admin'], name: 'Ada Admin' });
  const user = await aUser(bed.server.latchkey, { name: 'Forgetful Fred' });
  const other = await aUser(bed.server.latchkey);
  for (const [locale, labels] of [
    ['en-GB', { email: 'Email', password: 'Password', submit: 'Sign in', save: 'Save name and email', send: 'Email a reset code' }],
    ['ko-KR', { email: '이메일', password: '비밀번호', submit: '로그인', save: '이름과 이메일 저장', send: '재설정 코드 이메일로 보내기' }],
  ] as const) {
    const context = await bed.browser.newContext({ locale, extraHTTPHeaders: { 'accept-language': locale } });
    const page = await context.newPage();
    await page.goto(`${bed.server.url}/admin/users/${user.id}`);
    await page.getByLabel(labels.email).fill(admin.email);
    await page.getByLabel(labels.password).fill(admin.password);
    await page.getByRole('button', { name: labels.submit }).click();
    await page.locator('#user-edit-email').fill(other.email);
    await page.getByRole('button', { name: labels.save }).click();
    await page.locator('#user-edit-email[aria-invalid="true"]').waitFor();
    expect(await page.locator('#user-edit-email').inputValue()).toBe(other.email);
    await page.screenshot({ path: artifactPath(`admin-user-edit-error-${locale.slice(0, 2)}.png`), fullPage: true });
    await page.getByRole('button', { name: labels.send }).click();
    await page.waitForURL(/notice=reset_sent/);
    await context.close();
  }
  expect(smtp.messages.filter((m) => m.subject === 'Reset your Latchkey password' && m.text?.includes('An administrator'))).toHaveLength(2);
});
