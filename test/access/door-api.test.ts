import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aUser } from '../helpers/factories.js';
import { manualClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const clock = manualClock(new Date());
const allDay = (mode: string) => [{ days: [0, 1, 2, 3, 4, 5, 6], start: 0, end: 1440, mode }];
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let admin: string;
let site: { id: string };
let twoFactor: { id: string };
let controller: { token: string };

beforeAll(async () => {
  server = await startTestServer({ clock });
  api = apiClient(server.url);
  admin = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
  site = (await api('POST', '/api/admin/access/sites', admin, { name: 'HQ', time_zone: 'Asia/Seoul' })).json as never;
  const schedule = (await api('POST', `/api/admin/access/sites/${site.id}/schedules`, admin, { name: '2FA always', windows: allDay('card_and_code') })).json as unknown as { id: string };
  twoFactor = (await api('POST', `/api/admin/access/sites/${site.id}/doors`, admin, { name: 'Lab', has_keypad: true, in_out: true, schedule_id: schedule.id })).json as never;
  controller = (await api('POST', `/api/admin/access/sites/${site.id}/controllers`, admin, { name: 'Lab controller' })).json as never;
});
afterAll(() => server.close());

/** A user with a card, an NFC phone, a Bluetooth unlock, two MFA codes, and access to the lab. */
async function cardholder(codes = ['2580', '902817']) {
  const user = await aUser(server.latchkey);
  const tag = user.id.slice(0, 8);
  for (const [kind, identifier] of [['card', `card-${tag}`], ['nfc', `nfc-${tag}`], ['ble', `ble-${tag}`]]) {
    expect((await api('POST', `/api/admin/access/users/${user.id}/credentials`, admin, { kind, identifier })).status).toBe(201);
  }
  for (const code of codes) expect((await api('POST', `/api/admin/access/users/${user.id}/mfa-codes`, admin, { code })).status).toBe(201);
  expect((await api('POST', `/api/admin/access/sites/${site.id}/levels`, admin, { name: `lab-${tag}`, door_ids: [twoFactor.id], user_ids: [user.id] })).status).toBe(201);
  return { user, card: `card-${tag}`, nfc: `nfc-${tag}`, ble: `ble-${tag}` };
}

const scan = (credential: string, direction = 'in', door = twoFactor.id) => api('POST', '/api/access/v1/credential', controller.token, { door_id: door, credential, direction });
const keypad = (code: string, door = twoFactor.id) => api('POST', '/api/access/v1/keypad', controller.token, { door_id: door, code });

describe('card + code entry, as a door controller asks', () => {
  test('card, then the right code within the window: granted; every decision is audited', async () => {
    const person = await cardholder();
    expect((await scan(person.card)).json).toMatchObject({ result: 'code_required' });
    expect((await keypad('1111')).json).toMatchObject({ result: 'deny', reason: 'wrong_code' });
    expect((await keypad('902817')).json).toMatchObject({ result: 'grant', reason: 'card_and_code_accepted' });
    const log = (await api('GET', `/api/admin/access/doors/${twoFactor.id}/decisions?user_id=${person.user.id}`, admin)).json.decisions as unknown as Array<{ details: Record<string, unknown> }>;
    expect(log.map((e) => e.details.result)).toEqual(['grant', 'deny', 'code_required']);
    expect(log[2]!.details).toMatchObject({ door_id: twoFactor.id, mode: 'card_and_code', credential_kind: 'card' });
  });

  test('a code without a card first is refused; a code after the window is refused', async () => {
    const person = await cardholder();
    expect((await keypad('2580')).json).toMatchObject({ result: 'deny', reason: 'card_first' });
    await scan(person.card);
    clock.advance(21);
    expect((await keypad('2580')).json).toMatchObject({ result: 'deny', reason: 'code_too_late' });
  });

  test('wrong codes lock the card for an hour, whichever scans they come after', async () => {
    const person = await cardholder(['6031']);
    for (let scanNo = 0; scanNo < 4; scanNo++) {
      expect((await scan(person.card)).json).toMatchObject({ result: 'code_required' });
      for (let i = 0; i < (scanNo === 3 ? 1 : 3); i++) expect((await keypad('7777')).json).toMatchObject({ result: 'deny', reason: 'wrong_code' });
    }
    // Ten wrong codes: even the right one is no use now, until the hour is over.
    expect((await scan(person.card)).json).toMatchObject({ result: 'deny', reason: 'credential_locked' });
    clock.advance(3601);
    expect((await scan(person.card)).json).toMatchObject({ result: 'code_required' });
    expect((await keypad('6031')).json).toMatchObject({ result: 'grant' });
    // An hour later the admin's access token has expired too: the tests that follow need a fresh one.
    admin = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
  });

  test('a right code starts the card\'s count of wrong codes again', async () => {
    const person = await cardholder(['5193']);
    const wrongCodes = async (n: number) => {
      for (let i = 0; i < n; i++) {
        if (i % 3 === 0) expect((await scan(person.card)).json).toMatchObject({ result: 'code_required' });
        expect((await keypad('7777')).json).toMatchObject({ result: 'deny', reason: 'wrong_code' });
      }
    };
    await wrongCodes(9);
    expect((await scan(person.card)).json).toMatchObject({ result: 'code_required' });
    expect((await keypad('5193')).json).toMatchObject({ result: 'grant' });
    // Nine more wrong codes would have locked the card had the right one not reset its count.
    await wrongCodes(9);
    expect((await scan(person.card)).json).toMatchObject({ result: 'code_required' });
    expect((await keypad('5193')).json).toMatchObject({ result: 'grant' });
  });

  test('leaving through an in/out door needs no code; NFC acts as a card; Bluetooth does not', async () => {
    const person = await cardholder();
    expect((await scan(person.card, 'out')).json).toMatchObject({ result: 'grant', reason: 'exit_without_code' });
    expect((await scan(person.nfc)).json).toMatchObject({ result: 'code_required' });
    expect((await scan(person.ble)).json).toMatchObject({ result: 'deny', reason: 'bluetooth_is_not_a_card' });
    expect((await scan('no-such-card')).json).toMatchObject({ result: 'deny', reason: 'unknown_credential' });
  });

  test('several users may share an MFA code, and a user may have several', async () => {
    const first = await cardholder(['4826', '5173']);
    const second = await cardholder(['4826']);
    await scan(second.card);
    expect((await keypad('4826')).json).toMatchObject({ result: 'grant' });
    await scan(first.card);
    expect((await keypad('5173')).json).toMatchObject({ result: 'grant' });
    await scan(second.card);
    expect((await keypad('5173')).json).toMatchObject({ result: 'deny', reason: 'wrong_code' });
  });

  test('an exception beats the schedule, and remote unlock opens without a code', async () => {
    const person = await cardholder();
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Seoul' }).format(clock.now());
    expect((await api('PUT', `/api/admin/access/doors/${twoFactor.id}/exceptions`, admin, { day: today, name: 'Holiday', windows: allDay('locked') })).status).toBe(204);
    expect((await scan(person.card)).json).toMatchObject({ result: 'deny', reason: 'door_locked' });
    expect((await api('POST', `/api/admin/access/doors/${twoFactor.id}/unlock`, admin, {})).json).toMatchObject({ result: 'grant', reason: 'remote_unlock' });
    expect((await api('PUT', `/api/admin/access/doors/${twoFactor.id}/exceptions`, admin, { day: today, windows: allDay('card_and_code') })).status).toBe(204);
  });

  test('two-factor entry is refused on a door without a keypad', async () => {
    const schedule = (await api('POST', `/api/admin/access/sites/${site.id}/schedules`, admin, { name: '2FA', windows: allDay('card_and_code') })).json as unknown as { id: string };
    const refused = await api('POST', `/api/admin/access/sites/${site.id}/doors`, admin, { name: 'Lobby', has_keypad: false, schedule_id: schedule.id });
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ code: 'two_factor_needs_reader_and_keypad', field: 'schedule_id' });
    const plain = (await api('POST', `/api/admin/access/sites/${site.id}/doors`, admin, { name: 'Lobby', has_keypad: false })).json as unknown as { id: string };
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Seoul' }).format(clock.now());
    expect((await api('PUT', `/api/admin/access/doors/${plain.id}/exceptions`, admin, { day: today, windows: allDay('card_and_code') })).status).toBe(400);
  });

  test('decisions arriving together are committed together, each audited exactly once', async () => {
    const people = await Promise.all(Array.from({ length: 6 }, () => cardholder(['3917'])));
    const doors = await Promise.all(
      people.map(async (_p, i) => ((await api('POST', `/api/admin/access/sites/${site.id}/doors`, admin, { name: `Gate ${i}`, has_keypad: true, schedule_id: null })).json as unknown as { id: string }).id),
    );
    await Promise.all(people.map((p, i) => api('POST', `/api/admin/access/sites/${site.id}/levels`, admin, { name: `gate-${i}`, door_ids: [doors[i]], user_ids: [p.user.id] })));
    const before = Number((await server.database.db('audit_events').where({ action: 'door.decision' }).count({ n: '*' }).first())!.n);
    const answers = await Promise.all(Array.from({ length: 60 }, (_v, i) => scan(people[i % 6]!.card, 'in', doors[i % 6]!)));
    expect(answers.every((a) => a.json.result === 'grant')).toBe(true);
    const after = Number((await server.database.db('audit_events').where({ action: 'door.decision' }).count({ n: '*' }).first())!.n);
    expect(after - before).toBe(60);
  });

  test('controllers authenticate, and ask only about their own site', async () => {
    expect((await api('POST', '/api/access/v1/credential', undefined, { door_id: twoFactor.id, credential: 'x' })).status).toBe(401);
    expect((await api('POST', '/api/access/v1/credential', `${controller.token.split('.')[0]}.wrong-secret-value`, { door_id: twoFactor.id, credential: 'x' })).status).toBe(401);
    // The token exactly as issued: anything appended is another token, and refused.
    expect((await api('POST', '/api/access/v1/credential', `${controller.token}.appended`, { door_id: twoFactor.id, credential: 'x' })).status).toBe(401);
    expect((await api('POST', '/api/access/v1/credential', `${controller.token.slice(0, -2)}`, { door_id: twoFactor.id, credential: 'x' })).status).toBe(401);
    const other = (await api('POST', '/api/admin/access/sites', admin, { name: 'Branch', time_zone: 'Europe/Berlin' })).json as unknown as { id: string };
    const theirs = (await api('POST', `/api/admin/access/sites/${other.id}/controllers`, admin, { name: 'Branch controller' })).json as unknown as { token: string };
    expect((await api('POST', '/api/access/v1/credential', theirs.token, { door_id: twoFactor.id, credential: 'x' })).status).toBe(403);
    expect((await api('POST', '/api/access/v1/credential', controller.token, { door_id: 'nope', credential: 'x' })).status).toBe(400);
  });
});

describe('managing codes and credentials', () => {
  test('codes: 4 and 16 digits accepted, 3, 17 and non-digits refused naming the field; Generate avoids trivial codes', async () => {
    const user = await aUser(server.latchkey);
    const add = (body: unknown) => api('POST', `/api/admin/access/users/${user.id}/mfa-codes`, admin, body);
    expect((await add({ code: '8264' })).status).toBe(201);
    expect((await add({ code: '8264913570264813' })).status).toBe(201);
    for (const [code, message] of [['826', 'at least 4'], ['82649135702648131', 'at most 16'], ['82a4', 'digits only']]) {
      const refused = await add({ code });
      expect(refused.status).toBe(400);
      expect(refused.json.field).toBe('code');
      expect(String(refused.json.detail)).toContain(message);
    }
    const generated = await add({ generate: { length: 8 } });
    expect(String(generated.json.code)).toMatch(/^\d{8}$/);
    const listed = (await api('GET', `/api/admin/access/users/${user.id}/codes`, admin)).json.codes as unknown as Array<{ id: string; code: string }>;
    expect(listed.map((c) => c.code)).toEqual(['8264', '8264913570264813', generated.json.code]);
    expect((await api('PATCH', `/api/admin/access/users/${user.id}/mfa-codes/${listed[0]!.id}`, admin, { code: '7351' })).status).toBe(204);
    expect((await api('DELETE', `/api/admin/access/users/${user.id}/mfa-codes/${listed[1]!.id}`, admin)).status).toBe(204);
    const after = (await api('GET', `/api/admin/access/users/${user.id}/codes`, admin)).json.codes as unknown as Array<{ code: string }>;
    expect(after.map((c) => c.code)).toEqual(['7351', generated.json.code]);
    const stored = await server.database.db('access_codes').where({ user_id: user.id });
    expect(JSON.stringify(stored)).not.toContain('7351');
  });

  test('entry codes are unique: they identify their user on a keypad alone', async () => {
    const [a, b] = [await aUser(server.latchkey), await aUser(server.latchkey)];
    expect((await api('PUT', `/api/admin/access/users/${a.id}/entry-code`, admin, { code: '739152' })).status).toBe(200);
    const taken = await api('PUT', `/api/admin/access/users/${b.id}/entry-code`, admin, { code: '739152' });
    expect(taken.status).toBe(409);
    expect((await api('PUT', `/api/admin/access/users/${b.id}/entry-code`, admin, { code: '123456' })).status).toBe(400);
  });

  test('roles are enforced on every endpoint', async () => {
    const person = await aUser(server.latchkey);
    const nobody = (await anAdmin(server.latchkey, server.url, [])).token;
    const manager = (await anAdmin(server.latchkey, server.url, ['access_credential_manager'])).token;
    const otherSiteAdmin = await anAdmin(server.latchkey, server.url, ['access_site_admin']);
    const ownSiteAdmin = await anAdmin(server.latchkey, server.url, ['access_site_admin']);
    await api('POST', `/api/admin/access/sites/${site.id}/admins`, admin, { user_id: ownSiteAdmin.user.id });
    const people: Array<[string, string, unknown?]> = [
      ['GET', `/api/admin/access/users/${person.id}/codes`],
      ['POST', `/api/admin/access/users/${person.id}/mfa-codes`, { code: '5937' }],
      ['PATCH', `/api/admin/access/users/${person.id}/mfa-codes/00000000-0000-4000-8000-000000000000`, { code: '5937' }],
      ['DELETE', `/api/admin/access/users/${person.id}/mfa-codes/00000000-0000-4000-8000-000000000000`],
      ['PUT', `/api/admin/access/users/${person.id}/entry-code`, { code: '591735' }],
      ['GET', `/api/admin/access/users/${person.id}/credentials`],
      ['POST', `/api/admin/access/users/${person.id}/credentials`, { kind: 'card', identifier: `r-${person.id.slice(0, 8)}` }],
      ['DELETE', `/api/admin/access/users/${person.id}/credentials/00000000-0000-4000-8000-000000000000`],
      ['GET', '/api/admin/access/export.csv'],
    ];
    const siteWork: Array<[string, string, unknown?]> = [
      ['POST', `/api/admin/access/sites/${site.id}/schedules`, { name: 's', windows: allDay('access') }],
      ['POST', `/api/admin/access/sites/${site.id}/doors`, { name: 'd' }],
      ['POST', `/api/admin/access/sites/${site.id}/levels`, { name: 'l' }],
      ['POST', `/api/admin/access/sites/${site.id}/controllers`, { name: 'c' }],
      ['PUT', `/api/admin/access/doors/${twoFactor.id}/exceptions`, { day: '2030-01-01', windows: allDay('access') }],
      ['POST', `/api/admin/access/doors/${twoFactor.id}/unlock`, {}],
      ['GET', `/api/admin/access/doors/${twoFactor.id}/decisions`],
    ];
    for (const [method, path, body] of [...people, ...siteWork, ['POST', '/api/admin/access/sites', { name: 'x', time_zone: 'UTC' }] as [string, string, unknown]]) {
      expect([method, path, (await api(method, path, nobody, body)).status]).toEqual([method, path, 403]);
    }
    for (const [method, path, body] of people) expect([method, path, (await api(method, path, manager, body)).status]).not.toEqual([method, path, 403]);
    for (const [method, path, body] of siteWork) {
      expect([method, path, (await api(method, path, manager, body)).status]).toEqual([method, path, 403]);
      expect([method, path, (await api(method, path, otherSiteAdmin.token, body)).status]).toEqual([method, path, 403]);
      expect([method, path, (await api(method, path, ownSiteAdmin.token, body)).status]).not.toEqual([method, path, 403]);
    }
    expect((await api('POST', '/api/admin/access/sites', ownSiteAdmin.token, { name: 'x', time_zone: 'UTC' })).status).toBe(403);
    expect((await api('POST', '/api/admin/access/sites', admin, { name: 'x', time_zone: 'Mars/Olympus' })).json).toMatchObject({ field: 'time_zone' });
  });
});
