import { beforeAll, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import type { BrowserContext, Page } from 'playwright-core';
import { ACR } from '../../src/mfa/policy.js';
import { artifactPath } from '../helpers/chromium.js';
import { aClient, APP_ORIGIN, aUser, CALLBACK } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { relyingParty } from '../helpers/relying-party.js';
import { browserTestbed } from '../helpers/browser-testbed.js';

const clock = steppingClock();
let config: oidc.Configuration;
const bed = browserTestbed({ clock });
beforeAll(async () => {
  await bed.server.latchkey.settings.write('remember-device', { days: 30 });
  const client = await aClient(bed.server.latchkey, { first_party: true });
  config = await relyingParty(bed.server.url, client.clientId, client.clientSecret);
});

/**
 * One sign-in to an app in this browser, forced to ask for the password again (`prompt=login`) even though the
 * browser has a session; `secondStep` does whatever the page after the password needs. Returns the ID token's claims.
 */
async function signInToApp(context: BrowserContext, user: { email: string; password: string }, secondStep: (page: Page) => Promise<void>) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid email', prompt: 'login', state, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
  const callback = new Promise<string>((resolve) => {
    void context.route(`${APP_ORIGIN}**`, async (route) => {
      resolve(route.request().url());
      await route.fulfill({ body: 'signed in', contentType: 'text/plain' });
    });
  });
  const page = await context.newPage();
  await page.goto(url.toString());
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await secondStep(page);
  const tokens = await oidc.authorizationCodeGrant(config, new URL(await callback), { pkceCodeVerifier: verifier, expectedState: state });
  await context.unrouteAll();
  await page.close();
  return tokens.claims()!;
}

const typeCode = (secret: string, remember = false) => async (page: Page) => {
  clock.nextStep();
  await page.getByLabel('Code').fill(referenceTotp(secret, clock.now()));
  if (remember) {
    await page.getByLabel("Don't ask for the second step again in this browser for 30 days").check();
    // The key is made and stored before the form carries its public half.
    // (a hidden input's value is its attribute, which a selector can wait for)
    await page.locator('input[name="remember_key"]:not([value=""])').waitFor({ state: 'attached' });
    await page.screenshot({ path: artifactPath('mfa-remember.png'), fullPage: true });
  }
  await page.getByRole('button', { name: 'Verify' }).click();
};
const remembered = async () => undefined;
const auditOf = (userId: string, action: string) => bed.server.database.db('audit_events').where({ subject_id: userId, action }).orderBy('id');

test('a remembered browser skips the second factor; the same cookies in another browser do not', async () => {
  const user = await aUser(bed.server.latchkey, { name: 'Rem Ember' });
  const { secret } = await enrolTotp(bed.server.latchkey, user, clock);
  const home = await bed.browser.newContext({ locale: 'en-GB' });

  // Password and authenticator code, ticking "remember".
  const first = await signInToApp(home, user, typeCode(secret, true));
  expect(first).toMatchObject({ sub: user.id, amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
  const [device] = await bed.server.database.db('remembered_devices').where({ user_id: user.id });
  expect(device).toMatchObject({ label: 'Chrome, Linux' });
  const cookie = (await home.cookies()).find((c) => c.name === 'lk_device')!;
  expect(cookie).toMatchObject({ value: device.id, httpOnly: true, sameSite: 'Lax' });

  // The same browser: the password, and the page answers the second step by itself.
  const second = await signInToApp(home, user, remembered);
  expect(second).toMatchObject({ sub: user.id, amr: ['pwd', 'pop', 'mfa'], acr: ACR.mfa });
  expect((await auditOf(user.id, 'mfa.remembered_device')).map((e) => e.outcome)).toEqual(['success']);

  // Every cookie copied into a fresh browser: no key there, so the second factor is asked as usual.
  const elsewhere = await bed.browser.newContext({ locale: 'en-GB' });
  await elsewhere.addCookies(await home.cookies());
  const copied = await signInToApp(elsewhere, user, async (page) => {
    // The server did offer this browser a challenge (the cookie names the device); only the key could answer it.
    await page.locator('form[data-remembered-device]').waitFor({ state: 'attached' });
    await typeCode(secret)(page);
  });
  expect(copied).toMatchObject({ sub: user.id, amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
  expect((await auditOf(user.id, 'mfa.remembered_device')).map((e) => e.outcome)).toEqual(['success']);
  await elsewhere.close();

  // The user forgets the browser on their account page; the next sign-in there asks for the second factor again.
  const account = await home.newPage();
  await account.goto(`${bed.server.url}/account/security`);
  // The console signs in like any app: the password, and this browser answers the second step again.
  await account.getByLabel('Email').fill(user.email);
  await account.getByLabel('Password').fill(user.password);
  await account.getByRole('button', { name: 'Sign in', exact: true }).click();
  await account.getByRole('heading', { name: 'Remembered browsers' }).waitFor();
  await account.getByRole('button', { name: 'Forget', exact: true }).click();
  await account.getByText('That browser was forgotten').waitFor();
  expect(await bed.server.database.db('remembered_devices').where({ user_id: user.id })).toEqual([]);
  await account.close();
  const afterForget = await signInToApp(home, user, typeCode(secret));
  expect(afterForget.amr).toEqual(['pwd', 'otp', 'mfa']);
  await home.close();
});

test('without JavaScript there is nothing to tick, and nothing is remembered', async () => {
  const user = await aUser(bed.server.latchkey);
  const { secret } = await enrolTotp(bed.server.latchkey, user, clock);
  const plain = await bed.browser.newContext({ locale: 'en-GB', javaScriptEnabled: false });
  const claims = await signInToApp(plain, user, async (page) => {
    expect(await page.getByLabel("Don't ask for the second step again in this browser for 30 days").isVisible()).toBe(false);
    await typeCode(secret)(page);
  });
  expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
  expect(await bed.server.database.db('remembered_devices').where({ user_id: user.id })).toEqual([]);
  await plain.close();
});
