import { expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import type { BrowserContext, Page } from 'playwright-core';
import { artifactPath } from '../helpers/chromium.js';
import { aClient, APP_ORIGIN, aUser, CALLBACK } from '../helpers/factories.js';
import { relyingParty } from '../helpers/relying-party.js';
import { browserTestbed } from '../helpers/browser-testbed.js';

const bed = browserTestbed();

type TestUser = Awaited<ReturnType<typeof aUser>>;

/** A new browser (no cookies) whose requests to the app are answered by the test, with every page's HTML kept. */
async function aBrowser(locale = 'en-GB') {
  const context = await bed.browser.newContext({ locale });
  await context.route(`${APP_ORIGIN}**`, (route) => route.fulfill({ body: 'signed in', contentType: 'text/plain' }));
  const page = await context.newPage();
  // Dangerous buttons ask first; the user says yes.
  page.on('dialog', (dialog) => void dialog.accept());
  const documents: Array<Promise<string>> = [];
  page.on('response', (response) => {
    if (response.request().resourceType() === 'document' && response.url().startsWith(bed.server.url)) documents.push(response.text().catch(() => ''));
  });
  return { context, page, pagesSeen: () => Promise.all(documents) };
}

/**
 * The app sends the browser to sign in (no prompt parameter: the app does not insist on consent). Signs in with the
 * password if asked, allows if asked, and returns whether the consent page was shown; the code is exchanged with
 * openid-client.
 */
async function signIntoApp(page: Page, config: oidc.Configuration, user: TestUser, screenshot?: string) {
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'app' });
  await page.goto(url.toString());
  const landed = await Promise.race([
    page.getByLabel('Password').waitFor().then(() => 'login' as const),
    page.getByRole('heading', { name: 'Allow access?' }).waitFor().then(() => 'consent' as const),
    page.waitForURL(`${CALLBACK}**`).then(() => 'app' as const),
  ]);
  if (landed === 'login') {
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  const next = landed === 'app' ? 'app' : await Promise.race([
    page.getByRole('heading', { name: 'Allow access?' }).waitFor().then(() => 'consent' as const),
    page.waitForURL(`${CALLBACK}**`).then(() => 'app' as const),
  ]);
  if (next === 'consent') {
    if (screenshot) await page.screenshot({ path: artifactPath(screenshot), fullPage: true });
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${CALLBACK}**`);
  }
  const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: 'app' });
  expect(tokens.claims()!.sub).toBe(user.id);
  return { askedConsent: next === 'consent' };
}

async function closeAll(...contexts: BrowserContext[]) {
  for (const context of contexts) await context.close();
}

test('consent is remembered in a new browser; revoking the app on the account page makes it ask again', async () => {
  const user = await aUser(bed.server.latchkey);
  const client = await aClient(bed.server.latchkey, { client_name: 'Photo Album' });
  const config = await relyingParty(bed.server.url, client.clientId, client.clientSecret);

  const first = await aBrowser();
  expect(await signIntoApp(first.page, config, user, 'consent-en.png')).toEqual({ askedConsent: true });

  // Another browser, with no session: the password is asked, the consent is not.
  const second = await aBrowser();
  expect(await signIntoApp(second.page, config, user)).toEqual({ askedConsent: false });
  expect((await second.pagesSeen()).some((html) => html.includes('Allow access?'))).toBe(false);

  // The account page (same session) lists the app and this browser; revoking takes the app's access back.
  await second.page.goto(`${bed.server.url}/account/sessions`);
  const app = second.page.locator(`tr[data-app="${client.clientId}"]`);
  await app.getByText('Photo Album').waitFor();
  await app.getByText('See your email address').waitFor();
  const here = second.page.locator('tr[data-session]', { hasText: 'This browser' });
  await here.getByText('Chrome, Linux').waitFor();
  await here.getByText('Photo Album').waitFor();
  await second.page.screenshot({ path: artifactPath('account-sessions-en.png'), fullPage: true });
  await app.getByRole('button', { name: 'Revoke access of Photo Album' }).click();
  await second.page.getByText('The app\'s access was revoked.').waitFor();
  expect(await second.page.locator(`tr[data-app="${client.clientId}"]`).count()).toBe(0);
  const [revoked] = await bed.server.latchkey.queries.audit.list({ subjectId: user.id, action: 'user.app_revoked' });
  expect(revoked).toMatchObject({ actor_id: user.id, client_id: client.clientId });

  // The same browser, still signed in to Latchkey, goes back to the app: consent is asked again.
  expect(await signIntoApp(second.page, config, user)).toEqual({ askedConsent: true });
  await closeAll(first.context, second.context);
});

test('sign out from a console page ends the session, in English and Korean', async () => {
  for (const [locale, labels] of [
    ['en-GB', { email: 'Email', password: 'Password', submit: 'Sign in', signOut: 'Sign out', signedOut: 'You are signed out' }],
    ['ko-KR', { email: '이메일', password: '비밀번호', submit: '로그인', signOut: '로그아웃', signedOut: '로그아웃되었습니다' }],
  ] as const) {
    const user = await aUser(bed.server.latchkey, { roles: ['auditor'] });
    const { context, page } = await aBrowser(locale);
    await page.goto(`${bed.server.url}/admin/users`);
    await page.getByLabel(labels.email, { exact: true }).fill(user.email);
    await page.getByLabel(labels.password, { exact: true }).fill(user.password);
    await page.getByRole('button', { name: labels.submit, exact: true }).click();
    await page.getByRole('navigation').first().getByRole('button', { name: labels.signOut }).click();
    await page.getByRole('heading', { name: labels.signedOut }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/account/signed-out');
    await page.screenshot({ path: artifactPath(`signed-out-${locale.slice(0, 2)}.png`), fullPage: true });
    expect(await bed.server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(0);
    // Back, or straight to a console page: the password is asked again.
    await page.goto(`${bed.server.url}/account/profile`);
    await page.getByLabel(labels.password, { exact: true }).waitFor();
    await context.close();
  }
});
