import { expect, test } from '@jest/globals';
import { ACR } from '../../src/mfa/policy.js';
import { appSignIn } from '../helpers/browser-app.js';
import { aUser, CALLBACK } from '../helpers/factories.js';
import { artifactPath } from '../helpers/chromium.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { browserTestbed } from '../helpers/browser-testbed.js';

const clock = steppingClock();
const bed = browserTestbed({ clock });

test('a super admin issues a helpdesk code in the console; the user signs in to an app with it and must set up a new authenticator first', async () => {
  const admin = await aUser(bed.server.latchkey, { roles: ['super_admin'] });
  const user = await aUser(bed.server.latchkey, { name: 'Lost Phone' });
  await enrolTotp(bed.server.latchkey, user, clock);

  // The console: the user's page, a reason, the code shown on that answer.
  const desk = await bed.browser.newContext({ locale: 'en-GB' });
  const console_ = await desk.newPage();
  await console_.goto(`${bed.server.url}/admin/users/${user.id}`);
  await console_.getByLabel('Email').fill(admin.email);
  await console_.getByLabel('Password').fill(admin.password);
  await console_.getByRole('button', { name: 'Sign in' }).click();
  await console_.getByLabel('Reason (kept in the audit log)').fill('lost phone; identity checked on a video call');
  await console_.getByRole('button', { name: 'Issue a code' }).click();
  const code = (await console_.locator('[data-generated-code]').innerText()).trim();
  expect(code).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
  await console_.screenshot({ path: artifactPath('bypass-code-issued.png'), fullPage: true });
  await desk.close();

  // The user, in another browser, signs in to an app through openid-client's authorization URL.
  const app = await appSignIn(bed.browser, bed.server.latchkey, bed.server.url, { locale: 'en-GB' });
  const tab = app.page;
  await tab.getByLabel('Email').fill(user.email);
  await tab.getByLabel('Password').fill(user.password);
  await tab.getByRole('button', { name: 'Sign in' }).click();
  await tab.getByText('Use another method').click();
  await tab.getByRole('link', { name: 'Use a code from your helpdesk' }).click();
  await tab.getByLabel('Code from your helpdesk').fill(code);
  await tab.getByRole('button', { name: 'Verify' }).click();

  // No way on but a new authenticator: the page says why, and the app has nothing yet.
  await tab.getByText('Your helpdesk code was accepted').waitFor();
  expect(app.callbackUrl()).toBe('');
  await tab.screenshot({ path: artifactPath('bypass-code-enrol.png'), fullPage: true });
  const secret = (await tab.locator('#totp-secret').innerText()).replace(/\s/g, '');
  await tab.getByLabel('Code').fill(referenceTotp(secret, clock.now()));
  await tab.getByRole('button', { name: 'Confirm' }).click();
  await tab.getByRole('button', { name: 'Continue' }).click();
  const consent = tab.getByRole('button', { name: 'Allow' });
  await consent.waitFor({ timeout: 5000 }).then(() => consent.click(), () => undefined);
  await tab.waitForURL(`${CALLBACK}**`);
  const claims = (await app.tokens()).claims()!;
  expect(claims.sub).toBe(user.id);
  expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
  expect(claims.acr).toBe(ACR.mfa);
  // The lost authenticator is still there (the user removes it on their account page); the new one joined it.
  expect(await bed.server.latchkey.queries.factors.countConfirmed(user.id)).toBe(2);
  await app.context.close();
});
