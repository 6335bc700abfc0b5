import { expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { ACR } from '../../src/mfa/policy.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { artifactPath, virtualAuthenticator } from '../helpers/chromium.js';
import { aClient, APP_ORIGIN, aUser, CALLBACK } from '../helpers/factories.js';
import { recordingNotifier } from '../helpers/mfa.js';
import { relyingParty } from '../helpers/relying-party.js';
import { browserTestbed } from '../helpers/browser-testbed.js';

const notices = recordingNotifier();
const bed = browserTestbed({ hostname: 'localhost', notifier: notices.notifier });

type Authenticator = Awaited<ReturnType<typeof virtualAuthenticator>>;
type Credential = Awaited<ReturnType<Authenticator['credentials']>>[number];

async function signInToAccount(page: Page, user: { email: string; password: string }) {
  await page.goto(`${bed.server.url}/account/security`);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Sign-in & security' }).waitFor();
}

/** A user who added a passkey on their account page, in a browser with a virtual authenticator; returns the passkey. */
async function userWithPasskey(name = 'Work laptop'): Promise<{ user: Awaited<ReturnType<typeof aUser>>; passkey: Credential }> {
  const user = await aUser(bed.server.latchkey, { name: 'Pat Passkey' });
  const context = await bed.browser.newContext({ locale: 'en-GB' });
  const page = await context.newPage();
  const authenticator = await virtualAuthenticator(context, page);
  await signInToAccount(page, user);
  await page.getByLabel('Passkey name').fill(name);
  // The password just typed at sign-in counts as recent: no second password page.
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await page.getByRole('button', { name: 'Create the passkey' }).click();
  // The first factor comes with recovery codes, shown once.
  await page.locator('#recovery-codes li').first().waitFor();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('tr', { hasText: name }).getByText('Passkey · this device only').waitFor();
  const [passkey] = await authenticator.credentials();
  expect(passkey).toMatchObject({ rpId: 'localhost', isResidentCredential: true });
  await context.close();
  return { user, passkey: passkey! };
}

/**
 * A fresh browser with a virtual authenticator, about to follow an app's authorization request (`open()`). With
 * `autofill`, the login page's conditional request takes up a passkey at once (the virtual authenticator needs no
 * click to pick it); without, the browser says it has no autofill, as one whose user types instead.
 */
async function appSignIn(params: Record<string, string> = {}, options: { isUserVerified?: boolean; autofill?: boolean } = {}) {
  const client = await aClient(bed.server.latchkey, { first_party: true });
  const config = await relyingParty(bed.server.url, client.clientId, client.clientSecret);
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'passkey', ...params });
  const context = await bed.browser.newContext({ locale: 'en-GB' });
  if (!options.autofill) await context.addInitScript('if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;');
  const callback = new Promise<string>((resolve) => {
    void context.route(`${APP_ORIGIN}**`, async (route) => {
      resolve(route.request().url());
      await route.fulfill({ body: 'signed in', contentType: 'text/plain' });
    });
  });
  const page = await context.newPage();
  const authenticator = await virtualAuthenticator(context, page, options);
  const tokens = async () => oidc.authorizationCodeGrant(config, new URL(await callback), { pkceCodeVerifier: verifier, expectedState: 'passkey' });
  return { context, page, authenticator, tokens, open: () => page.goto(url.toString()) };
}

const auditOf = (userId: string, action: string) => bed.server.latchkey.queries.db('audit_events').where({ subject_id: userId, action }).orderBy('id');
const PASSKEY_FAILED = "That passkey didn't work. Try again, or sign in with your password.";

// Code that runs in the page, as text: the test project has no DOM types. It posts a response through the page's
// own passkey form, as the page's script would.
const postThroughForm = (response: string) => `(() => {
  const form = document.querySelector('form[data-passkey]');
  form.querySelector('input[name="code"]').value = ${JSON.stringify(response)};
  form.submit();
})()`;

test('a user adds a passkey on the account page; it is audited, they are told, and the admin page shows it', async () => {
  const { user, passkey } = await userWithPasskey('Work laptop');
  const [credential] = await bed.server.latchkey.queries.db('webauthn_credentials').where({ user_id: user.id });
  expect(credential).toMatchObject({ backup_eligible: false, transports: ['internal'] });
  expect((await auditOf(user.id, 'mfa.enrol')).map((e) => [e.outcome, e.details.factor])).toEqual([['success', 'passkey']]);
  expect(notices.sent.filter((n) => n.userId === user.id)).toEqual([expect.objectContaining({ event: 'factor_added', details: { factor: 'passkey' } })]);

  const admin = await aUser(bed.server.latchkey, { roles: ['super_admin'] });
  const context = await bed.browser.newContext({ locale: 'en-GB' });
  const page = await context.newPage();
  await page.goto(`${bed.server.url}/admin/users/${user.id}`);
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password').fill(admin.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByText('Passkey: Work laptop (this device only)').waitFor();
  await context.close();

  // Back in their account (through the passkey's autofill), the user renames it, then removes it.
  const own = await bed.browser.newContext({ locale: 'en-GB' });
  const tab = await own.newPage();
  await (await virtualAuthenticator(own, tab)).add(passkey);
  await tab.goto(`${bed.server.url}/account/security`);
  await tab.getByRole('heading', { name: 'Sign-in & security' }).waitFor();
  await tab.getByLabel('Nickname for Work laptop').fill('Old laptop');
  await tab.getByRole('button', { name: 'Rename' }).click();
  // Signed in by passkey, no password was typed: it is asked, then the rename goes through with the name typed.
  await tab.getByLabel('Password').fill(user.password);
  await tab.getByRole('button', { name: 'Confirm' }).click();
  await tab.getByText('The method was renamed.').waitFor();
  await tab.locator('tr', { hasText: 'Old laptop' }).getByText('Passkey · this device only').waitFor();
  await tab.getByRole('button', { name: 'Remove' }).click();
  // Removing asks first.
  await tab.getByText('Remove “Old laptop”?').waitFor();
  await tab.getByRole('button', { name: 'Remove' }).click();
  await tab.getByText('The method was removed.').waitFor();
  expect(await bed.server.latchkey.queries.db('webauthn_credentials').where({ user_id: user.id })).toEqual([]);
  expect((await auditOf(user.id, 'mfa.remove')).map((e) => e.details.factor)).toEqual(['passkey']);
  expect(notices.eventsFor(user.id)).toEqual(['factor_added', 'factor_removed']);
  await own.close();
});

test('passwordless with the button: no password typed; amr hwk user mfa, acr phr', async () => {
  const { user, passkey } = await userWithPasskey();
  const { context, page, authenticator, tokens, open } = await appSignIn();
  await open();
  expect(await page.getByLabel('Email').getAttribute('autocomplete')).toBe('username webauthn');
  await authenticator.add(passkey);
  await page.screenshot({ path: artifactPath('login-passkey.png'), fullPage: true });
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  const claims = (await tokens()).claims()!;
  expect(claims.sub).toBe(user.id);
  expect(claims.amr).toEqual(['hwk', 'user', 'mfa']);
  expect(claims.acr).toBe(ACR.phr);
  expect((await auditOf(user.id, 'login.passwordless')).map((e) => e.outcome)).toEqual(['success']);
  // The only password this user ever typed was to sign in to the account page, before adding the passkey (it also
  // counted as the recent password entry that adding a passkey needs).
  expect((await auditOf(user.id, 'login.password')).map((e) => e.outcome)).toEqual(['success']);
  await context.close();
});

test('passwordless through autofill (conditional UI), asked for by acr_values phr', async () => {
  const { user, passkey } = await userWithPasskey();
  const { context, authenticator, tokens, open } = await appSignIn({ acr_values: ACR.phr }, { autofill: true });
  await authenticator.add(passkey);
  await open();
  const claims = (await tokens()).claims()!;
  expect(claims).toMatchObject({ sub: user.id, amr: ['hwk', 'user', 'mfa'], acr: ACR.phr });
  await context.close();
});

test('second factor: password, then "Use a passkey"; amr pwd hwk user mfa, acr phr', async () => {
  const { user, passkey } = await userWithPasskey();
  const { context, page, authenticator, tokens, open } = await appSignIn();
  await open();
  await authenticator.add(passkey);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByText('Use one of your passkeys').waitFor();
  await page.screenshot({ path: artifactPath('mfa-passkey.png'), fullPage: true });
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  const claims = (await tokens()).claims()!;
  expect(claims.amr).toEqual(['pwd', 'hwk', 'user', 'mfa']);
  expect(claims.acr).toBe(ACR.phr);
  await context.close();
});

test('an assertion without user verification is refused for passwordless', async () => {
  const { user, passkey } = await userWithPasskey();
  const { context, page, authenticator, open } = await appSignIn({}, { isUserVerified: false });
  await open();
  await authenticator.add(passkey);
  // The page asks for user verification, which this authenticator does not give: a modified page asks without it
  // and posts what the authenticator returns, to see whether the server checks the flag itself.
  await page.waitForFunction('"SimpleWebAuthnBrowser" in window');
  const response = await page.evaluate(`(async () => {
    const options = JSON.parse(document.querySelector('form[data-passkey]').getAttribute('data-passkey-options'));
    options.userVerification = 'discouraged';
    return JSON.stringify(await SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: options }));
  })()`) as string;
  const flags = Buffer.from(JSON.parse(response).response.authenticatorData, 'base64url')[32]!;
  expect(flags & 0x04).toBe(0);
  await page.evaluate(postThroughForm(response));
  await page.getByText(PASSKEY_FAILED).waitFor();
  expect(page.url()).not.toContain(CALLBACK);
  const failures = await auditOf(user.id, 'login.passwordless');
  expect(failures.map((e) => [e.outcome, e.details.reason])).toEqual([['failure', 'no_user_verification']]);
  await context.close();
});

test('a passkey registered for another RP ID is refused', async () => {
  const { user } = await userWithPasskey();
  const { context, page, authenticator, open } = await appSignIn();
  await open();
  const login = page.url();
  // A look-alike site (other.localhost) made a passkey for its own RP ID, naming our user.
  const bundle = fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules/@simplewebauthn/browser/dist/bundle/index.umd.min.js'), 'utf8');
  const lookAlikeUrl = `http://other.localhost:${new URL(bed.server.url).port}/`;
  await context.route(`${lookAlikeUrl}**`, (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>look-alike</title><script>${bundle}</script>` }));
  const lookAlike = await context.newPage();
  const theirs = await virtualAuthenticator(context, lookAlike);
  await lookAlike.goto(lookAlikeUrl);
  await lookAlike.evaluate(`SimpleWebAuthnBrowser.startRegistration({ optionsJSON: {
    rp: { id: 'other.localhost', name: 'Look-alike' },
    user: { id: ${JSON.stringify(Buffer.from(user.id).toString('base64url'))}, name: 'victim', displayName: 'victim' },
    challenge: 'AAAAAAAAAAAAAAAAAAAAAA',
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
  } })`);
  // The same authenticator serves both tabs, as in one real browser.
  const [made] = await theirs.credentials();
  expect(made).toMatchObject({ rpId: 'other.localhost' });
  await authenticator.add(made!);

  // Our login page is not offered it: the browser gives a page only the passkeys of its own RP ID.
  await page.bringToFront();
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  await page.getByText('The passkey request was cancelled or did not finish. Try again.').waitFor();
  expect(page.url()).toBe(login);

  // Relayed: the look-alike signs our sign-in's challenge with its passkey, and the assertion is posted to us.
  const challenge = JSON.parse((await page.locator('form[data-passkey]').getAttribute('data-passkey-options'))!).challenge as string;
  const relayed = (await lookAlike.evaluate(`(async () => JSON.stringify(await SimpleWebAuthnBrowser.startAuthentication({
    optionsJSON: { challenge: ${JSON.stringify(challenge)}, rpId: 'other.localhost', userVerification: 'required' },
  })))()`)) as string;
  await page.evaluate(postThroughForm(relayed));
  await page.getByText(PASSKEY_FAILED).waitFor();
  const refused = await bed.server.latchkey.queries.db('audit_events').where({ action: 'login.passwordless', outcome: 'failure' }).whereRaw("details->>'reason' = 'unknown_credential'");
  expect(refused).toHaveLength(1);
  await context.close();
});
