import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { consoleSignIn } from '../helpers/console.js';
import { aClient, aUser } from '../helpers/factories.js';
import { startFakeTwilio, TWILIO_TEST_CREDENTIALS, twilioServerEnv } from '../helpers/fake-twilio.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { pino } from 'pino';

let twilio: Awaited<ReturnType<typeof startFakeTwilio>>;
let server: TestServer;
/** What the server logged: provider failures are the operator's to see. */
const logs: string[] = [];

beforeAll(async () => {
  twilio = await startFakeTwilio(TWILIO_TEST_CREDENTIALS);
  server = await startTestServer({
    logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(line) }),
    env: {
      ...twilioServerEnv(twilio.origin),
      LATCHKEY_MFA_FACTORS: 'totp,sms',
    },
  });
});
afterAll(async () => {
  await server.close();
  await twilio.close();
});

async function enrolPhone(user: { email: string; password: string }, phone: string) {
  const { agent, page } = await consoleSignIn(server.url, user.email, user.password);
  // The password just typed at sign-in counts as recent: no second password page.
  return { agent, page: await agent.submit(page, '/account/security/enrol/sms', { phone }) };
}

describe('text-message codes through the Twilio SDK', () => {
  test('a phone is confirmed by a code, then a login completes with a texted code; amr says sms', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await enrolPhone(user, '+82 10-1234-5612');
    expect(page.html).toContain('+82 ••• ••12');
    const confirmed = await agent.submit(page, '', { code: twilio.lastCodeTo('+821012345612') });
    expect(confirmed.html).toContain('Save your recovery codes');

    // What reached "Twilio" is what Twilio's API accepts, from our account, with the code in the body.
    const sms = twilio.received.at(-1)!;
    expect(sms.accountSid).toBe(TWILIO_TEST_CREDENTIALS.accountSid);
    expect(sms.authorization).toBe(`Basic ${Buffer.from(`${TWILIO_TEST_CREDENTIALS.accountSid}:${TWILIO_TEST_CREDENTIALS.authToken}`).toString('base64')}`);
    expect(sms.fields).toMatchObject({ To: '+821012345612', From: '+15005550006' });
    expect(String(sms.fields.Body)).toMatch(/^\d{6} is your Latchkey verification code/);
    expect(twilio.violations).toEqual([]);

    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    expect(mfaPage.html).toContain('+82 ••• ••12');
    // Before "Send me a code" is pressed, nothing says a code was sent.
    expect(mfaPage.html).toContain('We&#39;ll text a code to +82 ••• ••12');
    expect(mfaPage.html).not.toContain('we sent');
    const sent = await login.agent.submit(mfaPage, '/mfa/send');
    expect(sent.html).toContain('We sent a code to +82 ••• ••12');
    const again = await login.agent.submit(sent, '/mfa/send');
    expect(again.status).toBe(429);
    expect(again.html).toContain('A code was just sent');

    let callback = await login.agent.submit(again, '/mfa', { code: twilio.lastCodeTo('+821012345612') });
    if (callback.html.includes('/confirm"')) callback = await login.agent.submit(callback, '/confirm');
    const tokens = await completeLogin(config, login, callback.url);
    expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'sms', 'mfa']));
    expect(twilio.violations).toEqual([]);
  });

  test('a number Twilio refuses (error 21211) comes back on the same form, typed as it was, with the reason in the user\'s language', async () => {
    const user = await aUser(server.latchkey);
    twilio.invalidNumbers.add('+821099990000');
    const { page } = await enrolPhone(user, '+82 10 9999 0000');
    expect(page.status).toBe(400);
    expect(page.html).toMatch(/id="phone" name="phone" type="tel" value="\+82 10 9999 0000"[^>]*aria-invalid="true" aria-describedby="phone-help phone-error"/);
    expect(page.html).toContain('id="phone-error">The text message service can&#39;t deliver to this number.');
    expect(page.html).not.toContain('is not a valid phone number');
    expect(await server.database.db('user_factors').where({ user_id: user.id })).toHaveLength(0);

    const korean = await aUser(server.latchkey);
    await server.latchkey.queries.users.update(korean.id, { locale: 'ko' });
    const { page: ko } = await enrolPhone(korean, '+82 10 9999 0000');
    expect(ko.status).toBe(400);
    expect(ko.html).toContain('문자 메시지 서비스가 이 번호로 보낼 수 없습니다.');
  });

  test('a provider failure (wrong credentials, outage) is told apart: another method is offered and the operator sees it in the log', async () => {
    for (const mode of ['auth', 'outage'] as const) {
      const user = await aUser(server.latchkey);
      twilio.failure.mode = mode;
      const logged = logs.length;
      try {
        const { page } = await enrolPhone(user, '+82 10 4444 0101');
        expect(page.status).toBe(503);
        expect(page.html).toContain('the problem is on our side and has been reported. Add another method, such as an authenticator app');
        expect(page.html).toContain('action="/account/security/enrol/totp"');
        expect(page.html).toContain('value="+82 10 4444 0101"');
        expect(page.html).not.toContain('aria-invalid="true"');
      } finally {
        twilio.failure.mode = undefined;
      }
      const entry = logs.slice(logged).map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } }).find((e) => e.msg.includes('the provider failed'));
      expect(entry).toMatchObject({ level: 50 });
      expect(entry!.err!.message).toMatch(mode === 'auth' ? /Authenticate/ : /Service unavailable/);
    }
  });

  test('when a code cannot be sent at sign-in, the user is told why and offered the other methods', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await enrolPhone(user, '+82 10 5555 0101');
    await agent.submit(page, '', { code: twilio.lastCodeTo('+821055550101') });
    twilio.invalidNumbers.add('+821055550101');

    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    const refused = await login.agent.submit(mfaPage, '/mfa/send');
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('The text message service refused this number. Use another method');
    expect(refused.html).not.toContain('is not a valid phone number');
    expect(refused.html).not.toContain('We sent a code');
    expect(refused.html).toContain('?method=recovery');

    twilio.invalidNumbers.delete('+821055550101');
    twilio.failure.mode = 'outage';
    try {
      const failed = await login.agent.submit(refused, '/mfa/send');
      expect(failed.status).toBe(503);
      expect(failed.html).toContain('the problem is on our side and has been reported. Use another method');
      expect(failed.html).toContain('?method=recovery');
    } finally {
      twilio.failure.mode = undefined;
    }
  });

  test('a code texted at sign-in is in the account\'s language when the app asks for none, whatever the browser says', async () => {
    const user = await aUser(server.latchkey);
    await server.latchkey.queries.users.update(user.id, { locale: 'ko' });
    const { agent, page } = await enrolPhone(user, '+82 10 7777 0101');
    await agent.submit(page, '', { code: twilio.lastCodeTo('+821077770101') });

    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    const sent = await login.agent.submit(mfaPage, '/mfa/send');
    expect(sent.html).toContain('<html lang="en">');
    const sms = [...twilio.received].reverse().find((r) => r.fields.To === '+821077770101')!;
    expect(String(sms.fields.Body)).toContain('인증 코드');
  });

  test('a number without a country code, or not a phone number, is refused naming the field', async () => {
    const user = await aUser(server.latchkey);
    const before = twilio.received.length;
    for (const phone of ['010-1234-5678', 'call me', '+1 23']) {
      const { page } = await enrolPhone(user, phone);
      expect(page.status).toBe(400);
      expect(page.html).toContain('id="phone-error">Enter a mobile number with its country code');
      expect(page.html).toContain(`value="${phone}"`);
    }
    expect(twilio.received.length).toBe(before);
  });
});
