import * as oidc from 'openid-client';
import type { Browser, BrowserContextOptions } from 'playwright-core';
import type { Latchkey } from '../../src/app.js';
import { aClient, APP_ORIGIN, CALLBACK } from './factories.js';
import { relyingParty } from './relying-party.js';

/**
 * An app (openid-client, PKCE and state) sending a fresh Chromium context to sign in; the browser stops when it is
 * sent back to the app, whose callback URL is kept for the code exchange.
 */
export async function appSignIn(browser: Browser, latchkey: Latchkey, issuer: string, contextOptions: BrowserContextOptions = {}) {
  const client = await aClient(latchkey);
  const config = await relyingParty(issuer, client.clientId, client.clientSecret);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state });
  const context = await browser.newContext(contextOptions);
  let callback = '';
  await context.route(`${APP_ORIGIN}**`, async (route) => {
    callback = route.request().url();
    await route.fulfill({ body: 'signed in', contentType: 'text/plain' });
  });
  const page = await context.newPage();
  await page.goto(url.toString());
  const tokens = () => oidc.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state });
  return {
    context,
    page,
    /** Where the browser was sent back to the app ('' until it was). */
    callbackUrl: () => callback,
    /** The code exchange for the callback the browser reached. */
    tokens,
    /** From the login page: the password, then the authenticator's code (and consent if asked); the app's tokens. */
    async passwordAndTotp(email: string, password: string, code: () => string) {
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByLabel('Code').fill(code());
      await page.getByRole('button', { name: 'Verify' }).click();
      const consent = page.getByRole('button', { name: 'Allow' });
      await consent.waitFor({ timeout: 5000 }).then(() => consent.click(), () => undefined);
      await page.waitForURL(`${CALLBACK}**`);
      return tokens();
    },
  };
}
