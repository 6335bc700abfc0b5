import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aClient, aUser } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ env: { LATCHKEY_PIN_WEB_MIN_LENGTH: '6' } });
});
afterAll(() => server.close());

test('a door PIN serves as the second factor of an openid-client login (required by the app, or chosen); amr says pin', async () => {
  const api = apiClient(server.url);
  const { token } = await anAdmin(server.latchkey, server.url, ['access_credential_manager']);
  const user = await aUser(server.latchkey);
  // A 4-digit door code is too short for the web; the 6-digit one qualifies.
  await api('POST', `/api/admin/access/users/${user.id}/mfa-codes`, token, { code: '4826' });
  const client = await aClient(server.latchkey, { require_mfa: false });
  const config = await relyingParty(server.url, client.clientId, client.clientSecret);

  const beforePin = await startLogin(config);
  expect((await signInWithPassword(beforePin, user.email, user.password)).url).toContain('/callback');

  await api('POST', `/api/admin/access/users/${user.id}/mfa-codes`, token, { code: '682013' });
  // Issued by an admin, a PIN alone does not change the user's web sign-in...
  const notChosen = await startLogin(config);
  expect((await signInWithPassword(notChosen, user.email, user.password)).url).toContain('/callback');
  // ...until the user chooses it as their preferred method.
  const row = (await server.latchkey.queries.users.findById(user.id))!;
  expect(await server.latchkey.mfa.setPreferred(row, 'pin', { actorId: user.id })).toBe(true);
  const login = await startLogin(config);
  const mfaPage = await signInWithPassword(login, user.email, user.password);
  expect(mfaPage.html).toContain('Enter your door PIN.');
  const short = await login.agent.submit(mfaPage, '/mfa', { code: '4826' });
  expect(short.status).toBe(401);
  let callback = await login.agent.submit(short, '/mfa', { code: '682013' });
  if (callback.html.includes('/confirm"')) callback = await login.agent.submit(callback, '/confirm');
  const tokens = await completeLogin(config, login, callback.url);
  expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'pin', 'mfa']));

  // An app that requires MFA takes the PIN too, for a user who never chose it, without making them enrol anything.
  const other = await aUser(server.latchkey);
  await api('POST', `/api/admin/access/users/${other.id}/mfa-codes`, token, { code: '730195' });
  const strict = await aClient(server.latchkey, { require_mfa: true });
  const strictConfig = await relyingParty(server.url, strict.clientId, strict.clientSecret);
  const strictLogin = await startLogin(strictConfig);
  const pinPage = await signInWithPassword(strictLogin, other.email, other.password);
  expect(pinPage.html).toContain('Enter your door PIN.');
  expect(pinPage.html).not.toContain('totp-qr');
});
