import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { authenticateWithPassword } from '../../src/interactions/password-login.js';
import { createThrottle } from '../../src/security/throttle.js';

const clock = steppingClock();
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let token: string;
beforeAll(async () => {
  server = await startTestServer({ clock });
  api = apiClient(server.url);
  token = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
});
afterAll(() => server.close());

describe('settings over the admin API', () => {
  test('a factor switched off is no longer offered or accepted; an unavailable one is refused by name', async () => {
    const user = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, user, clock);
    const row = (await server.latchkey.queries.users.findById(user.id))!;
    expect((await server.latchkey.mfa.methodsFor(row)).map((m) => m.factor)).toEqual(['totp']);

    const current = await api('GET', '/api/admin/settings/factors', token);
    expect(current.json).toEqual({ enabled: server.latchkey.adminApi.builtFactors });
    const off = await api('PUT', '/api/admin/settings/factors', token, { enabled: ['pin'] }, { 'if-match': current.headers.get('etag')! });
    expect(off.status).toBe(200);
    expect(await server.latchkey.mfa.methodsFor(row)).toEqual([]);
    expect(await server.latchkey.mfa.enrollableFactors()).toEqual([]);

    expect((await api('PUT', '/api/admin/settings/factors', token, { enabled: ['sms'] })).json).toMatchObject({ status: 400, field: 'enabled' });
    expect((await api('PUT', '/api/admin/settings/factors', token, { enabled: [] })).json).toMatchObject({ status: 400, field: 'enabled' });
    await api('PUT', '/api/admin/settings/factors', token, { enabled: ['totp', 'pin'] });
    expect((await server.latchkey.mfa.methodsFor(row)).map((m) => m.factor)).toEqual(['totp']);
  });

  test('the lockout and password policy take effect at once on this instance, and every change is audited', async () => {
    const lockout = await api('PUT', '/api/admin/settings/lockout', token, { login_account_failures: 3, login_ip_failures: 50, login_window_seconds: 900, mfa_account_failures: 5 });
    expect(lockout.status).toBe(200);
    const user = await aUser(server.latchkey);
    const deps = { queries: server.latchkey.queries, hasher: server.latchkey.hasher, throttle: createThrottle(server.latchkey.queries, clock), settings: server.latchkey.settings };
    const attempt = (password: string) => authenticateWithPassword(deps, { email: user.email, password, ip: '203.0.113.9' });
    for (let i = 0; i < 3; i++) expect(await attempt('wrong')).toMatchObject({ ok: false, reason: 'invalid_credentials' });
    expect(await attempt(user.password)).toMatchObject({ ok: false, reason: 'throttled' });
    // Above the 15 characters a password that may be the only factor needs anyway.
    const policy = await api('PUT', '/api/admin/settings/password-policy', token, { min_length: 20 });
    expect(policy.json).toEqual({ min_length: 20 });
    expect((await api('POST', '/api/admin/users', token, { email: 'shortpw@example.test', password: 'only nineteen chars' })).json).toMatchObject({ status: 400, field: 'password' });
    expect((await api('POST', '/api/admin/users', token, { email: 'longpw@example.test', password: 'twenty characters ok' })).status).toBe(201);
    const all = await api('GET', '/api/admin/settings', token);
    expect(all.json).toMatchObject({ lockout: { value: { login_account_failures: 3 } }, 'password-policy': { value: { min_length: 20 }, version: 1 } });
    const audited = await server.latchkey.queries.audit.search({ action: 'settings.', limit: 10 });
    expect(audited.map((e) => e.action)).toEqual(expect.arrayContaining(['settings.lockout', 'settings.password_policy']));
  });
});
