import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createChangeFeed } from '../../src/db/change-feed.js';
import { createQueries } from '../../src/db/index.js';
import { createClientStore } from '../../src/oidc/clients.js';
import { createPasswordHasher } from '../../src/security/passwords.js';
import { createSecretBox } from '../../src/security/secret-box.js';
import { onRealPostgres, openTestDatabase, type TestDatabase } from '../helpers/database.js';
import { AFTER_LOGOUT, CALLBACK } from '../helpers/factories.js';
import { freePort, startServerProcess, type ServerProcess } from '../helpers/process.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';

// Instances share state only through PostgreSQL; PGlite lives inside one process, so this needs the server.
const describeOnPostgres = onRealPostgres ? describe : describe.skip;

describeOnPostgres('two server processes on one PostgreSQL', () => {
  let database: TestDatabase;
  let first: ServerProcess;
  let second: ServerProcess;
  const masterKey = crypto.randomBytes(32);

  beforeAll(async () => {
    database = await openTestDatabase();
    const firstPort = await freePort();
    // One issuer for both, as behind a load balancer.
    const env = { DATABASE_URL: database.url!, LATCHKEY_MASTER_KEY: masterKey.toString('hex'), LATCHKEY_ISSUER: `http://127.0.0.1:${firstPort}` };
    first = await startServerProcess(env, firstPort);
    second = await startServerProcess(env);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([first?.stop(), second?.stop()]);
    await database?.close();
  });

  test('a login begun on one instance finishes on the other', async () => {
    const queries = createQueries(database.db);
    const client = await createClientStore(queries, createSecretBox(masterKey)).register({
      client_name: 'Two',
      redirect_uris: [CALLBACK],
      post_logout_redirect_uris: [AFTER_LOGOUT],
    });
    const password = 'two instances, one database';
    const hasher = createPasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    const user = await queries.users.insert({ email: 'two@example.test', name: '', passwordHash: await hasher.hash(password) });

    const config = await relyingParty(first.url, client.clientId, client.clientSecret);
    const login = await startLogin(config);
    expect(login.page.url.startsWith(`${first.url}/interaction/`)).toBe(true);

    const onSecond = login.agent.rerouted((url) => url.replace(first.url, second.url));
    const callback = await signInWithPassword({ ...login, agent: onSecond }, user.email, password);
    expect(callback.url.startsWith(CALLBACK)).toBe(true);

    const tokens = await completeLogin(config, login, callback.url);
    expect(tokens.claims()!.sub).toBe(user.id);
    expect(`${first.output()}${second.output()}`).not.toMatch(/"level":50/);
  }, 60_000);

  test('a client changed anywhere is changed on every instance at once, though each caches clients', async () => {
    const feed = createChangeFeed(database.db);
    try {
      const store = createClientStore(createQueries(database.db), createSecretBox(masterKey), feed);
      const client = await store.register({ client_name: 'Machine', grant_types: ['client_credentials'] });
      const tokenFrom = (instance: ServerProcess, secret: string) =>
        fetch(`${instance.url}/token`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`${client.clientId}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: 'grant_type=client_credentials',
        }).then((r) => r.status);
      // Both instances now hold the client (and its secret) in their caches.
      expect([await tokenFrom(first, client.clientSecret!), await tokenFrom(second, client.clientSecret!)]).toEqual([200, 200]);

      const rotated = (await store.rotateSecret(client.clientId))!;
      // NOTIFY is delivered after the commit, asynchronously: allow it a moment, far less than any cache lifetime.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect([await tokenFrom(first, client.clientSecret!), await tokenFrom(second, client.clientSecret!)]).toEqual([401, 401]);
      expect([await tokenFrom(first, rotated), await tokenFrom(second, rotated)]).toEqual([200, 200]);

      await store.remove(client.clientId);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect([await tokenFrom(first, rotated), await tokenFrom(second, rotated)]).toEqual([401, 401]);
    } finally {
      await feed.close();
    }
  });

  test('SIGTERM stops an instance cleanly', async () => {
    expect(await second.stop('SIGTERM')).toBe(0);
  });
});
