import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import { ACR } from '../../src/mfa/policy.js';
import type { Page } from '../helpers/browser-agent.js';
import { aClient, aUser } from '../helpers/factories.js';
import { steppingClock } from '../helpers/mfa.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin, type StartedLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startSmtpServer } from '../helpers/smtp.js';

/** Enrolment grace under enforcement: "later" while it lasts, for the global switch only, with password-only claims. */
const clock = steppingClock();
const admin = { actorId: null };
let server: TestServer;
let mailed: TestServer;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let config: oidc.Configuration;
let strictConfig: oidc.Configuration;
let mailedConfig: oidc.Configuration;

beforeAll(async () => {
  smtp = await startSmtpServer();
  [server, mailed] = await Promise.all([startTestServer({ clock }), startTestServer({ clock, env: { LATCHKEY_SMTP_URL: smtp.url } })]);
  const [client, strict, mailedClient] = await Promise.all([aClient(server.latchkey), aClient(server.latchkey, { require_mfa: true }), aClient(mailed.latchkey)]);
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
  strictConfig = await relyingParty(server.url, strict.clientId, strict.clientSecret);
  mailedConfig = await relyingParty(mailed.url, mailedClient.clientId, mailedClient.clientSecret);
  await Promise.all([server.latchkey.mfa.setEnforcement(true, admin), mailed.latchkey.mfa.setEnforcement(true, admin)]);
});
afterAll(async () => {
  await Promise.all([server.close(), mailed.close()]);
  await smtp.close();
});
afterEach(() => server.latchkey.settings.write('enrolment-grace', { days: 0, sign_ins: 0 }));

const grace = (days: number, signIns: number, t = server) => t.latchkey.settings.write('enrolment-grace', { days, sign_ins: signIns });
const csrfOf = (page: Page) => /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;
const interactionUrl = (page: Page) => /^(.*\/interaction\/[^/?]+)/.exec(page.url)![1]!;
const postLater = (login: StartedLogin, page: Page) => login.agent.request(`${interactionUrl(page)}/later`, { form: { _csrf: csrfOf(page) } });
const LATER = 'Set this up later';

async function toEnrolment(user: { email: string; password: string }, params: Record<string, string> = {}, rp = config) {
  const login = await startLogin(rp, params);
  const page = await signInWithPassword(login, user.email, user.password);
  expect(page.html).toContain('totp-secret');
  return { login, page };
}
async function later(login: StartedLogin, page: Page, rp = config) {
  let callback = await login.agent.submit(page, '/later');
  if (callback.html.includes('/confirm"')) callback = await login.agent.submit(callback, '/confirm');
  return (await completeLogin(rp, login, callback.url)).claims()!;
}

describe('enrolment grace under enforcement', () => {
  test('is off by default: no "later", and posting it anyway is refused', async () => {
    const user = await aUser(server.latchkey);
    const { login, page } = await toEnrolment(user);
    expect(page.html).not.toContain(LATER);
    expect((await postLater(login, page)).status).toBe(400);
  });

  test('counts sign-ins: the page says how many remain, each "later" is password-only, then enrolment is due', async () => {
    await grace(0, 2);
    const user = await aUser(server.latchkey);
    for (const left of [2, 1]) {
      const { login, page } = await toEnrolment(user);
      expect(page.html).toContain(`Sign-ins left on which you may put this off: ${left}.`);
      const claims = await later(login, page);
      expect(claims.sub).toBe(user.id);
      expect(claims.amr).toEqual(['pwd']);
      expect(claims.acr).toBe(ACR.password);
    }
    const { login, page } = await toEnrolment(user);
    expect(page.html).not.toContain(LATER);
    expect((await postLater(login, page)).status).toBe(400);
    expect(await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.enrolment_postponed' })).toHaveLength(2);
  });

  test('a "later" session opens apps but not the account console: there enrolment goes through the sign-in', async () => {
    await grace(0, 5);
    const user = await aUser(server.latchkey);
    const { login, page } = await toEnrolment(user);
    await later(login, page);
    // The same browser at the account pages: the password alone would bind a first factor of the holder's choosing.
    const account = await login.agent.visit(`${server.url}/account/security`);
    expect(account.url).toContain('/interaction/');
    expect(account.html).toContain('totp-secret');
    expect(account.html).not.toContain(LATER);
  });

  test('counts days from the first "later"', async () => {
    await grace(3, 0);
    const user = await aUser(server.latchkey);
    const first = await toEnrolment(user);
    expect(first.page.html).toContain('Days left to put this off: 3.');
    await later(first.login, first.page);
    for (let i = 0; i < 2 * 60 * 24 * 3; i++) clock.nextStep();
    const { login, page } = await toEnrolment(user);
    expect(page.html).not.toContain(LATER);
    expect((await postLater(login, page)).status).toBe(400);
  });

  test('never answers an app that requires MFA or acr_values that ask for it', async () => {
    await grace(30, 10);
    const user = await aUser(server.latchkey);
    for (const attempt of [await toEnrolment(user, { acr_values: ACR.mfa }), await toEnrolment(user, {}, strictConfig)]) {
      expect(attempt.page.html).not.toContain(LATER);
      expect((await postLater(attempt.login, attempt.page)).status).toBe(400);
    }
    expect(await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.enrolment_postponed' })).toHaveLength(0);
  });

  test('a session made with "later" is asked for enrolment when a request asks for MFA', async () => {
    await grace(30, 10);
    const user = await aUser(server.latchkey);
    const first = await toEnrolment(user);
    await later(first.login, first.page);
    // Same browser, same session: the global switch alone does not ask again while the grace lasts…
    const again = await startLogin(config, {}, first.login.agent);
    expect(again.page.html).toContain('/confirm"');
    expect(again.page.html).not.toContain('totp-secret');
    // …but acr_values asking for MFA do, and "later" does not answer them.
    const stepUp = await startLogin(config, { acr_values: ACR.mfa }, first.login.agent);
    expect(stepUp.page.html).toContain('totp-secret');
    expect(stepUp.page.html).not.toContain(LATER);
  });

  test('of two sign-ins choosing "later" at once with one left, one gets through', async () => {
    await grace(0, 1);
    const user = await aUser(server.latchkey);
    const both = [await toEnrolment(user), await toEnrolment(user)];
    const responses = await Promise.all(both.map(({ login, page }) => postLater(login, page)));
    expect(responses.every((r) => r.status < 500)).toBe(true);
    const rows = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.enrolment_postponed' });
    expect(rows.filter((r) => r.outcome === 'success')).toHaveLength(1);
  });

  test('is offered on the inbox confirmation page too, where mail is configured', async () => {
    await grace(0, 1, mailed);
    const user = await aUser(mailed.latchkey);
    const login = await startLogin(mailedConfig);
    const page = await signInWithPassword(login, user.email, user.password);
    expect(page.html).toContain('/enrol/email"');
    expect(page.html).toContain(LATER);
    expect((await later(login, page, mailedConfig)).amr).toEqual(['pwd']);
  });
});
