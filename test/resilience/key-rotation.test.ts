import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { createSecretBox } from '../../src/security/secret-box.js';
import { systemClock } from '../../src/security/clock.js';
import { rotateKeys } from '../../src/oidc/keys.js';
import { startCluster } from '../helpers/cluster.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';

let setup: Awaited<ReturnType<typeof startCluster>>;
beforeAll(async () => {
  setup = await startCluster(2, { LATCHKEY_KEY_RELOAD_SECONDS: '1' });
}, 60_000);
afterAll(() => setup?.stop());

test('signing keys rotated under load: no request fails, and tokens signed before still verify', async () => {
  const client = await setup.registerClient();
  const machine = await setup.registerClient({ grant_types: ['client_credentials'], redirect_uris: [] });
  const rp = await relyingParty(setup.url, client.clientId, client.clientSecret);
  const machineRp = await relyingParty(setup.url, machine.clientId, machine.clientSecret);
  const user = await setup.addUser();
  const signIn = async () => {
    const started = await startLogin(rp, { prompt: 'consent', scope: 'openid offline_access' });
    return completeLogin(rp, started, (await signInWithPassword(started, user.email, user.password)).url);
  };
  const before = await signIn();
  const oldKid = decodeProtectedHeader(before.id_token!).kid;

  const idTokens: string[] = [];
  const failures: string[] = [];
  let refreshToken = before.refresh_token!;
  let running = true;
  const load = Promise.all([
    (async () => {
      while (running) {
        try {
          const refreshed = await oidc.refreshTokenGrant(rp, refreshToken);
          refreshToken = refreshed.refresh_token!;
          idTokens.push(refreshed.id_token!);
          idTokens.push((await signIn()).id_token!);
        } catch (error) {
          failures.push(String(error));
        }
      }
    })(),
    (async () => {
      while (running) await oidc.clientCredentialsGrant(machineRp, {}).catch((error) => failures.push(String(error)));
    })(),
  ]);

  await new Promise((resolve) => setTimeout(resolve, 1000));
  // Published at once, signing after three reload intervals: every instance knows the new keys before they sign.
  const rotation = await rotateKeys(setup.queries, createSecretBox(setup.masterKey), systemClock, { activationDelaySeconds: 3, retainSeconds: 3600 });
  const newKids = rotation.kids.filter((kid) => !kid.startsWith('cookie'));
  const deadline = rotation.activatesAt.getTime() + 4000;
  while (Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
  running = false;
  await load;

  expect(failures).toEqual([]);
  const kids = idTokens.map((token) => decodeProtectedHeader(token).kid);
  expect(kids).toContain(oldKid);
  expect(kids.some((kid) => newKids.includes(kid!))).toBe(true);
  // A relying party fetching the key set now verifies tokens from both sides of the rotation.
  const jwks = createRemoteJWKSet(new URL(`${setup.url}/jwks`));
  for (const token of [before.id_token!, ...idTokens]) {
    await expect(jwtVerify(token, jwks, { issuer: setup.issuer, audience: client.clientId })).resolves.toBeDefined();
  }
  // The last tokens are signed by the new keys on both instances.
  expect(newKids).toContain(kids.at(-1));
}, 60_000);
