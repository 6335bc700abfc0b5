import { expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { appSignIn } from '../helpers/browser-app.js';
import { aClient, aUser, CALLBACK } from '../helpers/factories.js';
import { artifactPath, decodeQr } from '../helpers/chromium.js';
import { steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { relyingParty } from '../helpers/relying-party.js';
import { browserTestbed } from '../helpers/browser-testbed.js';

const clock = steppingClock();
const bed = browserTestbed({ clock });

test('a user enrols TOTP by scanning the QR code on the page, then signs in to an app with it', async () => {
  const user = await aUser(bed.server.latchkey, { name: 'Grace Hopper' });
  const context = await bed.browser.newContext({ locale: 'en-GB' });
  const page = await context.newPage();

  await page.goto(`${bed.server.url}/account/security`);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Sign-in & security' })).toBeTruthy();
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();

  const qr = page.locator('#totp-qr');
  await qr.waitFor();
  await page.screenshot({ path: artifactPath('enrol-totp.png'), fullPage: true });
  const uri = new URL(await decodeQr(qr));
  expect(uri.protocol).toBe('otpauth:');
  expect(uri.searchParams.get('issuer')).toBe('Latchkey');
  const secret = uri.searchParams.get('secret')!;
  // The key shown for manual entry is the same secret.
  expect((await page.locator('#totp-secret').innerText()).replace(/\s/g, '')).toBe(secret);

  await page.getByLabel('Code').fill(referenceTotp(secret, clock.now()));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(await page.locator('#recovery-codes li').count()).toBe(10);
  await page.getByRole('button', { name: 'Continue' }).click();
  expect(await page.locator('.badge').innerText()).toBe('Preferred');
  await context.close();

  // A fresh browser signs in to an app: password, then a code from the scanned secret.
  const app = await appSignIn(bed.browser, bed.server.latchkey, bed.server.url);
  const tokens = await app.passwordAndTotp(user.email, user.password, () => {
    clock.nextStep();
    return referenceTotp(secret, clock.now());
  });
  expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
  await app.context.close();
});

test('the sign-in page renders in Korean for a Korean browser', async () => {
  const client = await aClient(bed.server.latchkey);
  const config = await relyingParty(bed.server.url, client.clientId, client.clientSecret);
  const context = await bed.browser.newContext({ locale: 'ko-KR', extraHTTPHeaders: { 'accept-language': 'ko-KR,ko;q=0.9' } });
  const page = await context.newPage();
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
  await page.goto(url.toString());
  expect(await page.getByRole('heading').first().innerText()).toBe('로그인');
  expect(await page.getByLabel('비밀번호').count()).toBe(1);
  await page.screenshot({ path: artifactPath('login-ko.png'), fullPage: true });
  await context.close();
});
