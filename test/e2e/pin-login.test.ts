import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { ACR } from '../../src/mfa/policy.js';
import { aClient, aUser } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ env: { LATCHKEY_PIN_WEB_MIN_LENGTH: '6' } });
});
afterAll(() => server.close());

test('a door PIN its owner opted in to answers the second step with amr pwd+pin and its own acr, never a demand for mfa', async () => {
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
  // Issued by an admin, a PIN alone does not change the user's web sign-in, nor can it be chosen...
  const notChosen = await startLogin(config);
  expect((await signInWithPassword(notChosen, user.email, user.password)).url).toContain('/callback');
  const row = (await server.latchkey.queries.users.findById(user.id))!;
  expect(await server.latchkey.mfa.setPreferred(row, 'pin', { actorId: user.id })).toBe(false);
  // ...until the user opts in (on their account page) and chooses it as their preferred method.
  await server.latchkey.access.enableWebPin(user.id, '682013', { actorId: user.id });
  expect(await server.latchkey.mfa.setPreferred(row, 'pin', { actorId: user.id })).toBe(true);
  const login = await startLogin(config);
  const mfaPage = await signInWithPassword(login, user.email, user.password);
  expect(mfaPage.html).toContain('Enter your door PIN.');
  const short = await login.agent.submit(mfaPage, '/mfa', { code: '4826' });
  expect(short.status).toBe(401);
  let callback = await login.agent.submit(short, '/mfa', { code: '682013' });
  if (callback.html.includes('/confirm"')) callback = await login.agent.submit(callback, '/confirm');
  const tokens = await completeLogin(config, login, callback.url);
  // A password and a PIN are two things the user knows: one factor, so no `mfa`, and an acr of its own below mfa.
  expect(tokens.claims()!.amr).toEqual(['pwd', 'pin']);
  expect(tokens.claims()!.acr).toBe(ACR.pin);

  // An app that requires MFA, or acr_values asking for it, is never answered by a PIN: the user sets up a real factor.
  const strict = await aClient(server.latchkey, { require_mfa: true });
  const strictConfig = await relyingParty(server.url, strict.clientId, strict.clientSecret);
  const strictLogin = await startLogin(strictConfig);
  const strictPage = await signInWithPassword(strictLogin, user.email, user.password);
  expect(strictPage.html).not.toContain('Enter your door PIN.');
  expect(strictPage.html).toContain('totp-qr');
  const asked = await startLogin(config, { acr_values: ACR.mfa });
  const askedPage = await signInWithPassword(asked, user.email, user.password);
  expect(askedPage.html).not.toContain('Enter your door PIN.');
  expect(askedPage.html).toContain('totp-qr');
  // Posting the PIN to that sign-in's second-factor form anyway does not pass.
  const forced = await asked.agent.request(`${askedPage.url.split('?')[0]}/mfa`, { form: { _csrf: /name="_csrf" value="([^"]+)"/.exec(askedPage.html)![1]!, method: 'pin', code: '682013' } });
  expect(forced.status).toBe(400);
});

test('under enforcement a PIN answers only where a super admin said so', async () => {
  const user = await aUser(server.latchkey);
  await server.latchkey.access.addMfaCode(user.id, { code: '730195' }, { actorId: null });
  await server.latchkey.access.enableWebPin(user.id, '730195', { actorId: user.id });
  const client = await aClient(server.latchkey);
  const config = await relyingParty(server.url, client.clientId, client.clientSecret);
  await server.latchkey.mfa.setEnforcement(true, { actorId: null });
  try {
    const refused = await startLogin(config);
    expect((await signInWithPassword(refused, user.email, user.password)).html).toContain('totp-qr');
    await server.latchkey.settings.write('door-pin', { answers_enforcement: true });
    const allowed = await startLogin(config);
    expect((await signInWithPassword(allowed, user.email, user.password)).html).toContain('Enter your door PIN.');
  } finally {
    await server.latchkey.mfa.setEnforcement(false, { actorId: null });
    await server.latchkey.settings.write('door-pin', { answers_enforcement: false });
  }
});
