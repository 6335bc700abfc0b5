import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import type { UserRow } from '../../src/db/users.js';
import { ACR } from '../../src/mfa/policy.js';
import type { Page } from '../helpers/browser-agent.js';
import { aClient, aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin, type StartedLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** A helpdesk's one-time code at sign-in: password, code, then a new factor before anything is issued. */
const clock = steppingClock();
let server: TestServer;
let config: oidc.Configuration;

beforeAll(async () => {
  server = await startTestServer({ clock });
  const client = await aClient(server.latchkey);
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
});
afterAll(() => server.close());

const csrfOf = (page: Page) => /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;
const secretOf = (page: Page) => /id="totp-secret">([A-Z2-7 ]+)</.exec(page.html)![1]!.replace(/ /g, '');
const interactionUrl = (page: Page) => /^(.*\/interaction\/[^/?]+)/.exec(page.url)![1]!;
const postTo = (login: StartedLogin, page: Page, path: string, form: Record<string, string>) =>
  login.agent.request(`${interactionUrl(page)}${path}`, { form: { _csrf: csrfOf(page), ...form } });
const stepOf = async (page: Page) => ((await server.database.db('login_progress').where({ interaction_uid: interactionUrl(page).split('/').pop() }).first()) as { step: string } | undefined)?.step;

async function userWithCode() {
  const user = await aUser(server.latchkey);
  const app = await enrolTotp(server.latchkey, user, clock);
  const helpdesk = await aUser(server.latchkey, { roles: ['helpdesk'] });
  const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
  const { code } = await server.latchkey.bypassCodes.issue(row, 'lost phone', { actorId: helpdesk.id });
  return { user, code, app };
}
/** Password in, then the second-factor page's "code from your helpdesk" entry. */
async function atHelpdeskEntry(user: { email: string; password: string }, params: Record<string, string> = {}) {
  const login = await startLogin(config, params);
  const mfaPage = await signInWithPassword(login, user.email, user.password);
  expect(mfaPage.html).toContain('Use a code from your helpdesk');
  const page = await login.agent.visit(`${interactionUrl(mfaPage)}?method=helpdesk`);
  expect(page.html).toContain('Code from your helpdesk');
  return { login, page };
}

describe('a helpdesk bypass code at sign-in', () => {
  test('leads to enrolment of a new factor, which finishes the sign-in with honest claims; the old factor stays', async () => {
    const { user, code } = await userWithCode();
    const { login, page } = await atHelpdeskEntry(user);
    const enrolPage = await login.agent.submit(page, '/bypass', { code });
    expect(enrolPage.html).toContain('Your helpdesk code was accepted');
    expect(enrolPage.html).not.toContain('/later"');
    // The code alone finishes nothing: /continue before the new factor is refused.
    expect((await postTo(login, enrolPage, '/continue', {})).status).toBe(400);

    const codesPage = await login.agent.submit(enrolPage, '/enrol', { code: referenceTotp(secretOf(enrolPage), clock.now()) });
    let callback = await login.agent.submit(codesPage, '/continue');
    if (callback.html.includes('/confirm"')) callback = await login.agent.submit(callback, '/confirm');
    const claims = (await completeLogin(config, login, callback.url)).claims()!;
    expect(claims.sub).toBe(user.id);
    expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(claims.acr).toBe(ACR.mfa);
    expect(await server.latchkey.queries.factors.countConfirmed(user.id)).toBe(2);
    const used = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.bypass_code_used' });
    expect(used.map((e) => e.outcome)).toEqual(['success']);
  });

  test('works once: the same code in a later sign-in does not', async () => {
    const { user, code } = await userWithCode();
    const first = await atHelpdeskEntry(user);
    expect(await stepOf(await first.login.agent.submit(first.page, '/bypass', { code }))).toBe('enrolling');
    const again = await atHelpdeskEntry(user);
    const refused = await again.login.agent.submit(again.page, '/bypass', { code });
    expect(refused.status).toBe(401);
    expect(await stepOf(refused)).toBe('second_factor');
  });

  test("is refused for another user's sign-in, and tries count against the sign-in's limit", async () => {
    const { code } = await userWithCode();
    const other = await userWithCode();
    const { login, page } = await atHelpdeskEntry(other.user);
    for (let i = 0; i < 4; i++) expect((await login.agent.submit(page, '/bypass', { code })).status).toBe(401);
    const last = await login.agent.submit(page, '/bypass', { code });
    // The sign-in is stopped: our page says so, and its link carries access_denied back to the app.
    expect(last.status).toBe(429);
    expect(last.html).toContain('this sign-in was stopped');
    // The account's limit, shared with every second-factor code, holds the right code back for a while too; the
    // code itself is still theirs to use.
    const fresh = await atHelpdeskEntry(other.user);
    expect((await fresh.login.agent.submit(fresh.page, '/bypass', { code: other.code })).status).toBe(429);
    for (let i = 0; i < 4; i++) clock.nextStep();
    expect(await stepOf(await fresh.login.agent.submit(fresh.page, '/bypass', { code: other.code }))).toBe('enrolling');
  });

  test('is refused before the password and at any other step', async () => {
    const { user, code } = await userWithCode();
    const login = await startLogin(config);
    expect((await postTo(login, login.page, '/bypass', { code })).status).toBe(400);
    const { login: second, page } = await atHelpdeskEntry(user);
    const enrolPage = await second.agent.submit(page, '/bypass', { code });
    expect((await postTo(second, enrolPage, '/bypass', { code })).status).toBe(400);
    // Past the code, a factor's code is no way out of enrolment either.
    expect((await postTo(second, enrolPage, '/mfa', { method: 'x', code: '000000' })).status).toBe(400);
  });

  test('is not offered where only a passkey answers (acr_values phr): no enrolment of something weaker', async () => {
    const { user, code } = await userWithCode();
    const login = await startLogin(config, { acr_values: ACR.phr });
    const page = await signInWithPassword(login, user.email, user.password);
    expect(page.html).not.toContain('Use a code from your helpdesk');
    if (page.url.includes('/interaction/')) expect((await postTo(login, page, '/bypass', { code })).status).toBe(400);
  });

  test('is not offered to a session stepping up: the password must be verified in the same sign-in', async () => {
    const user = await aUser(server.latchkey);
    const first = await startLogin(config);
    await signInWithPassword(first, user.email, user.password);
    await enrolTotp(server.latchkey, user, clock);
    const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    const { code } = await server.latchkey.bypassCodes.issue(row, 'lost phone', { actorId: (await aUser(server.latchkey, { roles: ['helpdesk'] })).id });
    const stepUp = await startLogin(config, { acr_values: ACR.mfa }, first.agent);
    expect(stepUp.page.html).toContain('/mfa"');
    expect(stepUp.page.html).not.toContain('Use a code from your helpdesk');
    expect((await postTo(stepUp, stepUp.page, '/bypass', { code })).status).toBe(400);
  });

  test('40 tries at once over four sign-ins consume the code once and open one enrolment', async () => {
    const { user, code } = await userWithCode();
    const entries: Array<Awaited<ReturnType<typeof atHelpdeskEntry>>> = [];
    for (let i = 0; i < 4; i++) entries.push(await atHelpdeskEntry(user));
    const responses = await Promise.all(Array.from({ length: 40 }, (_, i) => postTo(entries[i % 4]!.login, entries[i % 4]!.page, '/bypass', { code })));
    expect(responses.every((r) => r.status < 500)).toBe(true);
    const steps = await Promise.all(entries.map((e) => stepOf(e.page)));
    expect(steps.filter((s) => s === 'enrolling').length).toBeLessThanOrEqual(1);
    const used = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.bypass_code_used' });
    expect(used.filter((e) => e.outcome === 'success')).toHaveLength(1);
  }, 60_000);
});
