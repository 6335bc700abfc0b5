import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import { stepUpFor } from '../../src/console/step-up.js';
import { ACR } from '../../src/mfa/policy.js';
import type { Page } from '../helpers/browser-agent.js';
import { aClient, aUser, CALLBACK } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin, type StartedLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { assert, enrolSoftPasskey, passkeyOptionsOf, type SoftCredential } from '../helpers/soft-authenticator.js';

/** Passkeys in the sign-in state machine, over HTTP with a software authenticator (the browser suite has Chromium's). */
const clock = steppingClock();
let server: TestServer;
let config: oidc.Configuration;
beforeAll(async () => {
  server = await startTestServer({ clock });
  const client = await aClient(server.latchkey, { first_party: true });
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
});
afterAll(() => server.close());

const answer = (page: Page, credential: SoftCredential, flags: Parameters<typeof assert>[2] = {}) => {
  const options = passkeyOptionsOf(page.html);
  return assert(credential, { rpId: options.rpId, origin: server.url, challenge: options.challenge }, flags);
};
const withPasskey = async () => {
  const user = await aUser(server.latchkey);
  return { user, ...(await enrolSoftPasskey(server.latchkey, user, server.url)) };
};
const claimsOf = async (login: StartedLogin, reached: Page) => {
  const page = reached.html.includes('/confirm"') ? await login.agent.submit(reached, '/confirm') : reached;
  expect(page.url.startsWith(CALLBACK)).toBe(true);
  return (await completeLogin(config, login, page.url)).claims()!;
};

describe('passwordless', () => {
  test('a passkey with user verification is the whole sign-in', async () => {
    const { user, credential } = await withPasskey();
    const login = await startLogin(config);
    expect(passkeyOptionsOf(login.page.html)).toMatchObject({ userVerification: 'required', rpId: '127.0.0.1' });
    const claims = await claimsOf(login, await login.agent.submit(login.page, '/passwordless', { code: answer(login.page, credential) }));
    expect(claims).toMatchObject({ sub: user.id, amr: ['hwk', 'user', 'mfa'], acr: ACR.phr });
  });

  test('it is refused once a password bound the sign-in: the user is fixed by the first verified authenticator', async () => {
    const passwordUser = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, passwordUser, clock);
    const { credential } = await withPasskey();
    const login = await startLogin(config);
    const loginPage = login.page;
    const mfaPage = await signInWithPassword(login, passwordUser.email, passwordUser.password);
    expect(mfaPage.html).toContain('/mfa"');
    const swapped = await login.agent.submit(loginPage, '/passwordless', { code: answer(loginPage, credential) });
    expect(swapped.status).toBe(400);
    expect((await server.latchkey.queries.signIns.find(/\/interaction\/([^/?]+)/.exec(mfaPage.url)![1]!, new Date()))?.user_id).toBe(passwordUser.id);
  });

  test('forty concurrent posts of one assertion sign in at most once', async () => {
    const { credential } = await withPasskey();
    const login = await startLogin(config);
    const code = answer(login.page, credential);
    const pages = await Promise.all(Array.from({ length: 40 }, () => login.agent.submit(login.page, '/passwordless', { code })));
    const signedIn = pages.filter((p) => p.url.startsWith(CALLBACK) || p.html.includes('/confirm"'));
    expect(signedIn).toHaveLength(1);
    // The others are refused: the challenge is gone (401), or the account's limit, reserved before each check, is (429).
    expect(pages.filter((p) => [400, 401, 429].includes(p.status))).toHaveLength(39);
  });
});

describe('passkey as second factor', () => {
  test('each wrong passkey response takes one of the sign-in\'s five tries; the fifth ends it', async () => {
    const { user, credential } = await withPasskey();
    const login = await startLogin(config);
    let page = await signInWithPassword(login, user.email, user.password);
    for (let i = 0; i < 5; i++) {
      // A response for the wrong origin: refused, and counted.
      const options = passkeyOptionsOf(page.html);
      page = await login.agent.submit(page, '/mfa', { code: assert(credential, { rpId: options.rpId, origin: 'http://evil.example', challenge: options.challenge }) });
      if (i < 4) expect(page.status).toBe(401);
    }
    // The fifth ends it: our page says so, and its link takes the user back to the app, which hears access_denied.
    expect(page.status).toBe(429);
    expect(page.html).toContain('this sign-in was stopped');
    const back = /href="([^"]+)" data-back-to-app/.exec(page.html)![1]!.replace(/&amp;/g, '&');
    expect(new URL((await login.agent.visit(back)).url).searchParams.get('error')).toBe('access_denied');
    const failures = (await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.verify' })).filter((e) => e.outcome === 'failure');
    expect(failures.map((e) => e.details.reason)).toEqual(Array(5).fill('wrong_origin'));
  });

  test('acr_values phr steps up a session that signed in with an authenticator app: only the passkey answers', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    const { credential } = await enrolSoftPasskey(server.latchkey, user, server.url);
    clock.nextStep();
    const first = await startLogin(config);
    let page = await signInWithPassword(first, user.email, user.password);
    // The user's preferred method (the app) is offered first; they use it.
    page = await first.agent.submit(page, '/mfa', { method: (await server.latchkey.queries.factors.listConfirmed(user.id)).find((f) => f.factor === 'totp')!.id, code: referenceTotp(secret, clock.now()) });
    expect((await claimsOf(first, page)).acr).toBe(ACR.mfa);

    const stepUp = await startLogin(config, { acr_values: ACR.phr }, first.agent);
    expect(stepUp.page.html).not.toContain('name="password"');
    expect(stepUp.page.html).toContain('data-passkey="get"');
    expect(stepUp.page.html).not.toContain('?method=recovery');
    clock.nextStep();
    const totpId = (await server.latchkey.queries.factors.listConfirmed(user.id)).find((f) => f.factor === 'totp')!.id;
    const refused = await stepUp.agent.submit(stepUp.page, '/mfa', { method: totpId, code: referenceTotp(secret, clock.now()) });
    expect(refused.status).toBe(401);
    const claims = await claimsOf(stepUp, await stepUp.agent.submit(refused, '/mfa', { code: answer(refused, credential) }));
    expect(claims).toMatchObject({ sub: user.id, acr: ACR.phr, amr: ['pwd', 'hwk', 'user', 'mfa'] });
  });

  test("a client's require_phishing_resistant: a user without a passkey is turned away, not enrolled into an app", async () => {
    const client = await aClient(server.latchkey, { require_phishing_resistant: true, first_party: true });
    const strict = await relyingParty(server.url, client.clientId, client.clientSecret);
    const user = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, user, clock);
    const login = await startLogin(strict);
    const page = await signInWithPassword(login, user.email, user.password);
    const url = new URL(page.url);
    expect(url.searchParams.get('error')).toBe('access_denied');
    expect(url.searchParams.get('error_description')).toMatch(/passkey/);
  });
});

describe("the super admin's setting: admins must use a phishing-resistant factor", () => {
  test('admin rights then need a passkey sign-in; the account pages and non-admins are not affected', async () => {
    const admin = await aUser(server.latchkey, { roles: ['auditor'] });
    const plain = await aUser(server.latchkey);
    const [adminRow, plainRow] = await Promise.all([admin, plain].map(async (u) => (await server.latchkey.queries.users.findById(u.id))!));
    const { mfa, settings } = server.latchkey;
    expect(await stepUpFor(mfa, adminRow!, ['pwd', 'otp', 'mfa'], 'admin')).toBeUndefined();
    const { version } = await settings.read('admin-phishing-resistant');
    await settings.write('admin-phishing-resistant', { required: true }, version);
    try {
      expect(await stepUpFor(mfa, adminRow!, ['pwd', 'otp', 'mfa'], 'admin')).toBe(ACR.phr);
      expect(await stepUpFor(mfa, adminRow!, ['pwd'], 'admin')).toBe(ACR.phr);
      expect(await stepUpFor(mfa, adminRow!, ['pwd', 'hwk', 'user', 'mfa'], 'admin')).toBeUndefined();
      expect(await stepUpFor(mfa, adminRow!, ['pwd', 'otp', 'mfa'], 'account')).toBeUndefined();
      expect(await stepUpFor(mfa, plainRow!, ['pwd', 'otp', 'mfa'], 'admin')).toBeUndefined();
    } finally {
      await settings.write('admin-phishing-resistant', { required: false });
    }
  });
});
