import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { z } from 'zod';
import type { Operation } from '../../src/admin/api/operation.js';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aClient, aUser } from '../helpers/factories.js';
import { relyingParty, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Random and hostile input (fast-check) at every JSON operation of the admin API and at the forms of the sign-in
 * pages and both consoles: never a 500, never an unescaped echo in a page, and only valid requests change the data.
 */
const MARKER = '<b id="fc-hostile">';
const RUNS = Number(process.env.RESILIENCE_PROPERTY_RUNS ?? 12);
const hostileString = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.constantFrom(`${MARKER}<script>alert(1)</script>`, "' OR '1'='1' --", '"; drop table users; --', '\u0000\u0001\uFFFF', '../../etc/passwd', '%00%zz', '𝕃𝕒𝕥𝕔𝕙🔑', 'a'.repeat(100_000), '=cmd|/C calc!A0', ' ', ''),
  fc.string({ maxLength: 40 }).map((s) => `${MARKER}${s}`),
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(hostileString, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(hostileString, { maxLength: 4 }), fc.dictionary(hostileString, hostileString, { maxKeys: 3 }));

/** Objects with the fields a schema knows (each maybe missing or of the wrong type), or anything at all. */
function bodyFor(schema: z.ZodType | undefined): fc.Arbitrary<unknown> {
  if (schema instanceof z.ZodObject) {
    const keys = Object.keys(schema.shape as Record<string, unknown>);
    return fc.oneof(fc.record(Object.fromEntries(keys.map((k) => [k, hostileValue])), { requiredKeys: [] }), fc.jsonValue());
  }
  return fc.oneof(fc.jsonValue(), hostileString);
}

let server: TestServer;
let token: string;
const fixtures: Record<string, string> = {};
beforeAll(async () => {
  server = await startTestServer();
  const admin = await anAdmin(server.latchkey, server.url, ['super_admin']);
  token = admin.token;
  const someone = await aUser(server.latchkey);
  const client = await aClient(server.latchkey);
  const site = await server.latchkey.access.createSite({ name: 'Hostile HQ', time_zone: 'UTC' }, { actorId: null });
  Object.assign(fixtures, { id: someone.id, userId: someone.id, clientId: client.clientId, siteId: site.id, name: 'lockout' });
}, 60_000);
afterAll(() => server.close());

const expectSafe = (response: { status: number; text: string; headers: Headers }, what: string) => {
  if (response.status >= 500) throw new Error(`${what} answered ${response.status}: ${response.text.slice(0, 300)}`);
  if ((response.headers.get('content-type') ?? '').includes('html')) expect(response.text).not.toContain(MARKER);
};

describe('the admin API', () => {
  test('every operation, with hostile parameters, queries and bodies: never a 500', async () => {
    const api = apiClient(server.url);
    const operations = server.latchkey.adminApi.operations as readonly Operation[];
    for (const op of operations) {
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.constant(undefined), hostileString), fc.dictionary(fc.constantFrom('limit', 'cursor', 'q', 'action', 'outcome', 'from', 'to', 'user', 'site_id'), hostileString, { maxKeys: 3 }), bodyFor(op.body), async (param, query, body) => {
          const path = op.path.replace(/:(\w+)/g, (_all, name: string) => encodeURIComponent(param ?? fixtures[name] ?? 'x'));
          const search = new URLSearchParams(query as Record<string, string>).toString();
          const response = await api(op.method.toUpperCase(), `/api/admin${path}${search ? `?${search}` : ''}`, token, op.method === 'get' ? undefined : body);
          expectSafe(response, `${op.method} ${op.path}`);
        }),
        { numRuns: RUNS },
      );
    }
  }, 240_000);

  test('users: the database holds exactly the users whose creation was answered 201', async () => {
    const api = apiClient(server.url);
    const before = Number((await server.database.db('users').count({ n: '*' }).first())?.n);
    let created = 0;
    const validish = fc.record({ email: fc.oneof(fc.emailAddress(), hostileString), name: fc.oneof(fc.string({ maxLength: 30 }), hostileString), password: fc.oneof(fc.string({ minLength: 12, maxLength: 40 }), hostileString) }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(validish, async (body) => {
        const response = await api('POST', '/api/admin/users', token, body);
        expectSafe(response, 'POST /users');
        if (response.status === 201) created++;
      }),
      { numRuns: RUNS * 4 },
    );
    const after = Number((await server.database.db('users').count({ n: '*' }).first())?.n);
    expect(after - before).toBe(created);
  }, 120_000);

  test('door CSV import: truncated and hostile files are reported, never half-written', async () => {
    const csv = 'email,name,kind,value\nhostile-a@example.test,Ann,card,CARD-HOSTILE-1\nhostile-b@example.test,Bo,mfa_code,482913\nhostile-c@example.test,Cy,card,CARD-HOSTILE-2\n';
    const api = apiClient(server.url);
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: csv.length }), hostileString, async (cut, junk) => {
        const db = server.database.db;
        await db('access_credentials').whereIn('user_id', db('users').select('id').where('email', 'like', 'hostile-%')).delete();
        const before = Number((await db('access_credentials').count({ n: '*' }).first())?.n);
        const file = csv.slice(0, cut) + (cut % 2 ? junk : '');
        const response = await api('POST', '/api/admin/access/import?dry_run=false', token, file, { 'content-type': 'text/csv' });
        expectSafe(response, 'CSV import');
        const after = Number((await db('access_credentials').count({ n: '*' }).first())?.n);
        const cards = file.split(/\r?\n/).slice(1).filter((line) => line.split(',')[2] === 'card' && line.split(',')[3]);
        // All or nothing: an import with any problem writes no row; one that succeeds writes each card it names.
        if (response.status !== 200) expect(after).toBe(before);
        else expect(after - before).toBe(cards.length);
      }),
      { numRuns: RUNS * 2 },
    );
  }, 120_000);
});

describe('forms', () => {
  test('the sign-in form', async () => {
    const client = await aClient(server.latchkey);
    const rp = await relyingParty(server.url, client.clientId, client.clientSecret);
    const login = await startLogin(rp);
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.constantFrom('email', 'password', 'extra', '_csrf'), hostileString, { maxKeys: 4 }), async (fields) => {
        const response = await login.agent.request(login.page.url.replace(/\/?$/, '/login'), { form: { _csrf: csrfOf(login.page), ...fields } as Record<string, string> });
        expectSafe({ status: response.status, text: await response.text(), headers: response.headers }, 'sign-in form');
      }),
      { numRuns: RUNS * 2 },
    );
  }, 120_000);

  test('every account and admin console form', async () => {
    // The API tests above may have left random but valid settings (enforcement, passkeys required of admins, a long
    // password minimum): this admin signs in under the defaults.
    const { settings } = server.latchkey;
    await settings.write('enforce-mfa', { enabled: false });
    await settings.write('admin-phishing-resistant', { required: false });
    await settings.write('password-policy', { min_length: 8 });
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { agent, page } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/users');
    const csrf = csrfOf(page);
    const forms = [
      '/account/profile', '/account/password', '/account/sessions/sign-out-others', '/account/sessions/sign-out', '/account/apps/revoke', '/account/reauth', '/account/security/enrol/totp', '/account/security/preferred', '/account/security/remove', '/account/security/recovery-codes', '/account/security/disable', '/account/security/pin', '/account/security/pin/disable',
      '/admin/users/invite', `/admin/users/${fixtures.id}/status`, `/admin/users/${fixtures.id}/roles`, `/admin/users/${fixtures.id}/mfa-codes`, `/admin/users/${fixtures.id}/credentials`, `/admin/users/${fixtures.id}/reset-mfa`,
      '/admin/clients', `/admin/clients/${fixtures.clientId}/require-mfa`, '/admin/settings/lockout', '/admin/settings/password-policy', '/admin/settings/factors', '/admin/settings/enforce-mfa', '/admin/doors/import',
      `/admin/users/${fixtures.id}/bypass-code`, '/admin/settings/bypass-code', '/admin/settings/enrolment-grace',
    ];
    for (const form of forms) {
      await fc.assert(
        fc.asyncProperty(fc.dictionary(fc.oneof(fc.constantFrom('name', 'email', 'password', 'current_password', 'new_password', 'code', 'method', 'roles', 'status', 'version', 'value', 'site_id', 'csv', 'kind', 'identifier', 'time_zone', 'locale', 'redirect_uri', 'client_name', 'reason', 'days', 'sign_ins', 'ttl_minutes'), hostileString), hostileString, { maxKeys: 5 }), async (fields) => {
          const response = await agent.request(`${server.url}${form}`, { form: { ...(fields as Record<string, string>), _csrf: csrf } });
          expectSafe({ status: response.status, text: await response.text(), headers: response.headers }, `POST ${form}`);
        }),
        { numRuns: RUNS },
      );
    }
  }, 240_000);
});
