import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { codeLookup } from '../../src/access/codes.js';
import { createDoorDecisions, keypadSchema, scanSchema } from '../../src/access/decisions.js';
import { createAccessService } from '../../src/access/service.js';
import { buildSnapshot, databaseFacts, type DecisionFacts } from '../../src/access/snapshot.js';
import { createChangeFeed } from '../../src/db/change-feed.js';
import { createQueries } from '../../src/db/index.js';
import { createSecretBox } from '../../src/security/secret-box.js';
import { createThrottle } from '../../src/security/throttle.js';
import { openTestDatabase, type TestDatabase } from '../helpers/database.js';
import { manualClock } from '../helpers/mfa.js';
import { queriesDuring } from '../helpers/queries.js';

/**
 * The contract of DecisionFacts: the snapshot in memory answers every question a door decision asks exactly as the
 * database does, over doors in two time zones, schedules, an exception, levels with and without schedules, a
 * disabled user, a locked card, shared and entry codes. Then the same scans decided both ways agree.
 */
const lookupKey = Buffer.alloc(32, 7);
// 2026-03-02 is a Monday. Instants chosen to fall inside and outside windows in Seoul and in New York.
const instants = ['2026-03-02T00:30:00Z', '2026-03-02T08:00:00Z', '2026-03-02T10:30:00Z', '2026-03-02T14:59:00Z', '2026-03-02T15:00:00Z', '2026-03-01T03:00:00Z', '2026-03-03T01:00:00Z'].map((iso) => new Date(iso));
const weekdays = [1, 2, 3, 4, 5];
const by = { actorId: null };

let database: TestDatabase;
let queries: ReturnType<typeof createQueries>;
let feed: ReturnType<typeof createChangeFeed>;
const clock = manualClock(instants[0]);
let doorIds: string[] = [];
let identifiers: string[] = [];
let users: Array<{ id: string }> = [];
let codes: string[] = [];
let seoulId = '';

beforeAll(async () => {
  database = await openTestDatabase();
  queries = createQueries(database.db);
  feed = createChangeFeed(database.db);
  const throttle = createThrottle(queries, clock);
  const access = createAccessService({ queries, box: createSecretBox(crypto.randomBytes(32)), clock, lookupKey, throttle, notifier: { notify: async () => undefined }, webPinMinLength: 6, feed });
  const seoul = await access.createSite({ name: 'Seoul', time_zone: 'Asia/Seoul' }, by);
  const newYork = await access.createSite({ name: 'New York', time_zone: 'America/New_York' }, by);
  seoulId = seoul.id;
  const office = await access.createSchedule(seoul.id, { name: 'Office', windows: [{ days: weekdays, start: 480, end: 1080, mode: 'card_and_code' }, { days: weekdays, start: 1080, end: 1320, mode: 'access' }, { days: [0], start: 600, end: 720, mode: 'unlocked' }] }, by);
  const shifts = await access.createSchedule(seoul.id, { name: 'Day shift', windows: [{ days: weekdays, start: 540, end: 1020, mode: 'access' }] }, by);
  const nyHours = await access.createSchedule(newYork.id, { name: 'NY', windows: [{ days: [0, 1, 2, 3, 4, 5, 6], start: 0, end: 600, mode: 'access' }] }, by);
  const lab = await access.createDoor(seoul.id, { name: 'Lab', has_keypad: true, schedule_id: office.id }, by);
  const lobby = await access.createDoor(seoul.id, { name: 'Lobby', has_keypad: true }, by);
  const exit = await access.createDoor(seoul.id, { name: 'Exit', has_keypad: true, in_out: true, schedule_id: office.id }, by);
  const reader = await access.createDoor(seoul.id, { name: 'Store', schedule_id: shifts.id }, by);
  const ny = await access.createDoor(newYork.id, { name: 'NY door', has_keypad: true, schedule_id: nyHours.id }, by);
  doorIds = [lab.id, lobby.id, exit.id, reader.id, ny.id];
  await access.setException(lobby.id, { day: '2026-03-02', name: 'Move', windows: [{ start: 600, end: 900, mode: 'card_and_code' }] }, by);
  await access.setException(ny.id, { day: '2026-03-01', name: 'Closed', windows: [] }, by);

  for (let i = 0; i < 6; i++) users.push(await queries.users.insert({ email: `facts-${i}@example.test`, name: `Facts ${i}`, passwordHash: null }));
  for (const [i, user] of users.entries()) {
    for (const kind of ['card', 'nfc', 'ble'] as const) await access.addCredential(user.id, { kind, identifier: `${kind}-${i}` }, by);
    identifiers.push(`card-${i}`, `nfc-${i}`, `ble-${i}`);
  }
  identifiers.push('nobody-has-this');
  // Codes: shared MFA digits, a user holding the same digits as MFA and entry code, entry codes alone.
  await access.addMfaCode(users[0]!.id, { code: '2580' }, by);
  await access.addMfaCode(users[1]!.id, { code: '2580' }, by);
  await access.addMfaCode(users[2]!.id, { code: '731946' }, by);
  await access.setEntryCode(users[2]!.id, { code: '731946' }, by);
  await access.setEntryCode(users[3]!.id, { code: '58203917' }, by);
  await access.setEntryCode(users[4]!.id, { code: '60417283' }, by);
  codes = ['2580', '731946', '58203917', '60417283', '99999999'];

  await access.createLevel(seoul.id, { name: 'Everywhere', door_ids: [lab.id, lobby.id, exit.id, reader.id], user_ids: [users[0]!.id, users[2]!.id, users[4]!.id] }, by);
  await access.createLevel(seoul.id, { name: 'Day shift', schedule_id: shifts.id, door_ids: [lab.id, reader.id], user_ids: [users[1]!.id, users[3]!.id, users[4]!.id] }, by);
  await access.createLevel(newYork.id, { name: 'NY', door_ids: [ny.id], user_ids: users.map((u) => u.id) }, by);
  // User 4 is disabled; user 0's card is locked for an hour, user 1's lock has run out.
  await queries.users.update(users[4]!.id, { status: 'disabled' });
  const card = async (i: number) => (await queries.access.listCredentials(users[i]!.id)).find((c) => c.kind === 'card')!.id;
  await database.db('throttle_counters').insert([
    { key: `door:credential:${await card(0)}`, failures: 10, window_started_at: instants[0], locked_until: new Date(instants[0]!.getTime() + 3600_000) },
    { key: `door:credential:${await card(1)}`, failures: 10, window_started_at: instants[0], locked_until: new Date(instants[0]!.getTime() - 1000) },
  ]);
});

afterAll(async () => {
  await feed.close();
  await database.close();
});

/** The same questions, answered by one implementation; level schedules in a stable order. */
async function answers(facts: DecisionFacts, now: Date) {
  const lookup = (code: string) => codeLookup(lookupKey, code);
  const sorted = <T>(list: T[]) => [...list].map((v) => JSON.stringify(v)).sort();
  const out: unknown[] = [];
  for (const door of [...doorIds, '00000000-0000-4000-8000-000000000000']) {
    out.push(['door', door, await facts.door(door, now)]);
    for (const identifier of identifiers) {
      const holder = await facts.holder(identifier, door);
      out.push(['holder', identifier, door, holder && { ...holder, lockedUntil: holder.lockedUntil !== null && holder.lockedUntil > now, levelSchedules: sorted(holder.levelSchedules) }]);
      // The same credential by its id (a card waiting at a keypad for its code) is the same holder.
      if (holder) expect(JSON.stringify(await facts.holderById(holder.credentialId, door))).toBe(JSON.stringify(holder));
    }
    expect(await facts.holderById('00000000-0000-4000-8000-000000000000', door)).toBeUndefined();
    for (const code of codes) {
      const entry = await facts.entryHolder(lookup(code), door);
      out.push(['entry', code, door, entry && { ...entry, levelSchedules: sorted(entry.levelSchedules) }]);
    }
  }
  for (const user of users) for (const code of codes) out.push(['code', user.id, code, await facts.userCode(user.id, lookup(code))]);
  return out;
}

describe('the snapshot and the database answer alike', () => {
  test.each(instants.map((at) => [at.toISOString(), at] as const))('at %s', async (_label, at) => {
    const snapshot = buildSnapshot(await queries.access.loadDecisionSnapshot('2026-02-27', at));
    expect(await answers(snapshot.facts, at)).toEqual(await answers(databaseFacts(queries), at));
  });

  test('the same scans, decided from the database and from memory, get the same answers; from memory a card costs one statement', async () => {
    const throttle = createThrottle(queries, clock);
    const fromDatabase = createDoorDecisions({ queries, clock, lookupKey, throttle, fromDatabase: true });
    // A feed of this test alone: on PostgreSQL the channel is the database's, and other test files' changes would
    // drop the snapshot in the middle of the comparison.
    const quiet = { publish: async () => undefined, subscribe: () => undefined, live: () => true, close: async () => undefined };
    const fromMemory = createDoorDecisions({ queries, clock, lookupKey, throttle, feed: quiet });
    clock.advance((Math.min(...instants.map((i) => i.getTime())) - clock.now().getTime()) / 1000);
    const at = { controllerId: '00000000-0000-4000-8000-00000000c0de' };
    // Forward in time only, as clocks go: a snapshot leaves out locks already over when it was read.
    await fromMemory.warm();
    for (const instant of [...instants].sort((a, b) => a.getTime() - b.getTime())) {
      clock.advance((instant.getTime() - clock.now().getTime()) / 1000);
      for (const door_id of doorIds) {
        for (const credential of identifiers) {
          for (const direction of ['in', 'out'] as const) {
            const expected = await fromDatabase.presentCredential({ door_id, credential, direction }, at);
            const statements = await queriesDuring(database.db, async () => expect(await fromMemory.presentCredential({ door_id, credential, direction }, at)).toEqual(expected));
            expect(statements).toHaveLength(1);
            expect(statements[0]).toMatch(/insert into audit_events/);
          }
        }
      }
    }
  });

  test("a controller is refused another site's door by the decision itself, however the door's id is written, from memory and from the database", async () => {
    const throttle = createThrottle(queries, clock);
    const quiet = { publish: async () => undefined, subscribe: () => undefined, live: () => true, close: async () => undefined };
    const fromMemory = createDoorDecisions({ queries, clock, lookupKey, throttle, feed: quiet });
    await fromMemory.warm();
    const seoulController = { controllerId: '00000000-0000-4000-8000-00000000c0de', siteId: seoulId };
    const [lab, ny] = [doorIds[0]!, doorIds[4]!];
    for (const decisions of [createDoorDecisions({ queries, clock, lookupKey, throttle, fromDatabase: true }), fromMemory]) {
      for (const door_id of [ny, ny.toUpperCase()]) {
        await expect(decisions.presentCredential(scanSchema.parse({ door_id, credential: 'card-0' }), seoulController)).rejects.toMatchObject({ status: 403, field: 'door_id' });
        await expect(decisions.enterCode(keypadSchema.parse({ door_id, code: '58203917' }), seoulController)).rejects.toMatchObject({ status: 403, field: 'door_id' });
      }
      // Its own site's door, in capitals: the same door.
      expect(await decisions.presentCredential(scanSchema.parse({ door_id: lab.toUpperCase(), credential: 'card-2' }), seoulController)).toEqual(await decisions.presentCredential({ door_id: lab, credential: 'card-2', direction: 'in' }, seoulController));
    }
  });

  test('while the change feed is down (changes could be missed), decisions read the database; once it is back, memory', async () => {
    let live = false;
    const handlers: Array<(key: string | undefined) => void> = [];
    const flaky = { publish: async () => undefined, subscribe: (_t: string, h: (key: string | undefined) => void) => void handlers.push(h), live: () => live, close: async () => undefined };
    const throttle = createThrottle(queries, clock);
    const decisions = createDoorDecisions({ queries, clock, lookupKey, throttle, feed: flaky });
    const scan = () => queriesDuring(database.db, () => decisions.presentCredential({ door_id: doorIds[1]!, credential: 'card-2', direction: 'in' }, { controllerId: 'c' }));
    await decisions.warm();
    expect((await scan()).length).toBeGreaterThan(1);
    live = true;
    handlers.forEach((h) => h(undefined));
    await decisions.warm();
    expect(await scan()).toHaveLength(1);
    // Lost again: whatever it holds may be stale.
    live = false;
    handlers.forEach((h) => h(undefined));
    expect((await scan()).length).toBeGreaterThan(1);
  });
});
