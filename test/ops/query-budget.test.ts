import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { aClient, aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { queriesDuring } from '../helpers/queries.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Database round trips on the hot paths, counted from knex's `query` events. Issue 15 asks for at most 12 per
 * password sign-in, 16 with TOTP, 4 per refresh and 1 per client-credentials token; the budgets below are where
 * they stand, so that a change adding a query fails here instead of going unnoticed. What is left of a password
 * sign-in (20) is one write or atomic check each. oidc-provider reads and writes its interaction, session, grant,
 * code and token rows one at a time, each when its flow reaches it (16): the authorize request stores the
 * interaction, each of our pages reads it, the sign-in's end stores its result; the resume consumes it, rereads the
 * account and stores grant, code and session; the token request finds the code, its session and grant, consumes the
 * code, rereads the account and stores the access token. Ours (4): the login page and the password post each read
 * the sign-in (the page writes nothing: its passkey challenge is sealed, not stored); the post reserves its attempt
 * and reads the user with their factors and door PIN in one statement, then settles the attempt, audits it and binds
 * the sign-in in another. A TOTP sign-in (27) adds the second-factor page (the interaction, the sign-in, and the
 * factors it lists: 3) and its post (4): the interaction and the sign-in; the sign-in's try, the account's guess and
 * the factors, in one statement, before the code is checked; then the time step's use and, only where it was used,
 * the settling with its audit entry and the sign-in's move from the step it was read in, in another. A refresh (6)
 * finds the token and its grant, rereads the account, consumes the old token, and stores the new one and an access
 * token.
 */
const BUDGET = { passwordLogin: 20, totpLogin: 27, refresh: 6, clientCredentials: 1 };

const clock = steppingClock();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ clock });
});
afterAll(() => server.close());

describe('queries per request', () => {
  test(`a password login of a first-party app, authorize to tokens: at most ${BUDGET.passwordLogin}`, async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { first_party: true });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = async () => {
      const started = await startLogin(config, { prompt: '' });
      const page = await signInWithPassword(started, user.email, user.password);
      expect(page.url).toContain('code=');
      await completeLogin(config, started, page.url);
    };
    await login(); // the first one fills the client cache
    const seen = await queriesDuring(server.database.db, login);
    expect(seen.length).toBeLessThanOrEqual(BUDGET.passwordLogin);
    expect(seen.filter((sql) => /from "clients"/.test(sql))).toEqual([]);
  });

  test(`a password + TOTP login of a first-party app, authorize to tokens: at most ${BUDGET.totpLogin}`, async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    const client = await aClient(server.latchkey, { first_party: true });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = async () => {
      clock.nextStep(); // each sign-in's code from a fresh time step: a used one is refused as a replay
      const started = await startLogin(config, { prompt: '' });
      const mfaPage = await signInWithPassword(started, user.email, user.password);
      expect(mfaPage.html).toContain('authenticator app');
      const page = await started.agent.submit(mfaPage, '/mfa', { code: referenceTotp(secret, clock.now()) });
      expect(page.url).toContain('code=');
      const tokens = await completeLogin(config, started, page.url);
      expect(tokens.claims()!.amr).toEqual(expect.arrayContaining(['otp', 'mfa']));
    };
    await login();
    const seen = await queriesDuring(server.database.db, login);
    expect(seen.length).toBeLessThanOrEqual(BUDGET.totpLogin);
  });

  test(`a refresh-token exchange with rotation: at most ${BUDGET.refresh}`, async () => {
    const user = await aUser(server.latchkey);
    const client = await aClient(server.latchkey, { first_party: true });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    // offline_access is granted only on a consent prompt (OpenID Connect Core 11).
    const started = await startLogin(config, { prompt: 'consent' });
    const page = await signInWithPassword(started, user.email, user.password);
    const first = await oidc.refreshTokenGrant(config, (await completeLogin(config, started, page.url)).refresh_token!);
    let rotated: oidc.TokenEndpointResponse | undefined;
    const seen = await queriesDuring(server.database.db, async () => {
      rotated = await oidc.refreshTokenGrant(config, first.refresh_token!);
    });
    expect(rotated!.refresh_token).not.toBe(first.refresh_token);
    expect(seen.length).toBeLessThanOrEqual(BUDGET.refresh);
  });

  test(`a client-credentials token: at most ${BUDGET.clientCredentials}`, async () => {
    const client = await aClient(server.latchkey, { grant_types: ['client_credentials'], redirect_uris: [] });
    const config = await relyingParty(server.url, client.clientId, client.clientSecret);
    await oidc.clientCredentialsGrant(config, {});
    const seen = await queriesDuring(server.database.db, () => oidc.clientCredentialsGrant(config, {}));
    expect(seen.length).toBeLessThanOrEqual(BUDGET.clientCredentials);
  });
});
