import { expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import type { Page } from 'playwright-core';
import { aClient, APP_ORIGIN, aUser, CALLBACK } from '../helpers/factories.js';
import { artifactPath } from '../helpers/chromium.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { relyingParty } from '../helpers/relying-party.js';
import { browserTestbed } from '../helpers/browser-testbed.js';

const clock = steppingClock();
const bed = browserTestbed({ clock });

async function signIn(page: Page, path: string, user: { email: string; password: string }) {
  await page.goto(`${bed.server.url}${path}`);
  await page.locator('input[name="email"]').fill(user.email);
  await page.locator('input[name="password"]').fill(user.password);
  await page.locator('form[action$="/login"] button[type="submit"]').click();
}

test('a refused form comes back in place: what was typed is still there, the error is on its field', async () => {
  const admin = await aUser(bed.server.latchkey, { roles: ['super_admin'] });
  const context = await bed.browser.newContext({ locale: 'en-GB' });
  const page = await context.newPage();
  await signIn(page, '/admin/clients', admin);
  await page.getByRole('heading', { name: 'Apps' }).waitFor();

  await page.getByLabel('Name').fill('Typed app');
  await page.getByLabel('Redirect URI').fill('not a redirect uri');
  await page.getByLabel('Requires MFA').check();
  await page.getByRole('button', { name: 'Register' }).click();

  const uri = page.getByLabel('Redirect URI');
  await page.locator('#redirect-uri-error').waitFor();
  expect(await uri.getAttribute('aria-invalid')).toBe('true');
  // The error text is what a screen reader hears with the field.
  expect(await uri.getAttribute('aria-describedby')).toBe('redirect-uri-error');
  expect(await uri.inputValue()).toBe('not a redirect uri');
  expect(await page.getByLabel('Name').inputValue()).toBe('Typed app');
  expect(await page.getByLabel('Requires MFA').isChecked()).toBe(true);
  await page.screenshot({ path: artifactPath('form-error-client-en.png'), fullPage: true });

  // Fixed in place, it registers; Back from the result does not post the form again.
  await uri.fill('https://typed.example.test/callback');
  await page.getByRole('button', { name: 'Register' }).click();
  await page.locator('[data-client-secret]').waitFor();
  expect(await page.locator('h1').innerText()).toBe('Typed app');

  // The account's profile, in Korean: the same mechanism, the message in the user's language.
  const user = await aUser(bed.server.latchkey);
  await bed.server.latchkey.queries.users.update(user.id, { locale: 'ko' });
  const own = await bed.browser.newContext({ locale: 'ko-KR' });
  const tab = await own.newPage();
  await signIn(tab, '/account/profile', user);
  await tab.locator('#time_zone').waitFor();
  await tab.locator('#name').fill('이름 그대로');
  await tab.locator('#time_zone').fill('Mars/Olympus');
  await tab.locator('form[action="/account/profile"] button[type="submit"]').click();
  await tab.locator('#time_zone-error').waitFor();
  expect(await tab.locator('#name').inputValue()).toBe('이름 그대로');
  expect(await tab.locator('#time_zone').inputValue()).toBe('Mars/Olympus');
  expect(await tab.locator('#time_zone').getAttribute('aria-invalid')).toBe('true');
  expect(await tab.locator('#time_zone-error').innerText()).not.toMatch(/[A-Za-z]{6,}/);
  await tab.screenshot({ path: artifactPath('form-error-profile-ko.png'), fullPage: true });
  await context.close();
  await own.close();
});

test('too many wrong codes: a Latchkey page says what happened and when to try again, and leads back to the app', async () => {
  const user = await aUser(bed.server.latchkey);
  await enrolTotp(bed.server.latchkey, user, clock);
  const client = await aClient(bed.server.latchkey, { client_name: 'Forms demo app' });
  const config = await relyingParty(bed.server.url, client.clientId, client.clientSecret);
  const verifier = oidc.randomPKCECodeVerifier();
  const authUrl = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'forms' });
  const context = await bed.browser.newContext({ locale: 'en-GB' });
  let callback = '';
  await context.route(`${APP_ORIGIN}**`, async (route) => {
    callback = route.request().url();
    await route.fulfill({ body: 'back in the app', contentType: 'text/plain' });
  });
  const page = await context.newPage();
  await page.goto(authUrl.toString());
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  for (let i = 0; i < 5; i++) {
    await page.getByLabel('Code').fill('000000');
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForLoadState();
  }
  await page.getByRole('heading', { name: 'Sign-in stopped' }).waitFor();
  expect(await page.getByRole('alert').innerText()).toContain('Too many wrong codes');
  expect(await page.locator('[data-try-again]').innerText()).toMatch(/You can try again at .+ \(in about \d+ min\)/);
  await page.screenshot({ path: artifactPath('too-many-codes-en.png'), fullPage: true });

  await page.getByRole('link', { name: 'Back to Forms demo app' }).click();
  await page.getByText('back in the app').waitFor();
  expect(new URL(callback).searchParams.get('error')).toBe('access_denied');
  await context.close();
});
