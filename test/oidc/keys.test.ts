import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createLocalJWKSet, decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT, type JWK } from 'jose';
import { loadKeyMaterial, rotateKeys } from '../../src/oidc/keys.js';
import { aClient, aUser } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let now = new Date();
const clock = { now: () => now };
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ clock });
});
afterAll(() => server.close());

const jwks = async () => (await (await fetch(`${server.url}/jwks`)).json()) as { keys: JWK[] };

async function signIn() {
  const user = await aUser(server.latchkey);
  const client = await aClient(server.latchkey);
  const config = await relyingParty(server.url, client.clientId, client.clientSecret);
  const login = await startLogin(config);
  return completeLogin(config, login, (await signInWithPassword(login, user.email, user.password)).url);
}

describe('signing keys', () => {
  test('are stored sealed: no private part is readable in the database', async () => {
    const rows = await server.database.db('keys');
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const row of rows) {
      expect(row.secret_sealed).toMatch(/^v1\./);
      expect(JSON.stringify(row.public_jwk ?? {})).not.toMatch(/"d":/);
    }
    expect((await jwks()).keys.every((k) => !('d' in k))).toBe(true);
  });

  test('rotate without downtime: published before they sign, old ones kept until their tokens expire', async () => {
    const before = await signIn();
    const oldKid = decodeProtectedHeader(before.id_token!).kid;

    const rotation = await rotateKeys(server.latchkey.queries, server.latchkey.box, clock, { activationDelaySeconds: 60, retainSeconds: 3600 });
    expect(await server.latchkey.refreshKeys()).toBe(true);

    // Published at once, but the old key still signs until every instance has had time to learn the new one.
    const published = (await jwks()).keys.map((k) => k.kid);
    expect(published).toEqual(expect.arrayContaining([oldKid, ...rotation.kids.filter((k) => !k.startsWith('cookie'))]));
    expect(decodeProtectedHeader((await signIn()).id_token!).kid).toBe(oldKid);

    now = new Date(rotation.activatesAt.getTime() + 1000);
    expect(await server.latchkey.refreshKeys()).toBe(true);
    const after = await signIn();
    const newKid = decodeProtectedHeader(after.id_token!).kid;
    expect(rotation.kids).toContain(newKid);

    // Tokens signed before the rotation still verify against what is published now.
    const keySet = createLocalJWKSet(await jwks());
    await expect(jwtVerify(before.id_token!, keySet, { currentDate: new Date(), clockTolerance: 7200 })).resolves.toBeDefined();

    now = new Date(rotation.oldKeysExpireAt.getTime() + 1000);
    await server.latchkey.refreshKeys();
    expect((await jwks()).keys.map((k) => k.kid)).not.toContain(oldKid);
  });

  test('nothing changes when nothing was rotated', async () => {
    expect(await server.latchkey.refreshKeys()).toBe(false);
    const material = await loadKeyMaterial(server.latchkey.queries, server.latchkey.box, clock);
    expect(material.jwks.keys.length).toBeGreaterThanOrEqual(2);
  });

  test('a token signed by an unknown key does not verify against the published set', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'ES256', kid: 'forged' }).sign(privateKey);
    await expect(jwtVerify(forged, createLocalJWKSet(await jwks()))).rejects.toThrow();
  });
});
