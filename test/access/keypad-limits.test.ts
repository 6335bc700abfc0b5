import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aUser } from '../helpers/factories.js';
import { onRealPostgres } from '../helpers/database.js';
import { manualClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Guessing at a keypad: every guess is reserved before its code is looked up, so a burst of concurrent guesses
 * evaluates at most the limit, and a right code arriving inside a locked burst does not open the door.
 */
const clock = manualClock(new Date());
const allDay = (mode: string) => [{ days: [0, 1, 2, 3, 4, 5, 6], start: 0, end: 1440, mode }];
const BURST = 40;
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let admin: string;
let site: { id: string };
let twoFactorSchedule: { id: string };
let controller: { id: string; token: string };

beforeAll(async () => {
  server = await startTestServer({ clock });
  api = apiClient(server.url);
  admin = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
  site = (await api('POST', '/api/admin/access/sites', admin, { name: 'Guesses', time_zone: 'Asia/Seoul' })).json as never;
  twoFactorSchedule = (await api('POST', `/api/admin/access/sites/${site.id}/schedules`, admin, { name: '2FA', windows: allDay('card_and_code') })).json as never;
  controller = (await api('POST', `/api/admin/access/sites/${site.id}/controllers`, admin, { name: 'Guess controller' })).json as never;
});
afterAll(() => server.close());

const newDoor = async (twoFactor = false) =>
  ((await api('POST', `/api/admin/access/sites/${site.id}/doors`, admin, { name: 'Door', has_keypad: true, schedule_id: twoFactor ? twoFactorSchedule.id : null })).json as unknown as { id: string }).id;
const keypad = (door: string, code: string, token = controller.token) => api('POST', '/api/access/v1/keypad', token, { door_id: door, code });
const scan = (door: string, credential: string) => api('POST', '/api/access/v1/credential', controller.token, { door_id: door, credential, direction: 'in' });
const reasons = (answers: Array<{ json: Record<string, unknown> }>) => answers.map((a) => String(a.json.reason));
const count = (list: string[], reason: string) => list.filter((r) => r === reason).length;
/** Eight digits no user here holds. */
const wrongCode = (i: number) => String(40_000_000 + i * 7919);

async function personWithEntryCode(doors: string[], entry: string) {
  const user = await aUser(server.latchkey);
  expect((await api('PUT', `/api/admin/access/users/${user.id}/entry-code`, admin, { code: entry })).status).toBe(200);
  expect((await api('POST', `/api/admin/access/sites/${site.id}/levels`, admin, { name: `l-${user.id.slice(0, 8)}`, door_ids: doors, user_ids: [user.id] })).status).toBe(201);
  return user;
}

async function cardholder(doors: string[], code: string) {
  const user = await aUser(server.latchkey);
  const card = `card-${user.id.slice(0, 8)}`;
  expect((await api('POST', `/api/admin/access/users/${user.id}/credentials`, admin, { kind: 'card', identifier: card })).status).toBe(201);
  expect((await api('POST', `/api/admin/access/users/${user.id}/mfa-codes`, admin, { code })).status).toBe(201);
  expect((await api('POST', `/api/admin/access/sites/${site.id}/levels`, admin, { name: `c-${user.id.slice(0, 8)}`, door_ids: doors, user_ids: [user.id] })).status).toBe(201);
  return { user, card };
}

describe('a code alone at a keypad', () => {
  test(`${BURST} concurrent wrong codes at one door: at most 10 are looked up, then the door's keypad is locked, even to the right code`, async () => {
    const door = await newDoor();
    await personWithEntryCode([door], '58203917');
    const answers = await Promise.all(Array.from({ length: BURST }, (_v, i) => keypad(door, wrongCode(i))));
    const seen = reasons(answers);
    expect(count(seen, 'unknown_code')).toBeLessThanOrEqual(10);
    expect(count(seen, 'unknown_code') + count(seen, 'keypad_locked')).toBe(BURST);
    expect((await keypad(door, '58203917')).json).toMatchObject({ result: 'deny', reason: 'keypad_locked' });
    // The refusal is a decision like any other, in the door's log.
    const log = (await api('GET', `/api/admin/access/doors/${door}/decisions?limit=1`, admin)).json.decisions as unknown as Array<{ details: Record<string, unknown> }>;
    expect(log[0]!.details).toMatchObject({ result: 'deny', reason: 'keypad_locked', entry: 'keypad', controller_id: controller.id });
    // Another door of the same controller still answers.
    const other = await newDoor();
    await personWithEntryCode([other], '60417283');
    expect((await keypad(other, '60417283')).json).toMatchObject({ result: 'grant' });
    // The lock ends, and a right code is not counted as a guess.
    clock.advance(301);
    expect((await keypad(door, '58203917')).json).toMatchObject({ result: 'grant' });
  });

  test('a right code inside a burst at a locked door does not open it', async () => {
    const door = await newDoor();
    await personWithEntryCode([door], '71930584');
    for (let i = 0; i < 10; i++) await keypad(door, wrongCode(100 + i));
    const burst = Array.from({ length: BURST }, (_v, i) => (i === 20 ? '71930584' : wrongCode(200 + i)));
    const answers = await Promise.all(burst.map((code) => keypad(door, code)));
    expect(answers.filter((a) => a.json.result === 'grant')).toEqual([]);
    expect(count(reasons(answers), 'keypad_locked')).toBe(BURST);
  });

  test('the service itself limits per door: the controller API is not the only way in', async () => {
    const door = await newDoor();
    await personWithEntryCode([door], '82059137');
    const enter = (code: string) => server.latchkey.doors.enterCode({ door_id: door, code }, { controllerId: controller.id });
    const answers = await Promise.all(Array.from({ length: BURST }, (_v, i) => enter(i === BURST - 1 ? '82059137' : wrongCode(300 + i))));
    expect(answers.filter((a) => a.reason === 'unknown_code').length).toBeLessThanOrEqual(10);
    expect(answers.filter((a) => a.result === 'grant').length).toBeLessThanOrEqual(1);
    expect((await enter('82059137')).reason).toBe('keypad_locked');
  });

  test('one controller guessing across its doors is limited too, below what the doors would allow together', async () => {
    const own = (await api('POST', `/api/admin/access/sites/${site.id}/controllers`, admin, { name: 'Roaming' })).json as unknown as { token: string };
    const doors = await Promise.all(Array.from({ length: 6 }, () => newDoor()));
    const answers = await Promise.all(Array.from({ length: 60 }, (_v, i) => keypad(doors[i % 6]!, wrongCode(400 + i), own.token)));
    const seen = reasons(answers);
    expect(count(seen, 'unknown_code')).toBeLessThanOrEqual(50);
    expect(count(seen, 'keypad_locked')).toBeGreaterThanOrEqual(10);
    // A fresh door of this controller is locked for code-alone guesses as well; another controller is not.
    const fresh = await newDoor();
    await personWithEntryCode([fresh], '93018452');
    expect((await keypad(fresh, '93018452', own.token)).json).toMatchObject({ reason: 'keypad_locked' });
    expect((await keypad(fresh, '93018452')).json).toMatchObject({ result: 'grant' });
  });
});

describe('a code after a card', () => {
  test(`${BURST} concurrent codes for one scan: at most 3 are compared`, async () => {
    const door = await newDoor(true);
    const person = await cardholder([door], '264810');
    expect((await scan(door, person.card)).json).toMatchObject({ result: 'code_required' });
    const answers = await Promise.all(Array.from({ length: BURST }, (_v, i) => server.latchkey.doors.enterCode({ door_id: door, code: wrongCode(500 + i) }, { controllerId: controller.id })));
    const seen = answers.map((a) => a.reason);
    expect(count(seen, 'wrong_code')).toBeLessThanOrEqual(3);
    expect(answers.every((a) => a.result === 'deny')).toBe(true);
    // Only those three count against the card.
    const counter = await server.database.db('throttle_counters').where({ key: `door:credential:${(await server.latchkey.access.listCredentials(person.user.id))[0]!.id}` }).first();
    expect(Number(counter.failures)).toBeLessThanOrEqual(3);
  });

  test('with the right code among the burst, at most 3 are compared and at most one opens', async () => {
    const door = await newDoor(true);
    const person = await cardholder([door], '390572');
    await scan(door, person.card);
    const answers = await Promise.all(Array.from({ length: BURST }, (_v, i) => server.latchkey.doors.enterCode({ door_id: door, code: i === 2 ? '390572' : wrongCode(600 + i) }, { controllerId: controller.id })));
    const seen = answers.map((a) => a.reason);
    expect(count(seen, 'wrong_code') + count(seen, 'card_and_code_accepted')).toBeLessThanOrEqual(3);
    expect(count(seen, 'card_and_code_accepted')).toBeLessThanOrEqual(1);
  });

  test('a card locked after its scan: the right code for that earlier scan does not open, alone or in a burst', async () => {
    const [waiting, elsewhere] = [await newDoor(true), await newDoor(true)];
    const person = await cardholder([waiting, elsewhere], '470196');
    expect((await scan(waiting, person.card)).json).toMatchObject({ result: 'code_required' });
    // Ten wrong codes at another door lock the card while the first scan still waits for its code.
    for (let scanNo = 0; scanNo < 4; scanNo++) {
      await scan(elsewhere, person.card);
      for (let i = 0; i < (scanNo === 3 ? 1 : 3); i++) expect((await keypad(elsewhere, wrongCode(700 + scanNo * 3 + i))).json).toMatchObject({ reason: 'wrong_code' });
    }
    expect((await scan(elsewhere, person.card)).json).toMatchObject({ reason: 'credential_locked' });
    const answers = await Promise.all(Array.from({ length: BURST }, () => keypad(waiting, '470196')));
    expect(answers.filter((a) => a.json.result === 'grant')).toEqual([]);
    expect(reasons(answers)).toContain('credential_locked');
  });
});

// Row locks held by one statement while another waits on them: PGlite has one connection, so this needs PostgreSQL.
const describeOnPostgres = onRealPostgres ? describe : describe.skip;

describeOnPostgres('keypad entries racing other writes to the same rows', () => {
  const credentialOf = async (userId: string) => (await server.latchkey.access.listCredentials(userId))[0]!.id;
  const waitingOnALock = async () => {
    for (let i = 0; i < 100; i++) {
      const blocked = await server.database.db.raw("select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%door_pending_codes%'");
      if (blocked.rows.length) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('the keypad entry never waited for the scan in flight');
  };

  test('a scan replacing the waiting card while an entry takes its try: the entry gets no try, and neither card is charged', async () => {
    const door = await newDoor(true);
    const [first, second] = [await cardholder([door], '264810'), await cardholder([door], '739152')];
    const [firstCard, secondCard] = [await credentialOf(first.user.id), await credentialOf(second.user.id)];
    const { db } = server.database;
    for (let round = 0; round < 3; round++) {
      expect((await scan(door, first.card)).json).toMatchObject({ result: 'code_required' });
      // Another scan's write, not yet committed: the waiting row already names the second card.
      const replacing = await db.transaction();
      await replacing.raw('update door_pending_codes set user_id = ?, credential_id = ?, attempts = 0, expires_at = ? where door_id = ?', [second.user.id, secondCard, new Date(clock.now().getTime() + 20_000), door]);
      const entry = server.latchkey.doors.enterCode({ door_id: door, code: wrongCode(800 + round) }, { controllerId: controller.id });
      await waitingOnALock();
      await replacing.commit();
      // Compared with the first card's user, charged to the second card, it would have been a free guess.
      expect(await entry).toMatchObject({ result: 'deny', reason: 'no_tries_left' });
    }
    expect(await db('throttle_counters').whereIn('key', [firstCard, secondCard].map((id) => `door:credential:${id}`))).toEqual([]);
  });

  test('a right code\'s reset and another entry at the same door, many at once: no deadlock', async () => {
    const doors = await Promise.all(Array.from({ length: 4 }, () => newDoor(true)));
    const person = await cardholder(doors, '581302');
    const { db } = server.database;
    const cards = await Promise.all(
      doors.map(async (_door, i) => ((await api('POST', `/api/admin/access/users/${person.user.id}/credentials`, admin, { kind: 'card', identifier: `card-${i}-${person.user.id.slice(0, 8)}` })).json as unknown as { id: string }).id),
    );
    const access = server.latchkey.queries.access;
    const guess = { keyPrefix: 'door:credential:', limits: { limit: 1_000_000, windowSeconds: 3600, baseLockSeconds: 3600 } };
    const failures: string[] = [];
    for (let round = 0; round < 60; round++) {
      const expires = new Date(clock.now().getTime() + 20_000);
      for (const [i, door] of doors.entries()) {
        await db('door_pending_codes').insert({ door_id: door, user_id: person.user.id, credential_id: cards[i], attempts: 0, expires_at: expires }).onConflict('door_id').merge();
      }
      // Per door: a right code's record (clears the waiting card, resets the card's count) beside another entry's
      // try (the waiting card, then the card's count).
      await Promise.all(
        doors.flatMap((door, i) => [
          access.recordDecision({ subject_id: person.user.id, outcome: 'success', details: { door_id: door } }, { clear: { door_id: door, expires_at: expires } }, [`door:credential:${cards[i]}`]).catch((e: { code?: string }) => failures.push(`record ${e.code}`)),
          access.takeCodeTry(door, 3, clock.now(), guess).catch((e: { code?: string }) => failures.push(`try ${e.code}`)),
        ]),
      );
    }
    expect(failures).toEqual([]);
  });
});
