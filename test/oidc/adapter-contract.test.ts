import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import crypto from 'node:crypto';
import type { Adapter, AdapterPayload } from 'oidc-provider';
// oidc-provider's own reference adapter: the behaviour ours must match.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import { createQueries } from '../../src/db/index.js';
import { createAdapterClass } from '../../src/oidc/adapter.js';
import { createClientStore } from '../../src/oidc/clients.js';
import { systemClock, type Clock } from '../../src/security/clock.js';
import { createSecretBox } from '../../src/security/secret-box.js';
import { openTestDatabase, type TestDatabase } from '../helpers/database.js';

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

const implementations: [string, () => (name: string) => Adapter][] = [
  ['knex adapter', () => knexAdapterFactory()],
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
