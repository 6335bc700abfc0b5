import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createAccessService } from '../../src/access/service.js';
import { createChangeFeed } from '../../src/db/change-feed.js';
import { systemClock } from '../../src/security/clock.js';
import { accessCodeLookupKey, createSecretBox } from '../../src/security/secret-box.js';
import { createThrottle } from '../../src/security/throttle.js';
import { startCluster } from '../helpers/cluster.js';
import { onRealPostgres } from '../helpers/database.js';

// Instances share state only through PostgreSQL; PGlite lives inside one process, so this needs the server.
const describeOnPostgres = onRealPostgres ? describe : describe.skip;
const allDay = (mode: string) => [{ days: [0, 1, 2, 3, 4, 5, 6], start: 0, end: 1440, mode }];
const by = { actorId: null };
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Each instance decides from its own copy in memory: a change made anywhere must reach every copy at once. */
describeOnPostgres('door decisions on two instances of one PostgreSQL', () => {
  let cluster: Awaited<ReturnType<typeof startCluster>>;
  let feed: ReturnType<typeof createChangeFeed>;
  let access: ReturnType<typeof createAccessService>;
  let site: { id: string };
  let token: string;

  beforeAll(async () => {
    cluster = await startCluster(2);
    feed = createChangeFeed(cluster.database.db);
    access = createAccessService({
      queries: cluster.queries,
      box: createSecretBox(cluster.masterKey),
      clock: systemClock,
      lookupKey: accessCodeLookupKey(cluster.masterKey),
      throttle: createThrottle(cluster.queries, systemClock),
      notifier: { notify: async () => undefined },
      webPinMinLength: 6,
      feed,
    });
    site = await access.createSite({ name: 'Two', time_zone: 'Asia/Seoul' }, by);
    token = (await access.createController(site.id, 'Front', by)).token;
  }, 60_000);
  afterAll(async () => {
    await feed?.close();
    await cluster?.stop();
  });

  const ask = async (instance: number, route: 'credential' | 'keypad', body: Record<string, unknown>) => {
    const response = await fetch(`${cluster.servers[instance]!.url}/api/access/v1/${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { result: string; reason: string };
  };
  const scan = (instance: number, door: string, credential: string) => ask(instance, 'credential', { door_id: door, credential });

  async function cardholder(door: string, tag: string) {
    const user = await cluster.addUser();
    const card = await access.addCredential(user.id, { kind: 'card', identifier: `card-${tag}` }, by);
    await access.addMfaCode(user.id, { code: '480317' }, by);
    await access.createLevel(site.id, { name: tag, door_ids: [door], user_ids: [user.id] }, by);
    return { user, card };
  }

  test('a card removed on one instance is refused by the other at once, though it decides from memory', async () => {
    const door = await access.createDoor(site.id, { name: 'Lobby' }, by);
    const { user, card } = await cardholder(door.id, 'removed');
    // Both instances hold the card in their copies (the first decision reads the copy; the next ones use it).
    for (const instance of [0, 1]) expect((await scan(instance, door.id, card.identifier)).result).toBe('grant');
    await pause(100);
    for (const instance of [0, 1]) expect((await scan(instance, door.id, card.identifier)).result).toBe('grant');

    expect(await access.removeCredential(user.id, card.id, by)).toBe(true);
    // NOTIFY reaches the other instance after the commit, asynchronously: far less than this.
    await pause(50);
    expect(await scan(1, door.id, card.identifier)).toMatchObject({ result: 'deny', reason: 'unknown_credential' });
    expect(await scan(0, door.id, card.identifier)).toMatchObject({ result: 'deny', reason: 'unknown_credential' });
  }, 30_000);

  test('a change made in the database by any path (here SQL alone) reaches every instance: a disabled user is refused', async () => {
    const door = await access.createDoor(site.id, { name: 'Side' }, by);
    const { user, card } = await cardholder(door.id, 'disabled');
    for (const instance of [0, 1]) expect((await scan(instance, door.id, card.identifier)).result).toBe('grant');
    await pause(100);
    await cluster.database.db('users').where({ id: user.id }).update({ status: 'disabled' });
    await pause(50);
    for (const instance of [0, 1]) expect(await scan(instance, door.id, card.identifier)).toMatchObject({ result: 'deny', reason: 'user_disabled' });
  }, 30_000);

  test('card on one instance, code on the other: the waiting card is shared', async () => {
    const schedule = await access.createSchedule(site.id, { name: '2FA', windows: allDay('card_and_code') }, by);
    const door = await access.createDoor(site.id, { name: 'Lab', has_keypad: true, schedule_id: schedule.id }, by);
    const { card } = await cardholder(door.id, 'two-factor');
    expect((await scan(0, door.id, card.identifier)).result).toBe('code_required');
    expect(await ask(1, 'keypad', { door_id: door.id, code: '480317' })).toMatchObject({ result: 'grant', reason: 'card_and_code_accepted' });
    expect((await scan(1, door.id, card.identifier)).result).toBe('code_required');
    expect(await ask(0, 'keypad', { door_id: door.id, code: '111111' })).toMatchObject({ result: 'deny', reason: 'wrong_code' });
    expect(await ask(0, 'keypad', { door_id: door.id, code: '480317' })).toMatchObject({ result: 'grant' });
  }, 30_000);
});
