import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aUser } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Whom and what an access admin may reach: their own site's things, and people who hold no admin role. */
const allDay = (mode: string) => [{ days: [0, 1, 2, 3, 4, 5, 6], start: 0, end: 1440, mode }];
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let superAdmin: string;

beforeAll(async () => {
  server = await startTestServer();
  api = apiClient(server.url);
  superAdmin = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
});
afterAll(() => server.close());

async function aSite(name: string) {
  const site = (await api('POST', '/api/admin/access/sites', superAdmin, { name, time_zone: 'Asia/Seoul' })).json as unknown as { id: string };
  const schedule = (await api('POST', `/api/admin/access/sites/${site.id}/schedules`, superAdmin, { name: 'Day', windows: allDay('access') })).json as unknown as { id: string };
  const door = (await api('POST', `/api/admin/access/sites/${site.id}/doors`, superAdmin, { name: 'Front', has_keypad: true })).json as unknown as { id: string };
  return { id: site.id, schedule: schedule.id, door: door.id };
}

describe('a site admin stays on their site', () => {
  test('a level naming doors or a schedule of another site, or unknown ids, is refused with 400 naming the field', async () => {
    const [mine, theirs] = [await aSite('Mine'), await aSite('Theirs')];
    const siteAdmin = await anAdmin(server.latchkey, server.url, ['access_site_admin']);
    await api('POST', `/api/admin/access/sites/${mine.id}/admins`, superAdmin, { user_id: siteAdmin.user.id });
    const person = await aUser(server.latchkey);
    const level = (body: Record<string, unknown>) => api('POST', `/api/admin/access/sites/${mine.id}/levels`, siteAdmin.token, { name: 'L', ...body });

    for (const [body, field] of [
      [{ door_ids: [mine.door, theirs.door] }, 'door_ids'],
      [{ schedule_id: theirs.schedule }, 'schedule_id'],
      [{ door_ids: ['00000000-0000-4000-8000-000000000000'] }, 'door_ids'],
      [{ schedule_id: '00000000-0000-4000-8000-000000000000' }, 'schedule_id'],
      [{ user_ids: [person.id, '00000000-0000-4000-8000-000000000000'] }, 'user_ids'],
    ] as const) {
      const refused = await level(body);
      expect([field, refused.status, refused.json.field]).toEqual([field, 400, field]);
    }
    expect(await server.database.db('access_levels').where({ site_id: mine.id })).toEqual([]);
    // Their own site's ids are fine, and an id given twice is not an error.
    const made = await level({ door_ids: [mine.door, mine.door], schedule_id: mine.schedule, user_ids: [person.id, person.id] });
    expect(made.status).toBe(201);
    // A door can still not take another site's schedule.
    const door = await api('POST', `/api/admin/access/sites/${mine.id}/doors`, siteAdmin.token, { name: 'Side', schedule_id: theirs.schedule });
    expect([door.status, door.json.field]).toEqual([400, 'schedule_id']);
    // Nor does anything of the other site answer them.
    expect((await api('GET', `/api/admin/access/doors/${theirs.door}/decisions`, siteAdmin.token)).status).toBe(403);
    expect((await api('PUT', `/api/admin/access/doors/${theirs.door}/exceptions`, siteAdmin.token, { day: '2030-01-01', windows: [] })).status).toBe(403);
    expect((await api('POST', `/api/admin/access/sites/${theirs.id}/controllers`, siteAdmin.token, { name: 'c' })).status).toBe(403);
  });
});

describe('codes and credentials of admins: a super admin only', () => {
  test('a credential manager cannot read or set the codes or credentials of anyone holding a role; a super admin can', async () => {
    const manager = (await anAdmin(server.latchkey, server.url, ['access_credential_manager'])).token;
    const userAdmin = (await anAdmin(server.latchkey, server.url, ['access_user_admin'])).token;
    for (const roles of [['super_admin'], ['auditor'], ['access_credential_manager']] as const) {
      const target = await aUser(server.latchkey, { roles: [...roles] });
      const base = `/api/admin/access/users/${target.id}`;
      const attempts: Array<[string, string, unknown?]> = [
        ['GET', `${base}/codes`],
        ['POST', `${base}/mfa-codes`, { code: '583019' }],
        ['PATCH', `${base}/mfa-codes/00000000-0000-4000-8000-000000000000`, { code: '583019' }],
        ['DELETE', `${base}/mfa-codes/00000000-0000-4000-8000-000000000000`],
        ['PUT', `${base}/entry-code`, { code: '583019' }],
        ['GET', `${base}/credentials`],
        ['POST', `${base}/credentials`, { kind: 'card', identifier: `adm-${target.id.slice(0, 8)}` }],
        ['DELETE', `${base}/credentials/00000000-0000-4000-8000-000000000000`],
      ];
      for (const token of [manager, userAdmin]) {
        for (const [method, path, body] of attempts) expect([roles[0], method, path, (await api(method, path, token, body)).status]).toEqual([roles[0], method, path, 403]);
      }
      expect(await server.latchkey.access.listCodes(target.id)).toEqual([]);
      expect((await api('POST', `${base}/mfa-codes`, superAdmin, { code: '583019' })).status).toBe(201);
      expect((await api('GET', `${base}/codes`, superAdmin)).status).toBe(200);
    }
  });

  test('the CSV import does not reach admins for a credential manager, and the export leaves their codes out', async () => {
    const manager = (await anAdmin(server.latchkey, server.url, ['access_credential_manager'])).token;
    const boss = await aUser(server.latchkey, { roles: ['super_admin'] });
    await api('POST', `/api/admin/access/users/${boss.id}/mfa-codes`, superAdmin, { code: '940271' });
    const plain = await aUser(server.latchkey);
    const csv = `email,name,kind,value\n${plain.email},P,card,IMP-${plain.id.slice(0, 8)}\n${boss.email},B,mfa_code,615283\n${boss.email},B,card,IMP-${boss.id.slice(0, 8)}\n`;
    const report = await api('POST', '/api/admin/access/import?dry_run=false', manager, csv, { 'content-type': 'text/csv' });
    expect(report.status).toBe(422);
    expect((report.json.problems as Array<{ line: number; field: string }>).map((p) => [p.line, p.field])).toEqual([[3, 'email'], [4, 'email']]);
    expect(await server.latchkey.access.listCodes(boss.id)).toHaveLength(1);
    const exported = await api('GET', '/api/admin/access/export.csv', manager);
    expect(exported.text).not.toContain(boss.email);
    expect((await api('GET', '/api/admin/access/export.csv', superAdmin)).text).toContain(`${boss.email},Test User,mfa_code,940271`);
  });

  test('the MFA-code routes change and remove MFA codes only, not an entry code around its checks', async () => {
    const [a, b] = [await aUser(server.latchkey), await aUser(server.latchkey)];
    await api('PUT', `/api/admin/access/users/${a.id}/entry-code`, superAdmin, { code: '381947' });
    const entry = (await server.latchkey.access.listCodes(b.id)).length;
    expect(entry).toBe(0);
    const mine = (await api('PUT', `/api/admin/access/users/${b.id}/entry-code`, superAdmin, { code: '902614' })).json as unknown as { id: string };
    // Through PATCH mfa-codes an entry code could become trivial, or another user's: refused as not found.
    for (const code of ['1234', '381947']) expect((await api('PATCH', `/api/admin/access/users/${b.id}/mfa-codes/${mine.id}`, superAdmin, { code })).status).toBe(404);
    expect((await api('DELETE', `/api/admin/access/users/${b.id}/mfa-codes/${mine.id}`, superAdmin)).status).toBe(204);
    expect(await server.latchkey.access.listCodes(b.id)).toHaveLength(1);
  });
});
