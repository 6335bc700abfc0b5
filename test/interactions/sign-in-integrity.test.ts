import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import { ACR } from '../../src/mfa/policy.js';
import type { Page } from '../helpers/browser-agent.js';
import { aClient, aUser, CALLBACK } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin, type StartedLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startSmtpServer } from '../helpers/smtp.js';

/** One person per sign-in, every limit atomic: the findings of the sign-in integrity review, one test each. */
const clock = steppingClock();
let server: TestServer;
let mailed: TestServer;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let config: oidc.Configuration;
let mailedConfig: oidc.Configuration;

beforeAll(async () => {
  smtp = await startSmtpServer();
  [server, mailed] = await Promise.all([startTestServer({ clock }), startTestServer({ clock, env: { LATCHKEY_SMTP_URL: smtp.url } })]);
  const [client, mailedClient] = await Promise.all([aClient(server.latchkey), aClient(mailed.latchkey)]);
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
  mailedConfig = await relyingParty(mailed.url, mailedClient.clientId, mailedClient.clientSecret);
});
afterAll(async () => {
  await Promise.all([server.close(), mailed.close()]);
  await smtp.close();
});

const csrfOf = (page: Page) => /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;
const secretOf = (page: Page) => /id="totp-secret">([A-Z2-7 ]+)</.exec(page.html)![1]!.replace(/ /g, '');
/** Posts a form to the sign-in's own URL + suffix, as an attacker would, whatever page the browser is on. */
const post = (login: StartedLogin, page: Page, suffix: string, form: Record<string, string>) =>
  login.agent.request(`${page.url.split('?')[0]!.replace(/\/(login|mfa|enrol|continue)$/, '')}${suffix}`, { form: { _csrf: csrfOf(page), ...form } });
const interactionUrl = (page: Page) => /^(.*\/interaction\/[^/?]+)/.exec(page.url)![1]!;
const wrongPasswordAudits = async (t: TestServer, userId: string) =>
  (await t.latchkey.queries.audit.list({ subjectId: userId, action: 'login.password' })).filter((e) => e.details.reason === 'wrong_password').length;

describe('one person per sign-in', () => {
  test("an attacker who enrolled their own factor cannot post a victim's password into the same sign-in", async () => {
    const attacker = await aUser(server.latchkey);
    const victim = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, victim, clock);
    clock.nextStep();

    const login = await startLogin(config, { acr_values: ACR.mfa });
    const enrolPage = await signInWithPassword(login, attacker.email, attacker.password);
    const codesPage = await login.agent.submit(enrolPage, '/enrol', { code: referenceTotp(secretOf(enrolPage), clock.now()) });
    expect(codesPage.html).toContain('/continue');

    const switched = await login.agent.request(`${interactionUrl(codesPage)}/login`, { form: { _csrf: csrfOf(codesPage), email: victim.email, password: victim.password } });
    expect(switched.status).toBe(400);

    let callback = await login.agent.submit(codesPage, '/continue');
    if (callback.html.includes('/confirm"')) callback = await login.agent.submit(callback, '/confirm');
    const claims = (await completeLogin(config, login, callback.url)).claims()!;
    expect(claims.sub).toBe(attacker.id);
    expect(claims.sub).not.toBe(victim.id);
  });

  test("at the second-factor step, another user's password is refused and the step stays the first user's", async () => {
    const first = await aUser(server.latchkey);
    const other = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, first, clock);
    await enrolTotp(server.latchkey, other, clock);
    clock.nextStep();

    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, first.email, first.password);
    const switched = await login.agent.request(`${interactionUrl(mfaPage)}/login`, { form: { _csrf: csrfOf(mfaPage), email: other.email, password: other.password } });
    expect(switched.status).toBe(400);
    let next = await login.agent.submit(mfaPage, '/mfa', { code: referenceTotp(secret, clock.now()) });
    if (next.html.includes('/confirm"')) next = await login.agent.submit(next, '/confirm');
    expect((await completeLogin(config, login, next.url)).claims()!.sub).toBe(first.id);
  });

  test('two passwords racing into one sign-in: only one user is bound, and /continue is refused before a factor', async () => {
    const one = await aUser(server.latchkey);
    const two = await aUser(server.latchkey);
    const login = await startLogin(config, { acr_values: ACR.mfa });
    const form = (u: { email: string; password: string }) => ({ _csrf: csrfOf(login.page), email: u.email, password: u.password });
    const answers = await Promise.all([one, two, one, two].map((u) => login.agent.request(`${interactionUrl(login.page)}/login`, { form: form(u) })));
    expect(answers.filter((a) => a.status === 303)).toHaveLength(1);
    const rows = await server.database.db('login_progress').where({ interaction_uid: interactionUrl(login.page).split('/').pop() });
    expect(rows).toHaveLength(1);
    const early = await login.agent.request(`${interactionUrl(login.page)}/continue`, { form: { _csrf: csrfOf(login.page) } });
    expect(early.status).toBe(400);
  });
});

describe('one sign-in, one result', () => {
  test('a sign-in resumed twice at once (a double click, a replayed redirect) gives out one authorization code', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { first_party: true });
    const firstParty = await relyingParty(server.url, client.clientId, client.clientSecret);
    for (let round = 0; round < 5; round++) {
      const login = await startLogin(firstParty, { prompt: '' });
      const posted = await post(login, login.page, '/login', { email: user.email, password: user.password });
      expect(posted.status).toBe(303);
      const resume = new URL(posted.headers.get('location')!, server.url).toString();
      const answers = await Promise.all([login.agent.request(resume), login.agent.request(resume)]);
      const codes = answers.map((a) => a.headers.get('location') ?? '').filter((location) => location.includes('code='));
      expect(codes).toHaveLength(1);
      expect(answers.map((a) => a.status).sort()).toEqual([303, 400]);
      await completeLogin(firstParty, login, new URL(codes[0]!, server.url).toString());
    }
  });
});

describe('enrolment at sign-in needs more than the password (mail configured)', () => {
  test('the first factor is bound only after a code sent to the account’s inbox, and wrong codes count', async () => {
    const user = await aUser(mailed.latchkey);
    const login = await startLogin(mailedConfig, { acr_values: ACR.mfa });
    const confirm = await signInWithPassword(login, user.email, user.password);
    expect(confirm.html).toContain('/enrol/email');
    expect(confirm.html).not.toContain('totp-secret');
    // Skipping the inbox step: the enrolment form is not accepted yet.
    expect((await post(login, confirm, '/enrol', { code: '123456' })).status).toBe(400);

    const mail = await smtp.messageTo(user.email);
    const code = /\b(\d{6})\b/.exec(mail.text ?? '')![1]!;
    const wrong = await login.agent.submit(confirm, '/enrol/email', { code: code === '000000' ? '111111' : '000000' });
    expect(wrong.status).toBe(401);
    const enrolPage = await login.agent.submit(wrong, '/enrol/email', { code });
    expect(enrolPage.html).toContain('totp-secret');
    const codesPage = await login.agent.submit(enrolPage, '/enrol', { code: referenceTotp(secretOf(enrolPage), clock.now()) });
    let next = await login.agent.submit(codesPage, '/continue');
    if (next.html.includes('/confirm"')) next = await login.agent.submit(next, '/confirm');
    expect(next.url.startsWith(CALLBACK)).toBe(true);
    expect((await completeLogin(mailedConfig, login, next.url)).claims()!.amr).toEqual(['pwd', 'otp', 'mfa']);
  });
});

describe('limits hold under a burst of 40', () => {
  test('40 concurrent wrong passwords evaluate at most the account limit; the right one after them is throttled', async () => {
    const user = await aUser(server.latchkey);
    const limit = (await server.latchkey.settings.read('lockout')).value.login_account_failures;
    const login = await startLogin(config);
    const url = `${interactionUrl(login.page)}/login`;
    await Promise.all(Array.from({ length: 40 }, () => login.agent.request(url, { form: { _csrf: csrfOf(login.page), email: user.email, password: 'wrong-password-1' } })));
    expect(await wrongPasswordAudits(server, user.id)).toBeLessThanOrEqual(limit);
    const right = await login.agent.request(url, { form: { _csrf: csrfOf(login.page), email: user.email, password: user.password } });
    expect(right.status).toBe(429);
  });

  test('a right password inside a locked burst does not succeed', async () => {
    const user = await aUser(server.latchkey);
    const login = await startLogin(config);
    const url = `${interactionUrl(login.page)}/login`;
    const attempt = (password: string) => login.agent.request(url, { form: { _csrf: csrfOf(login.page), email: user.email, password } });
    const burst = await Promise.all([...Array.from({ length: 39 }, () => attempt('wrong-password-2')), attempt(user.password)]);
    // The right password either came before the lock and signed in, or was refused: never after the limit's worth.
    const limit = (await server.latchkey.settings.read('lockout')).value.login_account_failures;
    expect(await wrongPasswordAudits(server, user.id)).toBeLessThanOrEqual(limit);
    const after = await attempt(user.password);
    expect([400, 429]).toContain(after.status);
    expect(burst.filter((r) => r.status === 401 || r.status === 429)).toHaveLength(burst.filter((r) => r.status !== 303).length);
  });

  test('40 concurrent wrong codes in one sign-in evaluate at most 5, and the sign-in ends', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    clock.nextStep();
    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    const methodId = /name="method" value="([^"]+)"/.exec(mfaPage.html)![1]!;
    const good = referenceTotp(secret, clock.now());
    const bad = good === '000000' ? '111111' : '000000';
    await Promise.all(Array.from({ length: 40 }, () => post(login, mfaPage, '/mfa', { method: methodId, code: bad })));
    const evaluated = (await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.verify' })).filter((e) => e.outcome === 'failure');
    expect(evaluated.length).toBeLessThanOrEqual(5);
    const right = await post(login, mfaPage, '/mfa', { method: methodId, code: good });
    expect(right.status).toBe(400);
  });

  test("40 concurrent wrong codes across sign-ins evaluate at most the account's limit", async () => {
    const user = await aUser(server.latchkey);
    const { methodId } = await enrolTotp(server.latchkey, user, clock);
    const row = (await server.latchkey.queries.users.findById(user.id))!;
    const limit = (await server.latchkey.settings.read('lockout')).value.mfa_account_failures;
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        server.latchkey.mfa.verifyAtSignIn(row, { methodId, code: '000000', pinAccepted: false, firstFailureAfterPassword: false }, { interactionUid: `burst-${i}`, locale: 'en' }, { actorId: user.id }),
      ),
    );
    expect(results.filter((r) => !r.ok && !r.locked).length).toBeLessThanOrEqual(limit);
    const evaluated = (await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.verify' })).filter((e) => e.outcome === 'failure');
    expect(evaluated.length).toBeLessThanOrEqual(limit);
  });
});
