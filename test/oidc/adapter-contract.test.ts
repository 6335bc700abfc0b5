import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import crypto from 'node:crypto';
import type { Adapter, AdapterPayload } from 'oidc-provider';
// oidc-provider's own reference adapter: the behaviour ours must match.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import { createQueries } from '../../src/db/index.js';
import type { Context } from 'koa';
import { createAdapterClass, requestRowsScope } from '../../src/oidc/adapter.js';
import { accountById } from '../../src/oidc/account.js';
import { createClientStore } from '../../src/oidc/clients.js';
import { systemClock, type Clock } from '../../src/security/clock.js';
import { createSecretBox } from '../../src/security/secret-box.js';
import { openTestDatabase, type TestDatabase } from '../helpers/database.js';
import { queriesDuring } from '../helpers/queries.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(() => database.close());

function knexAdapterFactory(clock: Clock = systemClock) {
  const queries = createQueries(database.db);
  const KnexAdapter = createAdapterClass(queries, createClientStore(queries, createSecretBox(crypto.randomBytes(32))), clock);
  return (name: string): Adapter => new KnexAdapter(name);
}

/** Runs `work` as one request does: oidc-provider's rows read once, its writes sent together at the end. */
const inOneRequest = <T>(work: () => Promise<T>, ctx = { remove: () => undefined } as unknown as Context): Promise<T> => {
  let result: T;
  return requestRowsScope(createQueries(database.db))(ctx, async () => {
    result = await work();
  }).then(() => result);
};

/** The knex adapter with every call a request of its own: its writes go through the one-statement flush. */
function perRequestAdapterFactory() {
  const make = knexAdapterFactory();
  return (name: string): Adapter => {
    const inner = make(name);
    return new Proxy(inner, {
      get: (target, property) => {
        const value = Reflect.get(target, property);
        return typeof value === 'function' ? (...args: unknown[]) => inOneRequest(() => value.apply(target, args)) : value;
      },
    });
  };
}

const implementations: [string, () => (name: string) => Adapter][] = [
  ['knex adapter', () => knexAdapterFactory()],
  ['knex adapter, each call a request', () => perRequestAdapterFactory()],
  ['oidc-provider memory adapter', () => (name: string) => new MemoryAdapter(name)],
];

const id = () => crypto.randomBytes(16).toString('base64url');

describe.each(implementations)('adapter contract: %s', (_label, factory) => {
  let adapter: (name: string) => Adapter;
  beforeAll(() => {
    adapter = factory();
  });

  test('upsert then find returns the payload; an unknown id finds nothing', async () => {
    const tokens = adapter('AccessToken');
    const key = id();
    const payload: AdapterPayload = { jti: key, kind: 'AccessToken', accountId: 'a1', grantId: id(), scope: 'openid' };
    await tokens.upsert(key, payload, 60);
    expect(await tokens.find(key)).toEqual(payload);
    expect(await tokens.find(id())).toBeUndefined();
  });

  test('upsert replaces an existing payload', async () => {
    const sessions = adapter('Session');
    const key = id();
    await sessions.upsert(key, { jti: key, uid: 'u-1', accountId: 'a' }, 60);
    await sessions.upsert(key, { jti: key, uid: 'u-1', accountId: 'b' }, 60);
    expect(await sessions.find(key)).toMatchObject({ accountId: 'b' });
  });

  test('models are separate namespaces', async () => {
    const key = id();
    await adapter('AccessToken').upsert(key, { jti: key, kind: 'AccessToken' }, 60);
    expect(await adapter('AuthorizationCode').find(key)).toBeUndefined();
  });

  test('findByUid finds a session by its uid', async () => {
    const sessions = adapter('Session');
    const key = id();
    const uid = id();
    await sessions.upsert(key, { jti: key, uid, accountId: 'a' }, 60);
    expect(await sessions.findByUid(uid)).toMatchObject({ jti: key, uid });
    expect(await sessions.findByUid(id())).toBeUndefined();
  });

  test('findByUserCode finds a device code by its user code', async () => {
    const codes = adapter('DeviceCode');
    const key = id();
    const userCode = `UC-${id()}`;
    await codes.upsert(key, { jti: key, userCode, grantId: id() }, 60);
    expect(await codes.findByUserCode(userCode)).toMatchObject({ jti: key, userCode });
    expect(await codes.findByUserCode('nope')).toBeUndefined();
  });

  test('consume marks the payload consumed with a timestamp', async () => {
    const codes = adapter('AuthorizationCode');
    const key = id();
    await codes.upsert(key, { jti: key, grantId: id() }, 60);
    expect((await codes.find(key))?.consumed).toBeUndefined();
    const before = Math.floor(Date.now() / 1000);
    await codes.consume(key);
    const consumed = (await codes.find(key))?.consumed;
    expect(typeof consumed).toBe('number');
    expect(consumed as number).toBeGreaterThanOrEqual(before - 1);
  });

  test('destroy removes the entry', async () => {
    const grants = adapter('Grant');
    const key = id();
    await grants.upsert(key, { jti: key, accountId: 'a' }, 60);
    await grants.destroy(key);
    expect(await grants.find(key)).toBeUndefined();
  });

  test('revokeByGrantId removes every token of that grant, across models, and nothing else', async () => {
    const grantId = id();
    const other = id();
    const [at, rt, code, keep] = [id(), id(), id(), id()];
    await adapter('AccessToken').upsert(at, { jti: at, grantId }, 60);
    await adapter('RefreshToken').upsert(rt, { jti: rt, grantId }, 60);
    await adapter('AuthorizationCode').upsert(code, { jti: code, grantId }, 60);
    await adapter('AccessToken').upsert(keep, { jti: keep, grantId: other }, 60);
    await adapter('AccessToken').revokeByGrantId(grantId);
    expect(await adapter('AccessToken').find(at)).toBeUndefined();
    expect(await adapter('RefreshToken').find(rt)).toBeUndefined();
    expect(await adapter('AuthorizationCode').find(code)).toBeUndefined();
    expect(await adapter('AccessToken').find(keep)).toMatchObject({ grantId: other });
  });
});

describe('knex adapter beyond the contract', () => {
  test('an expired entry is invisible, and purging deletes it', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const clock = { now: () => now };
    const adapter = knexAdapterFactory(clock)('AccessToken');
    const key = id();
    await adapter.upsert(key, { jti: key }, 30);
    expect(await adapter.find(key)).toBeDefined();
    now = new Date(now.getTime() + 31_000);
    expect(await adapter.find(key)).toBeUndefined();
    await createQueries(database.db).oidcModels.purgeExpired(now);
    const rows = await database.db('oidc_model_instances').where({ id: key });
    expect(rows).toHaveLength(0);
  });

  test('of concurrent consumes of one code exactly one succeeds; the others fail as invalid_grant', async () => {
    const adapter = knexAdapterFactory()('AuthorizationCode');
    const key = id();
    await adapter.upsert(key, { jti: key, grantId: id() }, 60);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => adapter.consume(key)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) {
      expect(r.reason).toMatchObject({ error: 'invalid_grant' });
    }
  });

  test('clients are read from the clients table with their secret unsealed', async () => {
    const queries = createQueries(database.db);
    const store = createClientStore(queries, createSecretBox(crypto.randomBytes(32)));
    const adapter = new (createAdapterClass(queries, store, systemClock))('Client');
    const created = await store.register({ client_name: 'Contract', redirect_uris: ['https://app.example/cb'] });
    expect(await adapter.find(created.clientId)).toMatchObject({ client_id: created.clientId, client_secret: created.clientSecret });
    const row = await queries.clients.find(created.clientId);
    expect(row?.client_secret_sealed).not.toContain(created.clientSecret!);
  });
});

describe('knex adapter within one request', () => {
  const stored = (model: string, key: string) => database.db('oidc_model_instances').where({ model, id: key }).first();

  test('writes wait for the end of the request and go in one statement; reads of them cost nothing', async () => {
    const adapter = knexAdapterFactory();
    const [interaction, grant, code, session, uid] = [id(), id(), id(), id(), id()];
    await adapter('Interaction').upsert(interaction, { jti: interaction }, 60);
    const seen = await queriesDuring(database.db, () =>
      inOneRequest(async () => {
        await adapter('Interaction').destroy(interaction);
        await adapter('Grant').upsert(grant, { jti: grant, accountId: 'a' }, 60);
        await adapter('AuthorizationCode').upsert(code, { jti: code, grantId: grant, sessionUid: uid }, 60);
        await adapter('Session').upsert(session, { jti: session, uid, accountId: 'a' }, 60);
        expect(await adapter('Interaction').find(interaction)).toBeUndefined();
        expect(await adapter('Session').findByUid(uid)).toMatchObject({ jti: session });
        expect(await stored('Grant', grant)).toBeUndefined();
      }),
    );
    // The first is this test's own look at the table; the adapter's are all in the second.
    expect(seen).toHaveLength(2);
    expect(seen[1]).toMatch(/^\s*with gone as \(\s*delete from oidc_model_instances/);
    expect(await stored('Interaction', interaction)).toBeUndefined();
    expect(await stored('Grant', grant)).toMatchObject({ id: grant });
    expect(await stored('Session', session)).toMatchObject({ uid });
  });

  test('of two requests resuming one interaction, only the one whose delete lands stores anything', async () => {
    const adapter = knexAdapterFactory();
    const interaction = id();
    await adapter('Interaction').upsert(interaction, { jti: interaction, result: { login: { accountId: 'a' } } }, 60);
    const sessions = [id(), id()];
    // Both read the interaction before either stores anything: the race this is about, not one request finishing
    // before the other starts.
    let found = 0;
    let bothFound!: () => void;
    const together = new Promise<void>((resolve) => (bothFound = resolve));
    const resume = (session: string, race = true) =>
      inOneRequest(async () => {
        expect(await adapter('Interaction').find(interaction)).toBeDefined();
        if (race && ++found === sessions.length) bothFound();
        if (race) await together;
        await adapter('Interaction').destroy(interaction);
        await adapter('Session').upsert(session, { jti: session, uid: id(), accountId: 'a' }, 60);
      });
    const outcomes = await Promise.allSettled(sessions.map((session) => resume(session)));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({ reason: { name: 'SessionNotFound' } });
    const stored = await database.db('oidc_model_instances').where({ model: 'Session' }).whereIn('id', sessions);
    expect(stored).toHaveLength(1);
    // And in sequence: the second finds nothing to resume.
    await expect(resume(id(), false)).rejects.toThrow();
  });

  test("a code is read with its session, grant and account: the token request's next reads cost nothing", async () => {
    const queries = createQueries(database.db);
    const user = await queries.users.insert({ email: `u-${id()}@example.test`, name: 'Reader', passwordHash: null });
    const adapter = knexAdapterFactory();
    const [grant, code, session, uid] = [id(), id(), id(), id()];
    await adapter('Grant').upsert(grant, { jti: grant, accountId: user.id }, 60);
    await adapter('Session').upsert(session, { jti: session, uid, accountId: user.id }, 60);
    await adapter('AuthorizationCode').upsert(code, { jti: code, grantId: grant, sessionUid: uid, accountId: user.id }, 60);
    const seen = await queriesDuring(database.db, () =>
      inOneRequest(async () => {
        expect(await adapter('AuthorizationCode').find(code)).toMatchObject({ jti: code });
        expect(await adapter('Session').findByUid(uid)).toMatchObject({ jti: session });
        expect(await adapter('Grant').find(grant)).toMatchObject({ jti: grant });
        expect(await accountById(queries, user.id)).toMatchObject({ id: user.id, email: user.email });
      }),
    );
    expect(seen).toHaveLength(1);
  });

  test('a consume is sent at once, after the writes before it, and a second one in the request still fails', async () => {
    const adapter = knexAdapterFactory();
    const code = id();
    await expect(
      inOneRequest(async () => {
        await adapter('AuthorizationCode').upsert(code, { jti: code, grantId: id() }, 60);
        await adapter('AuthorizationCode').consume(code);
        expect((await stored('AuthorizationCode', code))?.consumed_at).toBeInstanceOf(Date);
        expect((await adapter('AuthorizationCode').find(code))?.consumed).toEqual(expect.any(Number));
        await adapter('AuthorizationCode').consume(code);
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('a request that fails still stores what it wrote, as writes one by one would have', async () => {
    const adapter = knexAdapterFactory();
    const token = id();
    await expect(
      inOneRequest(async () => {
        await adapter('AccessToken').upsert(token, { jti: token }, 60);
        throw new Error('the request failed later');
      }),
    ).rejects.toThrow('the request failed later');
    expect(await stored('AccessToken', token)).toMatchObject({ id: token });
  });

  test('writes that cannot be stored fail the request, and its response loses the cookie and redirect naming them', async () => {
    const adapter = knexAdapterFactory();
    const removed: string[] = [];
    const ctx = { remove: (header: string) => removed.push(header) } as unknown as Context;
    const session = id();
    // PostgreSQL's jsonb refuses a NUL character: the write fails only when the request ends.
    const writing = inOneRequest(() => adapter('Session').upsert(session, { jti: session, uid: id(), accountId: 'a\u0000' }, 60), ctx);
    await expect(writing).rejects.toThrow();
    expect(removed).toEqual(['set-cookie', 'location']);
    expect(await stored('Session', session)).toBeUndefined();
  });

  test('a row handed out twice in a request is a copy each time: changing one changes nothing stored', async () => {
    const adapter = knexAdapterFactory();
    const session = id();
    await adapter('Session').upsert(session, { jti: session, uid: id(), authorizations: { app: { grantId: 'g' } } }, 60);
    await inOneRequest(async () => {
      const first = (await adapter('Session').find(session)) as { authorizations: Record<string, unknown> };
      first.authorizations.other = { grantId: 'x' };
      expect(await adapter('Session').find(session)).toMatchObject({ authorizations: { app: { grantId: 'g' } } });
      expect((await adapter('Session').find(session))?.authorizations).not.toHaveProperty('other');
    });
  });
});
