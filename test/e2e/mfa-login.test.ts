import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import type { UserRow } from '../../src/db/users.js';
import { ACR } from '../../src/mfa/policy.js';
import type { Page } from '../helpers/browser-agent.js';
import { aClient, aUser, CALLBACK } from '../helpers/factories.js';
import { enrolTotp, recordingNotifier, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin, type StartedLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const clock = steppingClock();
const notices = recordingNotifier();
let server: TestServer;
let config: oidc.Configuration;

beforeAll(async () => {
  server = await startTestServer({ clock, notifier: notices.notifier });
  const client = await aClient(server.latchkey);
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
});
afterAll(() => server.close());

const admin = { actorId: '00000000-0000-4000-8000-000000000000' };
const setEnforcement = (on: boolean) => server.latchkey.mfa.setEnforcement(on, admin);

async function submitCode(login: StartedLogin, page: Page, code: string, method?: string) {
  let current = page;
  if (method) current = await login.agent.visit(`${page.url.split('?')[0]}?method=${method}`);
  let next = await login.agent.submit(current, '/mfa', { code });
  if (next.html.includes('/confirm"')) next = await login.agent.submit(next, '/confirm');
  return next;
}

describe('sign-in with a second factor, as an app sees it', () => {
  test('password + TOTP gives an ID token whose amr has pwd and otp, and acr says mfa', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    clock.nextStep();

    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    expect(mfaPage.html).toContain('authenticator app');
    const callback = await submitCode(login, mfaPage, referenceTotp(secret, clock.now()));
    const tokens = await completeLogin(config, login, callback.url);
    expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    expect(tokens.claims()!.acr).toBe(ACR.mfa);
  });

  test('the same TOTP code does not work twice', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    clock.nextStep();
    const code = referenceTotp(secret, clock.now());

    const first = await startLogin(config);
    const ok = await submitCode(first, await signInWithPassword(first, user.email, user.password), code);
    expect(ok.url.startsWith(CALLBACK)).toBe(true);

    const second = await startLogin(config);
    const refused = await submitCode(second, await signInWithPassword(second, user.email, user.password), code);
    expect(refused.status).toBe(401);
    expect(refused.html).toContain('That code didn&#39;t work');
    const reasons = (await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.verify' })).map((e) => e.details.reason);
    expect(reasons).toContain('replayed');
  });

  test('a recovery code works exactly once, and its use is told to the user', async () => {
    const user = await aUser(server.latchkey);
    const { recoveryCodes } = await enrolTotp(server.latchkey, user, clock);
    expect(recoveryCodes).toHaveLength(10);
    const stored = await server.database.db('recovery_codes').where({ user_id: user.id });
    expect(stored.map((r) => r.code_hash)).not.toContain(recoveryCodes[0]);

    const first = await startLogin(config);
    const ok = await submitCode(first, await signInWithPassword(first, user.email, user.password), recoveryCodes[0]!.toLowerCase(), 'recovery');
    const tokens = await completeLogin(config, first, ok.url);
    expect(tokens.claims()!.amr).toEqual(['pwd', 'mfa']);
    expect(notices.eventsFor(user.id)).toContain('recovery_code_used');
    expect(await server.latchkey.mfa.remainingRecoveryCodes(user.id)).toBe(9);

    const again = await startLogin(config);
    const refused = await submitCode(again, await signInWithPassword(again, user.email, user.password), recoveryCodes[0]!, 'recovery');
    expect(refused.status).toBe(401);
  });

  test('five wrong codes end the sign-in; the user hears once that their password was used', async () => {
    const user = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, user, clock);
    const login = await startLogin(config);
    let page = await signInWithPassword(login, user.email, user.password);
    for (let i = 0; i < 4; i++) {
      page = await login.agent.submit(page, '/mfa', { code: '000000' });
      expect(page.status).toBe(401);
    }
    // Our own page says what happened and when to try again, and its link takes the user back to the app, which
    // hears access_denied.
    const ended = await login.agent.submit(page, '/mfa', { code: '000000' });
    expect(ended.status).toBe(429);
    expect(ended.html).toContain('Too many wrong codes were entered, so this sign-in was stopped');
    expect(ended.html).toMatch(/You can try again at [^<]+ \(in about \d+ min\)/);
    expect(Number(ended.headers.get('retry-after'))).toBeGreaterThan(0);
    const back = /<a class="button" href="([^"]+)" data-back-to-app>/.exec(ended.html)![1]!;
    const returned = await login.agent.visit(back.replace(/&amp;/g, '&'));
    expect(returned.url).toContain('error=access_denied');
    expect(notices.eventsFor(user.id).filter((e) => e === 'mfa_failed_after_password')).toHaveLength(1);
    const failures = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.verify' });
    expect(failures.filter((e) => e.outcome === 'failure')).toHaveLength(5);
    // The account is now throttled for a while even in a new sign-in, with the right code.
    const retry = await startLogin(config);
    const blocked = await submitCode(retry, await signInWithPassword(retry, user.email, user.password), '123456');
    expect(blocked.status).toBe(429);
    expect(blocked.html).toContain('codes are refused for a while');
    expect(blocked.html).toMatch(/You can try again at [^<]+ \(in about \d+ min\)/);
    // Leaving from there ends the sign-in: the app hears access_denied.
    const left = await retry.agent.submit(blocked, '/abort');
    expect(left.url).toContain('error=access_denied');
  });
});

describe('enforcement, reset and step-up', () => {
  afterAll(() => setEnforcement(false));

  test('with enforcement on, a user without MFA enrols during sign-in and nothing is issued before', async () => {
    await setEnforcement(true);
    const user = await aUser(server.latchkey);
    const login = await startLogin(config);
    const enrolPage = await signInWithPassword(login, user.email, user.password);
    expect(enrolPage.html).toContain('id="totp-qr"');
    const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(enrolPage.html)![1]!.replace(/ /g, '');

    // Skipping ahead to "continue" before confirming gets nowhere.
    const skip = await login.agent.request(`${enrolPage.url}/continue`, { form: { _csrf: /name="_csrf" value="([^"]+)"/.exec(enrolPage.html)![1]! } });
    expect(skip.status).toBe(400);

    const wrong = await login.agent.submit(enrolPage, '/enrol', { code: '000000' });
    expect(wrong.status).toBe(401);
    const codesPage = await login.agent.submit(wrong, '/enrol', { code: referenceTotp(secret, clock.now()) });
    expect((codesPage.html.match(/<li><code>[0-9A-Z]{5}-[0-9A-Z]{5}<\/code><\/li>/g) ?? [])).toHaveLength(10);
    let next = await login.agent.submit(codesPage, '/continue');
    if (next.html.includes('/confirm"')) next = await login.agent.submit(next, '/confirm');
    const tokens = await completeLogin(config, login, next.url);
    expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
    expect(notices.eventsFor(user.id)).toContain('factor_added');
  });

  test('after a super-admin reset the user signs in with a password only, or enrols again under enforcement', async () => {
    const user = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, user, clock);
    const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    await server.latchkey.mfa.reset(row, admin);
    expect(notices.eventsFor(user.id)).toContain('mfa_reset_by_admin');
    expect(await server.database.db('recovery_codes').where({ user_id: user.id })).toHaveLength(0);
    const audit = (await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.reset' }))[0]!;
    expect(audit.actor_id).toBe(admin.actorId);

    await setEnforcement(false);
    const plain = await startLogin(config);
    const tokens = await completeLogin(config, plain, (await signInWithPassword(plain, user.email, user.password)).url);
    expect(tokens.claims()!.amr).toEqual(['pwd']);

    await setEnforcement(true);
    const enforced = await startLogin(config);
    expect((await signInWithPassword(enforced, user.email, user.password)).html).toContain('id="totp-qr"');
  });

  test('a client with require_mfa makes a password-only session step up with its second factor alone', async () => {
    await setEnforcement(false);
    const user = await aUser(server.latchkey);
    const plain = await startLogin(config);
    await completeLogin(config, plain, (await signInWithPassword(plain, user.email, user.password)).url);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    clock.nextStep();

    const strict = await aClient(server.latchkey, { require_mfa: true });
    const strictConfig = await relyingParty(server.url, strict.clientId, strict.clientSecret);
    const stepUp = await startLogin(strictConfig, {}, plain.agent);
    expect(stepUp.page.html).not.toContain('name="password"');
    expect(stepUp.page.html).toContain('name="code"');
    const callback = await submitCode(stepUp, stepUp.page, referenceTotp(secret, clock.now()));
    const tokens = await completeLogin(strictConfig, stepUp, callback.url);
    expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['otp', 'mfa']));
  });

  test('acr_values asking for mfa steps up too, and the ID token says so', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    await server.latchkey.mfa.reset((await server.latchkey.queries.users.findById(user.id))!, admin);
    const plain = await startLogin(config);
    const first = await completeLogin(config, plain, (await signInWithPassword(plain, user.email, user.password)).url);
    expect(first.claims()!.acr).toBe(ACR.password);

    const again = await enrolTotp(server.latchkey, user, clock);
    expect(again.secret).not.toBe(secret);
    clock.nextStep();
    const stepUp = await startLogin(config, { acr_values: ACR.mfa }, plain.agent);
    expect(stepUp.page.html).toContain('name="code"');
    const callback = await submitCode(stepUp, stepUp.page, referenceTotp(again.secret, clock.now()));
    const tokens = await completeLogin(config, stepUp, callback.url);
    expect(tokens.claims()!.acr).toBe(ACR.mfa);
  });
});
