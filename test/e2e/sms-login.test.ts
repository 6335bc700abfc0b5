import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { consoleSignIn } from '../helpers/console.js';
import { aClient, aUser } from '../helpers/factories.js';
import { startFakeTwilio, TWILIO_TEST_CREDENTIALS, twilioServerEnv } from '../helpers/fake-twilio.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let twilio: Awaited<ReturnType<typeof startFakeTwilio>>;
let server: TestServer;

beforeAll(async () => {
  twilio = await startFakeTwilio(TWILIO_TEST_CREDENTIALS);
  server = await startTestServer({
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
  const asked = await agent.submit(page, '/account/security/enrol/sms', { phone });
  const ready = await agent.submit(asked, '/account/reauth', { password: user.password });
  return { agent, page: await agent.submit(ready, '/account/security/enrol/sms', { phone }) };
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

  test('a number Twilio refuses (error 21211) gets a clear message, and nothing is half-enrolled', async () => {
    const user = await aUser(server.latchkey);
    twilio.invalidNumbers.add('+821099990000');
    const { page } = await enrolPhone(user, '+82 10 9999 0000');
    expect(page.status).toBe(502);
    expect(page.html).toContain('is not a valid phone number');
    expect(await server.database.db('user_factors').where({ user_id: user.id })).toHaveLength(0);
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
    const failed = await login.agent.submit(mfaPage, '/mfa/send');
    expect(failed.status).toBe(502);
    expect(failed.html).toContain("We couldn&#39;t send the code");
    expect(failed.html).toContain('is not a valid phone number');
    expect(failed.html).toContain('?method=recovery');
  });

  test('a number without a country code, or not a phone number, is refused naming the field', async () => {
    const user = await aUser(server.latchkey);
    const before = twilio.received.length;
    for (const phone of ['010-1234-5678', 'call me', '+1 23']) {
      const { page } = await enrolPhone(user, phone);
      expect(page.status).toBe(400);
      expect(page.html).toContain('Enter a mobile number with its country code');
    }
    expect(twilio.received.length).toBe(before);
  });
});
