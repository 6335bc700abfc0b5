import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { consoleSignIn } from '../helpers/console.js';
import { aClient, aUser } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startSmtpServer } from '../helpers/smtp.js';

let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let server: TestServer;
beforeAll(async () => {
  smtp = await startSmtpServer();
  server = await startTestServer({ env: { LATCHKEY_SMTP_URL: smtp.url, LATCHKEY_MFA_FACTORS: 'totp,email' } });
});
afterAll(async () => {
  await server.close();
  await smtp.close();
});

const codeIn = (text: string | undefined) => /\b(\d{6})\b/.exec(text ?? '')![1]!;

test('an inbox is confirmed by an emailed code, then a login completes with a code read from the mail', async () => {
  const user = await aUser(server.latchkey);
  const inbox = `codes-${user.id.slice(0, 8)}@example.test`;
  const { agent, page } = await consoleSignIn(server.url, user.email, user.password);
  const enrol = await agent.submit(page, '/account/security/enrol/email', { email: inbox });
  expect(enrol.html).toContain('We sent a 6-digit code to c•••');
  const confirmMail = await smtp.messageTo(inbox);
  expect(confirmMail.subject).toMatch(/^\d{6} is your Latchkey verification code$/);
  expect(confirmMail.html).toContain(codeIn(confirmMail.text));
  await agent.submit(enrol, '', { code: codeIn(confirmMail.text) });

  const client = await aClient(server.latchkey);
  const config = await relyingParty(server.url, client.clientId, client.clientSecret);
  const login = await startLogin(config);
  const mfaPage = await signInWithPassword(login, user.email, user.password);
  smtp.messages.length = 0;
  const sent = await login.agent.submit(mfaPage, '/mfa/send');
  expect(sent.status).toBe(200);
  const mail = await smtp.messageTo(inbox);
  let callback = await login.agent.submit(sent, '/mfa', { code: codeIn(mail.text) });
  if (callback.html.includes('/confirm"')) callback = await login.agent.submit(callback, '/confirm');
  const tokens = await completeLogin(config, login, callback.url);
  expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
});
