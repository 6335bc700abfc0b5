import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { Operation } from '../../src/admin/api/operation.js';
import { ROLES, type Role } from '../../src/admin/users.js';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aClient, aUser } from '../helpers/factories.js';
import { recordingNotifier } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
let api: ReturnType<typeof apiClient>;
const tokens = new Map<string, string>();
const fixtures: Record<string, string> = {};

beforeAll(async () => {
  server = await startTestServer({ notifier: recordingNotifier().notifier });
  api = apiClient(server.url);
  const { access } = server.latchkey;
  const by = { actorId: null };
  const site = await access.createSite({ name: 'HQ', time_zone: 'Asia/Seoul' }, by);
  const otherSite = await access.createSite({ name: 'Branch', time_zone: 'Europe/Berlin' }, by);
  const schedule = await access.createSchedule(site.id, { name: 'Hours', windows: [] }, by);
  // The door is on a schedule and in a level: deleting either is refused (409), so every role meets the same fixtures.
  const door = await access.createDoor(site.id, { name: 'Front', has_keypad: true, schedule_id: schedule.id }, by);
  const target = await aUser(server.latchkey);
  const level = await access.createLevel(site.id, { name: 'Staff', door_ids: [door.id] }, by);
  const controller = await access.createController(site.id, 'Front', by);
  const client = await aClient(server.latchkey);
  Object.assign(fixtures, {
    id: target.id,
    userId: target.id,
    siteId: site.id,
    doorId: door.id,
    scheduleId: schedule.id,
    levelId: level.id,
    controllerId: controller.id,
    day: '2026-12-25',
    weekday: '1',
    clientId: client.clientId,
    codeId: '00000000-0000-4000-8000-000000000001',
    credentialId: '00000000-0000-4000-8000-000000000002',
  });

  for (const role of ROLES) {
    const admin = await anAdmin(server.latchkey, server.url, [role]);
    if (role === 'access_site_admin') await access.addSiteAdmin(site.id, admin.user.id);
    tokens.set(role, admin.token);
  }
  const elsewhere = await anAdmin(server.latchkey, server.url, ['access_site_admin']);
  await access.addSiteAdmin(otherSite.id, elsewhere.user.id);
  tokens.set('access_site_admin of another site', elsewhere.token);
  tokens.set('no role', (await anAdmin(server.latchkey, server.url, [])).token);
});
afterAll(() => server.close());

const operations = () => server.latchkey.adminApi.operations as readonly Operation[];
const pathOf = (op: Operation) => `/api/admin${op.path.replace(/:(\w+)/g, (_all, name: string) => fixtures[name]!)}`;
/** Whether the operation lets a token of this role in, as its declaration says. */
const allows = (op: Operation, who: string) =>
  who === 'access_site_admin of another site' ? op.roles.includes('access_site_admin') && !op.site : op.roles.includes(who as Role);

describe('the admin API contract', () => {
  test('every operation refuses a request without a valid token (401)', async () => {
    for (const op of operations()) {
      expect([op.id, (await api(op.method.toUpperCase(), pathOf(op), undefined)).status]).toEqual([op.id, 401]);
      expect([op.id, (await api(op.method.toUpperCase(), pathOf(op), 'forged.token.value')).status]).toEqual([op.id, 401]);
    }
  });

  test('every operation lets in exactly the roles it names, and refuses every other role with 403', async () => {
    // Bodies are empty: an allowed role gets past authorisation (to a 2xx, 400, 404, 409 or 415), a refused one never does.
    const refusals: string[] = [];
    for (const op of operations()) {
      for (const [who, token] of tokens) {
        // A delete at a version nobody holds is refused (412) once past authorisation: the fixtures stay for the next role.
        const response = await api(op.method.toUpperCase(), pathOf(op), token, op.method === 'get' || op.method === 'delete' ? undefined : {}, op.method === 'delete' && op.ifMatch ? { 'if-match': '"0"' } : {});
        const refused = response.status === 403;
        if (refused === allows(op, who)) refusals.push(`${op.id} as ${who}: ${response.status}`);
        if (refused) expect(response.json).toMatchObject({ status: 403, code: 'forbidden' });
        expect([op.id, who, response.status < 500]).toEqual([op.id, who, true]);
      }
    }
    expect(refusals).toEqual([]);
    // Every operation times every role, one request each: generous on a loaded machine.
  }, 180_000);

  test('every JSON body is validated: a wrong type answers 400 with a problem document naming the field', async () => {
    const token = tokens.get('super_admin')!;
    const document = server.latchkey.adminApi.document as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } }>> };
    let checked = 0;
    for (const op of operations().filter((o) => o.body)) {
      const documented = document.paths[`/api/admin${op.path.replace(/:(\w+)/g, '{$1}')}`]![op.method]!.requestBody!.content['application/json']!.schema;
      const fields = Object.keys(documented.properties ?? {});
      const body = fields.length ? Object.fromEntries(fields.map((field) => [field, { not: ['what', 'you', 'expected'] }])) : ['not an object'];
      const response = await api(op.method.toUpperCase(), pathOf(op), token, body);
      expect([op.id, response.status]).toEqual([op.id, 400]);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      expect(response.json).toMatchObject({ type: 'about:blank', status: 400, code: 'invalid_request' });
      if (fields.length) expect([op.id, fields]).toEqual([op.id, expect.arrayContaining([String(response.json.field).split('.')[0]])]);
      checked += 1;
    }
    expect(checked).toBeGreaterThan(15);
  });

  test('a malformed JSON body and a bad query parameter are 400s too', async () => {
    const token = tokens.get('super_admin')!;
    const malformed = await api('POST', '/api/admin/users', token, '{"email": ', { 'content-type': 'application/json' });
    expect(malformed.status).toBe(400);
    expect(malformed.json).toMatchObject({ code: 'malformed_body' });
    const badLimit = await api('GET', '/api/admin/users?limit=100000', token);
    expect(badLimit.json).toMatchObject({ status: 400, field: 'limit' });
    const badCursor = await api('GET', '/api/admin/audit?cursor=%7B%7D', token);
    expect(badCursor.json).toMatchObject({ status: 400, field: 'cursor' });
  });
});

describe('the OpenAPI document', () => {
  test('is served, and is valid OpenAPI 3.1', async () => {
    const response = await fetch(`${server.url}/api/admin/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string };
    expect(document.openapi).toBe('3.1.0');
    await expect(SwaggerParser.validate(structuredClone(document) as never)).resolves.toBeDefined();
  });

  test('lists every route of the admin router, with the roles it enforces', async () => {
    const document = server.latchkey.adminApi.document as { paths: Record<string, Record<string, { 'x-roles': string[] }>> };
    const routes = server.latchkey.adminApi.router.stack.flatMap((layer) =>
      layer.methods.filter((m) => m !== 'HEAD').map((method) => [method.toLowerCase(), String(layer.path).replace(/:(\w+)/g, '{$1}')] as const),
    );
    const documented = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => [method, path] as const));
    expect(routes.filter(([, path]) => path !== '/api/admin/openapi.json').sort()).toEqual([...documented].sort());
    for (const op of operations()) {
      expect(document.paths[`/api/admin${op.path.replace(/:(\w+)/g, '{$1}')}`]![op.method]!['x-roles']).toEqual(op.roles);
    }
    expect(routes.length).toBeGreaterThan(30);
  });
});
