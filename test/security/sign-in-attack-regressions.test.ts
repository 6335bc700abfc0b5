import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import type { UserRow } from '../../src/db/users.js';
import { ACR } from '../../src/mfa/policy.js';
import { aClient, aUser } from '../helpers/factories.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { relyingParty } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { authorizeOnly, begin, claimsAfter, go, offsetClock, outbox, password, secretOf, send } from './sign-in-attack-kit.js';

/**
 * Attacks an adversarial review found working against the first version of the sign-in state machine (each of
 * these failed then): every test asserts the safe outcome.
 */
const clock = offsetClock();
const mail = outbox();
let server: TestServer;
let mailed: TestServer;
let config: oidc.Configuration;
let mailedConfig: oidc.Configuration;
const env = { LATCHKEY_LOGIN_IP_FAILURES: '10000' };

beforeAll(async () => {
  [server, mailed] = await Promise.all([startTestServer({ clock, env }), startTestServer({ clock, env, emailSender: mail.sender })]);
  const [client, mailedClient] = await Promise.all([aClient(server.latchkey), aClient(mailed.latchkey)]);
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
  mailedConfig = await relyingParty(mailed.url, mailedClient.clientId, mailedClient.clientSecret);
});
afterAll(async () => {
  await Promise.all([server.close(), mailed.close()]);
});

const wrongTo = (code: string) => (code === '000000' ? '111111' : '000000');

describe('the emailed enrolment code', () => {
  test("wrong codes across many sign-ins are limited per account, not only per sign-in (someone holding only the password guesses the inbox code)", async () => {
    const victim = await aUser(mailed.latchkey);
    const limit = (await mailed.latchkey.settings.read('lockout')).value.mfa_account_failures;
    for (let signIn = 0; signIn < 4; signIn++) {
      const s = await begin(mailedConfig, { acr_values: ACR.mfa });
      const page = await password(s, victim);
      if (!page.html.includes('/enrol/email"')) break;
      const code = mail.codesTo(victim.email).at(-1)!;
      for (let i = 0; i < 5; i++) await send(s, '/enrol/email', { code: wrongTo(code) });
    }
    const evaluated = (await mailed.latchkey.queries.audit.list({ subjectId: victim.id, action: 'mfa.enrolment_confirmed_by_email' })).filter((e) => e.outcome === 'failure');
    expect(evaluated.length).toBeLessThanOrEqual(limit);
  });

  test('the confirmation mailed by each new sign-in counts against the hourly quota (no mail bombing by signing in again)', async () => {
    const victim = await aUser(mailed.latchkey);
    for (let signIn = 0; signIn < 8; signIn++) {
      const s = await begin(mailedConfig, { acr_values: ACR.mfa });
      await password(s, victim);
    }
    expect(mail.codesTo(victim.email).length).toBeLessThanOrEqual(5);
  });

  test('ten concurrent GETs of a stepping-up sign-in mail one code, and that code works', async () => {
    const user = await aUser(mailed.latchkey);
    const first = await begin(mailedConfig);
    await claimsAfter(mailedConfig, first, await password(first, user));
    const url = await authorizeOnly(mailedConfig, first.login.agent, { acr_values: ACR.mfa });
    await Promise.all(Array.from({ length: 10 }, () => first.login.agent.request(url)));
    expect(mail.codesTo(user.email)).toHaveLength(1);
    const s = { ...first, base: url, uid: url.split('/').pop()! };
    expect((await go(s, '/enrol/email', { code: mail.codesTo(user.email)[0]! })).html).toContain('totp-secret');
  });

  test('mail down: the sign-in answers no 500', async () => {
    const user = await aUser(mailed.latchkey);
    const s = await begin(mailedConfig, { acr_values: ACR.mfa });
    mail.failing = true;
    try {
      const atLogin = await send(s, '/login', { email: user.email, password: user.password });
      expect(atLogin.status).not.toBe(500);
      const resend = await send(s, '/enrol/email/resend');
      expect(resend.status).not.toBe(500);
    } finally {
      mail.failing = false;
    }
  });
});

describe('state changed under a sign-in', () => {
  test("an admin's MFA reset ends a sign-in already past its new factor: /continue gives no token claiming the removed factor", async () => {
    const user = await aUser(server.latchkey);
    const s = await begin(config, { acr_values: ACR.mfa });
    const enrol = await password(s, user);
    const codes = await go(s, '/enrol', { code: referenceTotp(secretOf(enrol), clock.now()) });
    expect(codes.html).toContain('/continue"');
    await server.latchkey.mfa.reset((await server.latchkey.queries.users.findById(user.id)) as UserRow, { actorId: null });
    expect(await server.latchkey.queries.factors.countConfirmed(user.id)).toBe(0);
    expect((await send(s, '/continue')).status).toBe(400);
  });
});

describe('the password throttle', () => {
  test("spellings the database folds to the same account share its lock (U+0130 'İ' for 'i')", async () => {
    const victim = await aUser(mailed.latchkey, { email: `victim-${Date.now()}@example.test` });
    const limit = (await mailed.latchkey.settings.read('lockout')).value.login_account_failures;
    const s = await begin(mailedConfig);
    // Each 'i' written as 'İ' or 'i': PostgreSQL's lower() (UTF-8 ctype) folds both to 'i', JavaScript's toLowerCase()
    // keeps 'İ' apart ('i̇'), so each spelling has its own counter but finds the same account.
    const spellings = ['victim', 'vİctim', 'victİm', 'vİctİm'].map((v) => victim.email.replace('victim', v));
    for (const email of spellings) for (let i = 0; i < limit; i++) await send(s, '/login', { email, password: `wrong-${i}` });
    const guesses = (await mailed.latchkey.queries.audit.list({ subjectId: victim.id, action: 'login.password' })).filter((e) => e.details.reason === 'wrong_password');
    expect(guesses.length).toBeLessThanOrEqual(limit);
  });
});
