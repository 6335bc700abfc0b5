import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aUser } from '../helpers/factories.js';
import { manualClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

// Monday 5 January 2026, 10:00 in Seoul.
const clock = manualClock(new Date('2026-01-05T01:00:00Z'));
const MONDAY = 1;
const allDay = (mode: string) => [{ days: [0, 1, 2, 3, 4, 5, 6], start: 0, end: 1440, mode }];
const A = '/api/admin/access';
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let admin: string;

beforeAll(async () => {
  server = await startTestServer({ clock });
  api = apiClient(server.url);
  admin = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
});
afterAll(() => server.close());

type Json = Record<string, unknown> & { id: string; version: number };
const post = async (path: string, body: unknown) => {
  const r = await api('POST', `${A}${path}`, admin, body);
  expect(r.status).toBe(201);
  return r.json as Json;
};
const ifMatch = (version: number | string) => ({ 'if-match': `"${version}"` });

// Entry codes are unique: each site's user gets its own (digits taken from a random id could repeat).
let entryCodes = 0;
const anEntryCode = () => String(581_000 + 7 * ++entryCodes);

/** A site with a reader+keypad door on a schedule, a controller, and a user with card, codes and access. */
async function aSite(windows = allDay('access')) {
  const site = await post('/sites', { name: `Site ${Math.random()}`, time_zone: 'Asia/Seoul' });
  const schedule = await post(`/sites/${site.id}/schedules`, { name: 'Office hours', windows });
  const door = await post(`/sites/${site.id}/doors`, { name: 'Lab', has_keypad: true, schedule_id: schedule.id });
  const plain = await post(`/sites/${site.id}/doors`, { name: 'Lobby' });
  const controller = await post(`/sites/${site.id}/controllers`, { name: 'Ctl' });
  const user = await aUser(server.latchkey);
  const tag = user.id.slice(0, 8);
  const credentials: Record<string, string> = {};
  for (const kind of ['card', 'nfc', 'ble', 'nearby']) credentials[kind] = (await post(`/users/${user.id}/credentials`, { kind, identifier: `${kind}-${tag}` })).id;
  await post(`/users/${user.id}/mfa-codes`, { code: '4711' });
  expect((await api('PUT', `${A}/users/${user.id}/entry-code`, admin, { code: anEntryCode() })).status).toBe(200);
  const level = await post(`/sites/${site.id}/levels`, { name: 'Staff', door_ids: [door.id, plain.id], user_ids: [user.id] });
  const token = controller.token as string;
  const scan = async (credential: string, at = door.id) =>
    (await api('POST', '/api/access/v1/credential', token, { door_id: at, credential: `${credential}-${tag}` })).json as { result: string; reason: string };
  const keypad = async (code: string, at = door.id) => (await api('POST', '/api/access/v1/keypad', token, { door_id: at, code })).json as { result: string; reason: string };
  return { site, schedule, door, plain, controller, user, level, credentials, scan, keypad, token };
}

describe("seed 002's own flow: select a schedule, select a day, switch two-factor entry on, set its times, save", () => {
  test('through the API, with If-Match; and switched off again to troubleshoot', async () => {
    const s = await aSite();
    expect(await s.scan('card')).toMatchObject({ result: 'grant', reason: 'access_granted' });

    const read = await api('GET', `${A}/schedules/${s.schedule.id}`, admin);
    expect(read.status).toBe(200);
    const etag = read.headers.get('etag')!;
    expect(etag).toBe(`"${(read.json as Json).version}"`);
    const saved = await api('PUT', `${A}/schedules/${s.schedule.id}/days/${MONDAY}`, admin, { windows: [{ start: 9 * 60, end: 18 * 60, mode: 'card_and_code' }] }, { 'if-match': etag });
    expect(saved.status).toBe(200);
    expect(saved.headers.get('etag')).not.toBe(etag);
    // Monday now has its own window; the other days keep theirs.
    const windows = (saved.json as { windows: Array<{ days: number[]; start: number; end: number; mode: string }> }).windows;
    expect(windows).toEqual(expect.arrayContaining([{ days: [0, 2, 3, 4, 5, 6], start: 0, end: 1440, mode: 'access' }, { days: [1], start: 540, end: 1080, mode: 'card_and_code' }]));
    expect(await s.scan('card')).toMatchObject({ result: 'code_required' });
    expect(await s.keypad('4711')).toMatchObject({ result: 'grant', reason: 'card_and_code_accepted' });

    // A second admin saving from the version read before is refused, not silently overwriting.
    const lost = await api('PUT', `${A}/schedules/${s.schedule.id}/days/${MONDAY}`, admin, { windows: [] }, { 'if-match': etag });
    expect(lost.status).toBe(412);
    expect(lost.json).toMatchObject({ code: 'precondition_failed', field: 'If-Match' });

    // Troubleshooting: two-factor entry off for the day, the card alone opens again.
    const off = await api('PUT', `${A}/schedules/${s.schedule.id}/days/${MONDAY}`, admin, { windows: [{ start: 9 * 60, end: 18 * 60, mode: 'access' }] }, { 'if-match': saved.headers.get('etag')! });
    expect(off.status).toBe(200);
    expect(await s.scan('card')).toMatchObject({ result: 'grant', reason: 'access_granted' });
    // Outside the day's windows the door is locked (blank = locked).
    await api('PUT', `${A}/schedules/${s.schedule.id}/days/${MONDAY}`, admin, { windows: [{ start: 11 * 60, end: 12 * 60, mode: 'access' }] });
    expect(await s.scan('card')).toMatchObject({ result: 'deny', reason: 'door_locked' });
  });

  test("a day's windows are checked: in order, not overlapping, card + code only on doors that can do it", async () => {
    const s = await aSite();
    const day = (windows: unknown[]) => api('PUT', `${A}/schedules/${s.schedule.id}/days/2`, admin, { windows });
    expect((await day([{ start: 600, end: 540, mode: 'access' }])).json).toMatchObject({ status: 400, field: 'windows.0.end' });
    expect((await day([{ start: 0, end: 600, mode: 'access' }, { start: 500, end: 700, mode: 'locked' }])).json).toMatchObject({ status: 400, field: 'windows' });
    expect((await day([{ start: 0, end: 600, mode: 'open' }])).json).toMatchObject({ status: 400, field: 'windows.0.mode' });
    expect((await api('PUT', `${A}/schedules/${s.schedule.id}/days/7`, admin, { windows: [] })).status).toBe(404);
    // The Lobby (reader only) on this schedule: card + code is refused, naming the door.
    await api('PATCH', `${A}/doors/${s.plain.id}`, admin, { schedule_id: s.schedule.id });
    const refused = await day([{ start: 0, end: 600, mode: 'card_and_code' }]);
    expect(refused.json).toMatchObject({ status: 400, code: 'two_factor_needs_reader_and_keypad', field: 'windows' });
    expect(String(refused.json.detail)).toContain('Lobby');
  });
});

describe('everything created can be changed and removed', () => {
  test('a site: renamed at its version; deleted only when empty, else 409 listing what is in it', async () => {
    const s = await aSite();
    const read = await api('GET', `${A}/sites/${s.site.id}`, admin);
    const renamed = await api('PATCH', `${A}/sites/${s.site.id}`, admin, { name: 'HQ' }, { 'if-match': read.headers.get('etag')! });
    expect(renamed.json).toMatchObject({ name: 'HQ', version: 2 });
    expect((await api('PATCH', `${A}/sites/${s.site.id}`, admin, { name: 'Old' }, ifMatch(1))).status).toBe(412);
    expect((await api('PATCH', `${A}/sites/${s.site.id}`, admin, { time_zone: 'Mars/Olympus' })).json).toMatchObject({ status: 400, field: 'time_zone' });
    expect((await api('PATCH', `${A}/sites/${s.site.id}`, admin, { colour: 'red' })).json).toMatchObject({ status: 400 });

    const refused = await api('DELETE', `${A}/sites/${s.site.id}`, admin);
    expect(refused.status).toBe(409);
    expect(refused.json).toMatchObject({ code: 'in_use', referenced_by: { doors: [{ name: 'Lab' }, { name: 'Lobby' }], schedules: [{ name: 'Office hours' }], levels: [{ name: 'Staff' }], controllers: [{ name: 'Ctl' }] } });

    for (const path of [`/levels/${s.level.id}`, `/doors/${s.door.id}`, `/doors/${s.plain.id}`, `/schedules/${s.schedule.id}`, `/controllers/${s.controller.id}`]) {
      expect((await api('DELETE', `${A}${path}`, admin)).status).toBe(204);
    }
    expect((await api('DELETE', `${A}/sites/${s.site.id}`, admin)).status).toBe(204);
    expect((await api('GET', `${A}/sites/${s.site.id}`, admin)).status).toBe(404);
  });

  test('a door: hardware and schedule changed (checked against its schedule and exceptions), deleted unless a level names it', async () => {
    const s = await aSite(allDay('card_and_code'));
    const read = await api('GET', `${A}/doors/${s.door.id}`, admin);
    expect(read.json).toMatchObject({ name: 'Lab', has_keypad: true, schedule_id: s.schedule.id, exceptions: [] });
    // The schedule asks for card + code: the keypad cannot be taken away.
    expect((await api('PATCH', `${A}/doors/${s.door.id}`, admin, { has_keypad: false })).json).toMatchObject({ status: 400, field: 'has_keypad' });
    const changed = await api('PATCH', `${A}/doors/${s.door.id}`, admin, { name: 'Lab 2', in_out: true }, { 'if-match': read.headers.get('etag')! });
    expect(changed.json).toMatchObject({ name: 'Lab 2', in_out: true, has_keypad: true });
    expect((await api('PATCH', `${A}/doors/${s.door.id}`, admin, { name: 'Lab 3' }, { 'if-match': read.headers.get('etag')! })).status).toBe(412);
    expect((await api('PATCH', `${A}/doors/${s.door.id}`, admin, { schedule_id: '00000000-0000-4000-8000-000000000000' })).json).toMatchObject({ status: 400, field: 'schedule_id' });
    // Another site's schedule is no schedule of this door's.
    const other = await aSite();
    expect((await api('PATCH', `${A}/doors/${s.door.id}`, admin, { schedule_id: other.schedule.id })).json).toMatchObject({ status: 400, field: 'schedule_id' });
    // No schedule: access controlled all day.
    expect((await api('PATCH', `${A}/doors/${s.door.id}`, admin, { schedule_id: null })).status).toBe(200);
    expect(await s.scan('card')).toMatchObject({ result: 'grant' });

    const refused = await api('DELETE', `${A}/doors/${s.door.id}`, admin);
    expect(refused.status).toBe(409);
    expect(refused.json).toMatchObject({ referenced_by: { levels: [{ id: s.level.id, name: 'Staff' }] } });
    expect((await api('PATCH', `${A}/levels/${s.level.id}`, admin, { door_ids: [s.plain.id] })).status).toBe(200);
    expect((await api('DELETE', `${A}/doors/${s.door.id}`, admin, undefined, ifMatch(1))).status).toBe(412);
    expect((await api('DELETE', `${A}/doors/${s.door.id}`, admin)).status).toBe(204);
    expect((await api('DELETE', `${A}/doors/${s.door.id}`, admin)).status).toBe(404);
  });

  test('a schedule: renamed, its week replaced, deleted only when no door or level uses it (409 naming them)', async () => {
    const s = await aSite();
    await api('PATCH', `${A}/levels/${s.level.id}`, admin, { schedule_id: s.schedule.id });
    const renamed = await api('PATCH', `${A}/schedules/${s.schedule.id}`, admin, { name: 'Weekdays', windows: [{ days: [1, 2, 3, 4, 5], start: 480, end: 1200, mode: 'access' }] }, ifMatch(1));
    expect(renamed.json).toMatchObject({ name: 'Weekdays', version: 2 });
    const refused = await api('DELETE', `${A}/schedules/${s.schedule.id}`, admin);
    expect(refused.status).toBe(409);
    expect(refused.json).toMatchObject({ code: 'in_use', referenced_by: { doors: [{ id: s.door.id, name: 'Lab' }], levels: [{ id: s.level.id, name: 'Staff' }] } });
    expect(String(refused.json.detail)).toContain('Lab');
    // Still there, still used: nothing was cascaded.
    expect((await api('GET', `${A}/doors/${s.door.id}`, admin)).json).toMatchObject({ schedule_id: s.schedule.id });
    await api('PATCH', `${A}/doors/${s.door.id}`, admin, { schedule_id: null });
    await api('PATCH', `${A}/levels/${s.level.id}`, admin, { schedule_id: null });
    expect((await api('DELETE', `${A}/schedules/${s.schedule.id}`, admin)).status).toBe(204);
  });

  test('an exception: set, replaced, and removed (the schedule applies again)', async () => {
    const s = await aSite();
    const day = '2026-01-05';
    expect((await api('PUT', `${A}/doors/${s.door.id}/exceptions`, admin, { day, name: 'Holiday', windows: [] })).status).toBe(204);
    expect(await s.scan('card')).toMatchObject({ result: 'deny', reason: 'door_locked' });
    expect((await api('PUT', `${A}/doors/${s.door.id}/exceptions`, admin, { day, name: 'Event', windows: [{ days: [1], start: 0, end: 1440, mode: 'unlocked' }] })).status).toBe(204);
    expect(await s.scan('card')).toMatchObject({ result: 'grant', reason: 'door_unlocked' });
    expect((await api('GET', `${A}/doors/${s.door.id}`, admin)).json).toMatchObject({ exceptions: [{ name: 'Event', version: 2 }] });
    expect((await api('DELETE', `${A}/doors/${s.door.id}/exceptions/${day}`, admin)).status).toBe(204);
    expect(await s.scan('card')).toMatchObject({ result: 'grant', reason: 'access_granted' });
    expect((await api('DELETE', `${A}/doors/${s.door.id}/exceptions/${day}`, admin)).status).toBe(404);
    expect((await api('DELETE', `${A}/doors/${s.door.id}/exceptions/someday`, admin)).status).toBe(404);
  });

  test('a level: renamed, its doors, members and schedule changed; every id checked; deleted', async () => {
    const s = await aSite();
    const other = await aSite();
    const read = await api('GET', `${A}/levels/${s.level.id}`, admin);
    expect(read.json).toMatchObject({ name: 'Staff', door_ids: expect.arrayContaining([s.door.id, s.plain.id]), user_ids: [s.user.id] });
    const patch = (body: unknown) => api('PATCH', `${A}/levels/${s.level.id}`, admin, body);
    for (const [body, field] of [
      [{ door_ids: [s.door.id, other.door.id] }, 'door_ids'],
      [{ door_ids: ['00000000-0000-4000-8000-000000000000'] }, 'door_ids'],
      [{ schedule_id: other.schedule.id }, 'schedule_id'],
      [{ user_ids: ['00000000-0000-4000-8000-000000000000'] }, 'user_ids'],
      [{ door_ids: ['not-an-id'] }, 'door_ids.0'],
    ] as const) {
      expect({ body, answer: (await patch(body)).json }).toMatchObject({ body, answer: { status: 400, field } });
    }
    // Members out: the card no longer opens the door; back in, it does.
    expect((await api('DELETE', `${A}/levels/${s.level.id}/users/${s.user.id}`, admin)).status).toBe(204);
    expect(await s.scan('card')).toMatchObject({ result: 'deny', reason: 'no_access' });
    expect((await api('POST', `${A}/levels/${s.level.id}/users`, admin, { user_id: s.user.id })).status).toBe(204);
    expect(await s.scan('card')).toMatchObject({ result: 'grant' });
    expect((await api('POST', `${A}/levels/${s.level.id}/users`, admin, { user_id: '00000000-0000-4000-8000-000000000000' })).json).toMatchObject({ status: 400, field: 'user_ids' });
    // The Lab taken out of the level.
    const version = ((await api('GET', `${A}/levels/${s.level.id}`, admin)).json as Json).version;
    expect((await api('PATCH', `${A}/levels/${s.level.id}`, admin, { name: 'Lobby only', door_ids: [s.plain.id] }, ifMatch(version))).json).toMatchObject({ name: 'Lobby only' });
    expect(await s.scan('card')).toMatchObject({ result: 'deny', reason: 'no_access' });
    expect(await s.scan('card', s.plain.id)).toMatchObject({ result: 'grant' });
    expect((await api('DELETE', `${A}/levels/${s.level.id}`, admin, undefined, ifMatch(version))).status).toBe(412);
    expect((await api('DELETE', `${A}/levels/${s.level.id}`, admin)).status).toBe(204);
    expect(await s.scan('card', s.plain.id)).toMatchObject({ result: 'deny', reason: 'no_access' });
  });

  test('what is added to a site, or an exception to a door, while it is being deleted: a 404 or 409, never a 500', async () => {
    for (let round = 0; round < 5; round++) {
      const site = await post('/sites', { name: `Going ${Math.random()}`, time_zone: 'UTC' });
      const replies = await Promise.all([
        api('POST', `${A}/sites/${site.id}/schedules`, admin, { name: 'S', windows: [] }),
        api('POST', `${A}/sites/${site.id}/controllers`, admin, { name: 'C' }),
        api('POST', `${A}/sites/${site.id}/levels`, admin, { name: 'L' }),
        api('POST', `${A}/sites/${site.id}/doors`, admin, { name: 'D' }),
        api('DELETE', `${A}/sites/${site.id}`, admin),
      ]);
      for (const reply of replies) expect([201, 204, 404, 409]).toContain(reply.status);
      const door = await post(`/sites/${(await post('/sites', { name: `Door going ${Math.random()}`, time_zone: 'UTC' })).id}/doors`, { name: 'D' });
      const exception = await Promise.all([api('PUT', `${A}/doors/${door.id}/exceptions`, admin, { day: '2026-03-01', windows: [] }), api('DELETE', `${A}/doors/${door.id}`, admin)]);
      for (const reply of exception) expect([204, 404]).toContain(reply.status);
    }
  });

  test('a controller: renamed; its token rotated (shown once, the old one refused at once); revoked', async () => {
    const s = await aSite();
    expect((await api('PATCH', `${A}/controllers/${s.controller.id}`, admin, { name: 'Lab controller' }, ifMatch(1))).json).toMatchObject({ name: 'Lab controller', version: 2 });
    expect((await api('PATCH', `${A}/controllers/${s.controller.id}`, admin, { name: 'x' }, ifMatch(1))).status).toBe(412);
    expect(await s.scan('card')).toMatchObject({ result: 'grant' });
    const rotated = await api('POST', `${A}/controllers/${s.controller.id}/token`, admin);
    expect(rotated.status).toBe(200);
    const token = rotated.json.token as string;
    expect(token).not.toBe(s.token);
    const scanWith = (t: string) => api('POST', '/api/access/v1/credential', t, { door_id: s.door.id, credential: 'anything' });
    expect((await scanWith(s.token)).status).toBe(401);
    expect((await scanWith(token)).status).toBe(200);
    expect((await api('DELETE', `${A}/controllers/${s.controller.id}`, admin)).status).toBe(204);
    expect((await scanWith(token)).status).toBe(401);
    expect((await api('POST', `${A}/controllers/${s.controller.id}/token`, admin)).status).toBe(404);
  });
});

describe('a controller id in another case', () => {
  test('is the same controller: its token rotated or revoked (named in any case) is refused at once in every case', async () => {
    const s = await aSite();
    const [id, secret] = s.token.split('.') as [string, string];
    const scanWith = (t: string) => api('POST', '/api/access/v1/credential', t, { door_id: s.door.id, credential: 'anything' });
    // The old token, used with its id in capitals, then rotated (as the console names it, in lower case).
    expect((await scanWith(`${id.toUpperCase()}.${secret}`)).status).toBe(200);
    const rotated = (await api('POST', `${A}/controllers/${s.controller.id}/token`, admin)).json.token as string;
    expect((await scanWith(`${id.toUpperCase()}.${secret}`)).status).toBe(401);
    // The new token, cached as the controller uses it, then revoked by an API call naming the id in capitals.
    expect((await scanWith(rotated)).status).toBe(200);
    expect((await api('DELETE', `${A}/controllers/${id.toUpperCase()}`, admin)).status).toBe(204);
    expect((await scanWith(rotated)).status).toBe(401);
  });
});

describe('credentials have a life cycle', () => {
  test('a lost card suspended is denied with its own reason, resumed works again, removed is unknown', async () => {
    const s = await aSite();
    const card = s.credentials.card!;
    const suspended = await api('PATCH', `${A}/users/${s.user.id}/credentials/${card}`, admin, { suspended: true });
    expect(suspended.json).toMatchObject({ id: card, suspended_at: expect.any(String) });
    expect(await s.scan('card')).toMatchObject({ result: 'deny', reason: 'credential_suspended' });
    expect(await s.scan('nfc')).toMatchObject({ result: 'grant' });
    expect((await api('GET', `${A}/users/${s.user.id}/credentials`, admin)).json.credentials).toEqual(expect.arrayContaining([expect.objectContaining({ id: card, suspended_at: expect.any(String) })]));
    expect((await api('PATCH', `${A}/users/${s.user.id}/credentials/${card}`, admin, { suspended: false })).json).toMatchObject({ suspended_at: null });
    expect(await s.scan('card')).toMatchObject({ result: 'grant' });
    // Someone else's credential id is no credential of this user's.
    const stranger = await aUser(server.latchkey);
    expect((await api('PATCH', `${A}/users/${stranger.id}/credentials/${card}`, admin, { suspended: true })).status).toBe(404);
    expect((await api('DELETE', `${A}/users/${s.user.id}/credentials/${card}`, admin)).status).toBe(204);
    expect(await s.scan('card')).toMatchObject({ result: 'deny', reason: 'unknown_credential' });
  });

  test('a card accepted at a two-factor door, then suspended, its user disabled, its access or the door closed: its code opens nothing', async () => {
    const revocations: Array<[string, (s: Awaited<ReturnType<typeof aSite>>) => Promise<unknown>]> = [
      ['credential_suspended', (s) => api('PATCH', `${A}/users/${s.user.id}/credentials/${s.credentials.card}`, admin, { suspended: true })],
      ['user_disabled', (s) => api('PATCH', `/api/admin/users/${s.user.id}`, admin, { status: 'disabled' })],
      ['no_access', (s) => api('DELETE', `${A}/levels/${s.level.id}`, admin)],
      ['door_locked', (s) => api('PATCH', `${A}/schedules/${s.schedule.id}`, admin, { windows: allDay('locked') })],
    ];
    for (const [reason, revoke] of revocations) {
      const s = await aSite(allDay('card_and_code'));
      expect(await s.scan('card')).toMatchObject({ result: 'code_required' });
      await revoke(s);
      // Within the code's 20 seconds, with the right code.
      expect({ reason, decision: await s.keypad('4711') }).toEqual({ reason, decision: expect.objectContaining({ result: 'deny', reason }) });
    }
    // Two-factor switched off meanwhile: the card alone would do now, so its right code still opens.
    const s = await aSite(allDay('card_and_code'));
    expect(await s.scan('card')).toMatchObject({ result: 'code_required' });
    await api('PATCH', `${A}/schedules/${s.schedule.id}`, admin, { windows: allDay('access') });
    expect(await s.keypad('4711')).toMatchObject({ result: 'grant', reason: 'card_and_code_accepted' });
  });

  test('an MFA code changed and deleted, an entry code deleted; in bulk, every user checked first', async () => {
    const s = await aSite(allDay('card_and_code'));
    const codes = async () => (await api('GET', `${A}/users/${s.user.id}/codes`, admin)).json.codes as Array<{ id: string; kind: string; code: string }>;
    const mfa = (await codes()).find((c) => c.kind === 'mfa')!;
    expect((await api('PATCH', `${A}/users/${s.user.id}/mfa-codes/${mfa.id}`, admin, { code: '90210' })).status).toBe(204);
    await s.scan('card');
    expect(await s.keypad('4711')).toMatchObject({ result: 'deny', reason: 'wrong_code' });
    expect(await s.keypad('90210')).toMatchObject({ result: 'grant' });
    expect((await api('DELETE', `${A}/users/${s.user.id}/entry-code`, admin)).status).toBe(204);
    expect((await codes()).map((c) => c.kind)).toEqual(['mfa']);

    const other = await aUser(server.latchkey);
    const bulk = (body: unknown) => api('POST', `${A}/mfa-codes/bulk`, admin, body);
    const unknown = await bulk({ add: [{ user_id: other.id, code: '1357' }, { user_id: '00000000-0000-4000-8000-000000000000', code: '2468' }] });
    expect(unknown.json).toMatchObject({ status: 404, field: 'user_id' });
    expect((await api('GET', `${A}/users/${other.id}/codes`, admin)).json.codes).toEqual([]);
    expect((await bulk({ add: [{ user_id: other.id, code: '12a4' }] })).json).toMatchObject({ status: 400, field: 'add.0.code' });
    const done = await bulk({ add: [{ user_id: other.id, code: '1357' }, { user_id: s.user.id, generate: { length: 8 } }], delete: [{ user_id: s.user.id, code_id: mfa.id }] });
    expect(done.status).toBe(200);
    expect(done.json).toMatchObject({ deleted: 1, added: [{ user_id: other.id, code: '1357' }, { user_id: s.user.id, code: expect.stringMatching(/^\d{8}$/) }] });
    expect((await codes()).map((c) => c.code)).toEqual([(done.json.added as Array<{ code: string }>)[1]!.code]);
  });

  test('an entry code set many times at once, typed or generated: every one answers 200, and the user keeps one (the last)', async () => {
    const s = await aSite();
    const typed = await Promise.all(Array.from({ length: 20 }, (_, i) => api('PUT', `${A}/users/${s.user.id}/entry-code`, admin, { code: String(640_000 + 17 * i) })));
    const generated = await Promise.all(Array.from({ length: 20 }, () => api('PUT', `${A}/users/${s.user.id}/entry-code`, admin, { generate: { length: 8 } })));
    expect([...typed, ...generated].map((r) => r.status)).toEqual(Array(40).fill(200));
    const codes = (await api('GET', `${A}/users/${s.user.id}/codes`, admin)).json.codes as Array<{ kind: string }>;
    expect(codes.filter((c) => c.kind === 'entry')).toHaveLength(1);
  });

  test('an entry code set while CSV imports give the same user an entry code: the set answers 200, never another user\'s code taken', async () => {
    const s = await aSite();
    const { email } = (await server.database.db('users').where({ id: s.user.id }).first()) as { email: string };
    const imports = Array.from({ length: 20 }, (_, i) =>
      api('POST', `${A}/import?dry_run=false`, admin, `email,name,kind,value\n${email},Racer,entry_code,${730_000 + 13 * i}\n`, { 'content-type': 'text/csv' }));
    const sets = Array.from({ length: 20 }, (_, i) => api('PUT', `${A}/users/${s.user.id}/entry-code`, admin, { code: String(850_000 + 19 * i) }));
    const [imported, set] = await Promise.all([Promise.all(imports), Promise.all(sets)]);
    expect(set.map((r) => ({ status: r.status, code: r.json.code }))).toEqual(Array(20).fill({ status: 200, code: undefined }));
    for (const reply of imported) expect([200, 422]).toContain(reply.status);
    const codes = (await api('GET', `${A}/users/${s.user.id}/codes`, admin)).json.codes as Array<{ kind: string }>;
    expect(codes.filter((c) => c.kind === 'entry')).toHaveLength(1);
  });

  test('a credential manager may not manage an admin’s credentials, one by one or in bulk', async () => {
    const manager = (await anAdmin(server.latchkey, server.url, ['access_credential_manager'])).token;
    const otherAdmin = await aUser(server.latchkey, { roles: ['auditor'] });
    expect((await api('POST', `${A}/mfa-codes/bulk`, manager, { add: [{ user_id: otherAdmin.id, code: '1357' }] })).status).toBe(403);
    expect((await api('DELETE', `${A}/users/${otherAdmin.id}/entry-code`, manager)).status).toBe(403);
  });
});

describe('credentials as the reference documents describe them', () => {
  test('Bluetooth opens a door without two-factor entry, but cannot stand in for the card on a two-factor door', async () => {
    const s = await aSite(allDay('card_and_code'));
    expect(await s.scan('ble', s.plain.id)).toMatchObject({ result: 'grant', reason: 'access_granted' });
    expect(await s.scan('ble')).toMatchObject({ result: 'deny', reason: 'bluetooth_is_not_a_card' });
    // NFC counts as a card.
    expect(await s.scan('nfc')).toMatchObject({ result: 'code_required' });
  });

  test('Nearby Unlock opens a two-factor door without a code, with its own reason; suspended, it opens nothing', async () => {
    const s = await aSite(allDay('card_and_code'));
    expect(await s.scan('nearby')).toMatchObject({ result: 'grant', reason: 'nearby_unlock' });
    expect(await s.scan('nearby', s.plain.id)).toMatchObject({ result: 'grant', reason: 'nearby_unlock' });
    const log = (await api('GET', `${A}/doors/${s.door.id}/decisions?user_id=${s.user.id}`, admin)).json.decisions as Array<{ details: Record<string, unknown> }>;
    expect(log[0]!.details).toMatchObject({ reason: 'nearby_unlock', credential_kind: 'nearby' });
    // Only people with access: off the level, Nearby Unlock opens nothing either.
    await api('DELETE', `${A}/levels/${s.level.id}/users/${s.user.id}`, admin);
    expect(await s.scan('nearby')).toMatchObject({ result: 'deny', reason: 'no_access' });
    await api('POST', `${A}/levels/${s.level.id}/users`, admin, { user_id: s.user.id });
    await api('PATCH', `${A}/users/${s.user.id}/credentials/${s.credentials.nearby}`, admin, { suspended: true });
    expect(await s.scan('nearby')).toMatchObject({ result: 'deny', reason: 'credential_suspended' });
  });

  test('a door without a keypad (as configured) opens to no code, even a right entry code its controller sends', async () => {
    const s = await aSite();
    const entry = ((await api('GET', `${A}/users/${s.user.id}/codes`, admin)).json.codes as Array<{ kind: string; code: string }>).find((c) => c.kind === 'entry')!;
    expect(await s.keypad(entry.code, s.door.id)).toMatchObject({ result: 'grant' });
    expect(await s.keypad(entry.code, s.plain.id)).toMatchObject({ result: 'deny', reason: 'no_keypad' });
    const log = (await api('GET', `${A}/doors/${s.plain.id}/decisions?limit=1`, admin)).json.decisions as Array<{ details: Record<string, unknown> }>;
    expect(log[0]!.details).toMatchObject({ result: 'deny', reason: 'no_keypad', entry: 'keypad' });
  });

  test('after the card, the code may be the user’s entry code as well as one of their MFA codes (seed 002)', async () => {
    const s = await aSite(allDay('card_and_code'));
    const entry = ((await api('GET', `${A}/users/${s.user.id}/codes`, admin)).json.codes as Array<{ kind: string; code: string }>).find((c) => c.kind === 'entry')!;
    expect(await s.scan('card')).toMatchObject({ result: 'code_required' });
    expect(await s.keypad(entry.code)).toMatchObject({ result: 'grant', reason: 'card_and_code_accepted' });
    const log = (await api('GET', `${A}/doors/${s.door.id}/decisions?user_id=${s.user.id}&limit=1`, admin)).json.decisions as Array<{ details: Record<string, unknown> }>;
    expect(log[0]!.details).toMatchObject({ code_kind: 'entry' });
    // Someone else's entry code is not this card's code.
    const other = await aSite(allDay('card_and_code'));
    const theirs = ((await api('GET', `${A}/users/${other.user.id}/codes`, admin)).json.codes as Array<{ kind: string; code: string }>).find((c) => c.kind === 'entry')!;
    await s.scan('card');
    expect(await s.keypad(theirs.code)).toMatchObject({ result: 'deny', reason: 'wrong_code' });
  });
});

describe('bad input is a clear 4xx', () => {
  test('ids in paths that are not ids, or of nothing, are 404s; unknown fields are named', async () => {
    const s = await aSite();
    expect((await api('PATCH', `${A}/schedules/not-an-id`, admin, { name: 'x' })).status).toBe(404);
    expect((await api('PATCH', `${A}/schedules/00000000-0000-4000-8000-000000000000`, admin, { name: 'x' })).status).toBe(404);
    expect((await api('PATCH', `${A}/doors/${s.door.id}`, admin, { hasKeypad: true })).json).toMatchObject({ status: 400 });
    expect((await api('PATCH', `${A}/doors/${s.door.id}`, admin, { name: 'x' }, { 'if-match': 'yesterday' })).json).toMatchObject({ status: 400, field: 'If-Match' });
    for (const tooBig of ['"2147483648"', '"99999999999999999999"']) expect((await api('PATCH', `${A}/doors/${s.door.id}`, admin, { name: 'x' }, { 'if-match': tooBig })).json).toMatchObject({ status: 400, field: 'If-Match' });
    expect((await api('PATCH', `${A}/users/${s.user.id}/credentials/${s.credentials.card}`, admin, { suspended: 'yes' })).json).toMatchObject({ status: 400, field: 'suspended' });
  });

  test('a name with a control character (a NUL the database cannot store) is refused naming its field', async () => {
    const s = await aSite();
    for (const [method, path, body, field] of [
      ['POST', '/sites', { name: 'HQ\u0000', time_zone: 'UTC' }, 'name'],
      ['PATCH', `/sites/${s.site.id}`, { name: 'HQ\u0000' }, 'name'],
      ['POST', `/sites/${s.site.id}/doors`, { name: 'Door\u0000' }, 'name'],
      ['PATCH', `/doors/${s.door.id}`, { name: 'Door\u0007' }, 'name'],
      ['POST', `/sites/${s.site.id}/schedules`, { name: 'S\u0000', windows: [] }, 'name'],
      ['POST', `/sites/${s.site.id}/levels`, { name: 'L\u0000' }, 'name'],
      ['PATCH', `/levels/${s.level.id}`, { name: 'L\u0000' }, 'name'],
      ['POST', `/sites/${s.site.id}/controllers`, { name: 'C\u0000' }, 'name'],
      ['PATCH', `/controllers/${s.controller.id}`, { name: 'C\u0000' }, 'name'],
      ['PUT', `/doors/${s.door.id}/exceptions`, { day: '2026-12-25', name: 'X\u0000', windows: [] }, 'name'],
    ] as const) {
      expect({ path, answer: (await api(method, `${A}${path}`, admin, body)).json }).toEqual({ path, answer: expect.objectContaining({ status: 400, field }) });
    }
  });

  test('If-Match as HTTP defines it: * is any version of what exists, a weak ETag never matches (strong comparison)', async () => {
    const s = await aSite();
    const read = await api('GET', `${A}/doors/${s.plain.id}`, admin);
    const etag = read.headers.get('etag')!;
    expect((await api('PATCH', `${A}/doors/${s.plain.id}`, admin, { name: 'Weak' }, { 'if-match': `W/${etag}` })).json).toMatchObject({ status: 412, field: 'If-Match' });
    expect((await api('DELETE', `${A}/doors/${s.plain.id}`, admin, undefined, { 'if-match': `W/${etag}` })).status).toBe(412);
    expect((await api('PATCH', `${A}/doors/${s.plain.id}`, admin, { name: 'Any' }, { 'if-match': '*' })).json).toMatchObject({ name: 'Any' });
    expect((await api('PATCH', `${A}/doors/00000000-0000-4000-8000-000000000000`, admin, { name: 'Any' }, { 'if-match': '*' })).status).toBe(404);
  });

  test('If-Match compares the opaque tag exactly: another spelling of the number, or an empty tag, is no version (412)', async () => {
    const s = await aSite();
    const etag = (await api('GET', `${A}/doors/${s.plain.id}`, admin)).headers.get('etag')!;
    expect(etag).toBe('"1"');
    for (const other of ['"0x1"', '"1.0"', '"1e0"', '"01"', '"+1"', '""', '"0"']) {
      const answer = await api('PATCH', `${A}/doors/${s.plain.id}`, admin, { name: `Not ${other}` }, { 'if-match': other });
      expect({ other, status: answer.status }).toEqual({ other, status: 412 });
    }
    // Not an entity tag at all (a space is no tag character): a bad If-Match.
    expect((await api('PATCH', `${A}/doors/${s.plain.id}`, admin, { name: 'Spaced' }, { 'if-match': '" 1"' })).json).toMatchObject({ status: 400, field: 'If-Match' });
    expect((await api('PATCH', `${A}/doors/${s.plain.id}`, admin, { name: 'Exact' }, { 'if-match': etag })).json).toMatchObject({ name: 'Exact', version: 2 });
  });

  test('a site admin edits only their own site’s doors, schedules, levels and controllers', async () => {
    const [mine, theirs] = [await aSite(), await aSite()];
    const siteAdmin = await anAdmin(server.latchkey, server.url, ['access_site_admin']);
    await api('POST', `${A}/sites/${mine.site.id}/admins`, admin, { user_id: siteAdmin.user.id });
    expect((await api('PUT', `${A}/schedules/${mine.schedule.id}/days/1`, siteAdmin.token, { windows: [] })).status).toBe(200);
    for (const [method, path, body] of [
      ['PUT', `/schedules/${theirs.schedule.id}/days/1`, { windows: [] }],
      ['PATCH', `/doors/${theirs.door.id}`, { name: 'mine now' }],
      ['DELETE', `/levels/${theirs.level.id}`, undefined],
      ['POST', `/controllers/${theirs.controller.id}/token`, undefined],
      ['DELETE', `/controllers/${theirs.controller.id}`, undefined],
      ['PATCH', `/sites/${mine.site.id}`, { name: 'renamed' }],
    ] as const) {
      expect({ path, status: (await api(method, `${A}${path}`, siteAdmin.token, body)).status }).toEqual({ path, status: 403 });
    }
    // The level of mine may not take their door.
    expect((await api('PATCH', `${A}/levels/${mine.level.id}`, siteAdmin.token, { door_ids: [theirs.door.id] })).json).toMatchObject({ status: 400, field: 'door_ids' });
  });
});
