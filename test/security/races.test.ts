import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import type { UserRow } from '../../src/db/users.js';
import { aClient, aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startSmtpServer } from '../helpers/smtp.js';
import { startFakeTwilio, TWILIO_TEST_CREDENTIALS, twilioServerEnv } from '../helpers/fake-twilio.js';

const clock = steppingClock();
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let twilio: Awaited<ReturnType<typeof startFakeTwilio>>;
let server: TestServer;
beforeAll(async () => {
  smtp = await startSmtpServer();
  twilio = await startFakeTwilio(TWILIO_TEST_CREDENTIALS);
  server = await startTestServer({
    clock,
    env: {
      LATCHKEY_SMTP_URL: smtp.url,
      ...twilioServerEnv(twilio.origin),
      LATCHKEY_MFA_FACTORS: 'totp,sms,email',
    },
  });
});
afterAll(async () => {
  await server.close();
  await smtp.close();
  await twilio.close();
});

const RACERS = 20;
const together = <T>(attempt: () => Promise<T>) => Promise.allSettled(Array.from({ length: RACERS }, attempt));
const successes = <T>(results: PromiseSettledResult<T>[], ok: (value: T) => boolean) =>
  results.filter((r) => r.status === 'fulfilled' && ok(r.value)).length;

describe(`the same secret submitted ${RACERS} times at once works exactly once`, () => {
  test('a recovery code', async () => {
    const user = await aUser(server.latchkey);
    const { recoveryCodes } = await enrolTotp(server.latchkey, user, clock);
    const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    const results = await together(() =>
      server.latchkey.mfa.verifyAtSignIn(row, { methodId: 'recovery', code: recoveryCodes[0]!, pinAccepted: false, firstFailureAfterPassword: false }, { interactionUid: 'race', locale: 'en' }, { actorId: user.id }),
    );
    expect(successes(results, (r) => r.ok)).toBe(1);
  });

  test('a TOTP code', async () => {
    const user = await aUser(server.latchkey);
    const { secret, methodId } = await enrolTotp(server.latchkey, user, clock);
    clock.nextStep();
    const code = referenceTotp(secret, clock.now());
    const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    const results = await together(() =>
      server.latchkey.mfa.verifyAtSignIn(row, { methodId, code, pinAccepted: false, firstFailureAfterPassword: false }, { interactionUid: 'race', locale: 'en' }, { actorId: user.id }),
    );
    expect(successes(results, (r) => r.ok)).toBe(1);
  });

  test('an emailed code', async () => {
    const user = await aUser(server.latchkey);
    const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    const inbox = `race-${user.id.slice(0, 8)}@example.test`;
    const started = await server.latchkey.mfa.startEnrolment(row, 'email', { email: inbox });
    const enrolCode = /\b(\d{6})\b/.exec((await smtp.messageTo(inbox)).text ?? '')![1]!;
    const confirmed = await server.latchkey.mfa.confirmEnrolment(row, started!.pendingId, enrolCode, { actorId: user.id });
    if (!confirmed.ok) throw new Error(confirmed.reason);
    smtp.messages.length = 0;
    const context = { interactionUid: 'race-email', locale: 'en' as const };
    await server.latchkey.mfa.sendCode(row, confirmed.method.id, context, { actorId: user.id });
    const code = /\b(\d{6})\b/.exec((await smtp.messageTo(inbox)).text ?? '')![1]!;
    const fresh = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    const results = await together(() =>
      server.latchkey.mfa.verifyAtSignIn(fresh, { methodId: confirmed.method.id, code, pinAccepted: false, firstFailureAfterPassword: false }, context, { actorId: user.id }),
    );
    expect(successes(results, (r) => r.ok)).toBe(1);
  });

  test('a texted code', async () => {
    const user = await aUser(server.latchkey);
    const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    const phone = '+821077770101';
    const started = await server.latchkey.mfa.startEnrolment(row, 'sms', { phone });
    const confirmed = await server.latchkey.mfa.confirmEnrolment(row, started!.pendingId, twilio.lastCodeTo(phone), { actorId: user.id });
    if (!confirmed.ok) throw new Error(confirmed.reason);
    const context = { interactionUid: 'race-sms', locale: 'en' as const };
    await server.latchkey.mfa.sendCode(row, confirmed.method.id, context, { actorId: user.id });
    const code = twilio.lastCodeTo(phone);
    const fresh = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
    const results = await together(() =>
      server.latchkey.mfa.verifyAtSignIn(fresh, { methodId: confirmed.method.id, code, pinAccepted: false, firstFailureAfterPassword: false }, context, { actorId: user.id }),
    );
    expect(successes(results, (r) => r.ok)).toBe(1);
    expect(twilio.violations).toEqual([]);
  });

  test('an authorization code, and a refresh token', async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey);
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    const callback = await signInWithPassword(login, user.email, user.password);
    const codeResults = await together(() =>
      oidc.authorizationCodeGrant(config, new URL(callback.url), { pkceCodeVerifier: login.verifier, expectedNonce: login.nonce, expectedState: login.state }),
    );
    expect(successes(codeResults, () => true)).toBe(1);
    for (const r of codeResults) if (r.status === 'rejected') expect(r.reason).toMatchObject({ error: 'invalid_grant' });

    // The code's grant was revoked by the replays; a fresh sign-in gives a refresh token to race with.
    const again = await startLogin(config, {}, login.agent);
    const consented = again.page.html.includes('/confirm"') ? await again.agent.submit(again.page, '/confirm') : again.page;
    const tokens = await oidc.authorizationCodeGrant(config, new URL(consented.url), { pkceCodeVerifier: again.verifier, expectedNonce: again.nonce, expectedState: again.state });
    const refreshResults = await together(() => oidc.refreshTokenGrant(config, tokens.refresh_token!));
    expect(successes(refreshResults, () => true)).toBe(1);
    for (const r of refreshResults) if (r.status === 'rejected') expect(r.reason).toMatchObject({ error: 'invalid_grant' });
  });
});
