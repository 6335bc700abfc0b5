import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import type { ModelWrite } from '../../src/db/oidc-models.js';
import { aClient, aUser } from '../helpers/factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Attacks on oidc-provider's rows read once per request and written together at its end (src/oidc/adapter.ts):
 * what a request decides on a copy read at its start, and what another request does before its writes land.
 */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

async function signedIn() {
  const user = await aUser(server.latchkey);
  const client = await aClient(server.latchkey);
  const config = await relyingParty(server.url, client.clientId, client.clientSecret);
  const login = await startLogin(config);
  const callback = await signInWithPassword(login, user.email, user.password);
  return { user, client, config, login, callback };
}

describe('a request decides on what it read at its start', () => {
  // oidc-provider checks the account (findAccount) after it has spent the code: a disabling that lands before the spend
  // is seen. Read with the code and reused, the account is as it was before the spend. (A refresh checks the account
  // before spending its token, in oidc-provider's order, so it had that window before these changes too.)
  test('an account disabled while its code is being redeemed gets no tokens (the account is read after the code is spent)', async () => {
    const { user, config, login, callback } = await signedIn();
    const models = server.latchkey.queries.oidcModels;
    const consume = models.consume;
    // An admin disables the account after the token request read the code, before it spends it.
    models.consume = async (...args) => {
      models.consume = consume;
      await server.latchkey.queries.users.update(user.id, { status: 'disabled' });
      return consume(...args);
    };
    try {
      await expect(completeLogin(config, login, callback.url)).rejects.toMatchObject({ error: 'invalid_grant' });
    } finally {
      models.consume = consume;
    }
  });
});

describe('a reuse that lands before the winner has stored its writes', () => {
  test("a refresh token replayed while its rotation is in flight: the rotation's new tokens do not work", async () => {
    const { config, login, callback } = await signedIn();
    const tokens = await completeLogin(config, login, callback.url);
    const models = server.latchkey.queries.oidcModels;
    const apply = models.apply;
    let replay: Promise<unknown> | undefined;
    models.apply = async (writes: readonly ModelWrite[]) => {
      if (!replay && writes.some((w) => w.kind === 'upsert' && w.model === 'RefreshToken')) {
        // The winner has spent the old token; its new ones are not stored yet. The thief presents the old one now.
        replay = oidc.refreshTokenGrant(config, tokens.refresh_token!).then(
          () => 'accepted',
          (e: { error?: string }) => e.error,
        );
        await replay;
      }
      return apply(writes);
    };
    let rotated;
    try {
      rotated = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    } finally {
      models.apply = apply;
    }
    expect(await replay).toBe('invalid_grant');
    await expect(oidc.refreshTokenGrant(config, rotated.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect(await oidc.tokenIntrospection(config, rotated.access_token)).toMatchObject({ active: false });
    await expect(oidc.fetchUserInfo(config, rotated.access_token, oidc.skipSubjectCheck)).rejects.toBeDefined();
  });

  test("a code replayed while its redemption is in flight: the redemption's tokens do not work", async () => {
    const { config, login, callback } = await signedIn();
    const models = server.latchkey.queries.oidcModels;
    const apply = models.apply;
    let replay: Promise<unknown> | undefined;
    models.apply = async (writes: readonly ModelWrite[]) => {
      if (!replay && writes.some((w) => w.kind === 'upsert' && w.model === 'AccessToken')) {
        replay = completeLogin(config, login, callback.url).then(
          () => 'accepted',
          (e: { error?: string }) => e.error,
        );
        await replay;
      }
      return apply(writes);
    };
    let tokens;
    try {
      tokens = await completeLogin(config, login, callback.url);
    } finally {
      models.apply = apply;
    }
    expect(await replay).toBe('invalid_grant');
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect(await oidc.tokenIntrospection(config, tokens.access_token)).toMatchObject({ active: false });
  });
});

describe('the interaction uid in the URL', () => {
  test.each([
    ['a NUL byte', '%00'],
    ['a long one', 'x'.repeat(4000)],
    ['SQL', "x'%20or%20'1'='1"],
  ])('%s answers 400, not 500', async (_name, uid) => {
    const { login } = await (async () => {
      const client = await aClient(server.latchkey);
      const config = await relyingParty(server.url, client.clientId, client.clientSecret);
      return { login: await startLogin(config) };
    })();
    const res = await login.agent.request(`${server.url}/interaction/${uid}`);
    expect(res.status).toBe(400);
  });
});
