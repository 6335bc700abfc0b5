import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createAccessService } from '../../src/access/service.js';
import { createChangeFeed } from '../../src/db/change-feed.js';
import { createQueries } from '../../src/db/index.js';
import { systemClock } from '../../src/security/clock.js';
import { accessCodeLookupKey, createSecretBox } from '../../src/security/secret-box.js';
import { createThrottle } from '../../src/security/throttle.js';
import { createPasswordHasher } from '../../src/security/passwords.js';
import { onRealPostgres, openTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startServerProcess, type ServerProcess } from '../helpers/process.js';

// Instances share state only through PostgreSQL; PGlite lives inside one process, so this needs the server.
const describeOnPostgres = onRealPostgres ? describe : describe.skip;
const allDay = [{ days: [0, 1, 2, 3, 4, 5, 6], start: 0, end: 1440, mode: 'access' as const }];
// NOTIFY is delivered after the commit, asynchronously: a moment, far less than any cache lifetime.
const settle = () => new Promise((resolve) => setTimeout(resolve, 200));

describeOnPostgres('door administration takes effect at once on every instance', () => {
  let database: TestDatabase;
  let instances: ServerProcess[];
  const masterKey = crypto.randomBytes(32);

  beforeAll(async () => {
    database = await openTestDatabase();
    const env = { DATABASE_URL: database.url!, LATCHKEY_MASTER_KEY: masterKey.toString('hex'), LATCHKEY_ISSUER: 'http://127.0.0.1:1' };
    instances = [await startServerProcess(env), await startServerProcess(env)];
  }, 60_000);
  afterAll(async () => {
    await Promise.all((instances ?? []).map((i) => i.stop()));
    await database?.close();
  });

  test('a suspended or removed card, and a revoked controller, are refused by both instances at once', async () => {
    // A third instance of the service, in this process, makes the changes: as an admin's request to any one would.
    const feed = createChangeFeed(database.db);
    try {
      const queries = createQueries(database.db);
      const access = createAccessService({ queries, box: createSecretBox(masterKey), clock: systemClock, lookupKey: accessCodeLookupKey(masterKey), throttle: createThrottle(queries, systemClock), notifier: { notify: async () => undefined }, webPinMinLength: 6, feed });
      const by = { actorId: null };
      const user = await queries.users.insert({ email: 'door@example.test', name: '', passwordHash: await createPasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }).hash('two instances, one door') });
      const site = await access.createSite({ name: 'HQ', time_zone: 'Asia/Seoul' }, by);
      const schedule = await access.createSchedule(site.id, { name: 'Always', windows: allDay }, by);
      const door = await access.createDoor(site.id, { name: 'Front', schedule_id: schedule.id }, by);
      await access.createLevel(site.id, { name: 'All', door_ids: [door.id], user_ids: [user.id] }, by);
      const card = await access.addCredential(user.id, { kind: 'card', identifier: 'CARD-2X' }, by);
      const controller = await access.createController(site.id, 'Front controller', by);
      const scan = (instance: ServerProcess) =>
        fetch(`${instance.url}/api/access/v1/credential`, {
          method: 'POST',
          headers: { authorization: `Bearer ${controller.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ door_id: door.id, credential: 'CARD-2X' }),
        }).then(async (r) => (r.status === 200 ? ((await r.json()) as { reason: string }).reason : r.status));
      // Both instances now hold the controller (and the door) in their caches.
      expect(await Promise.all(instances.map(scan))).toEqual(['access_granted', 'access_granted']);

      await access.suspendCredential(user.id, card.id, true, by);
      await settle();
      expect(await Promise.all(instances.map(scan))).toEqual(['credential_suspended', 'credential_suspended']);
      await access.suspendCredential(user.id, card.id, false, by);
      await settle();
      expect(await Promise.all(instances.map(scan))).toEqual(['access_granted', 'access_granted']);
      await access.removeCredential(user.id, card.id, by);
      await settle();
      expect(await Promise.all(instances.map(scan))).toEqual(['unknown_credential', 'unknown_credential']);

      // A lost controller: revoked once, refused by every instance though each had it cached for 30 s.
      await access.deleteController(controller.id, undefined, by);
      await settle();
      expect(await Promise.all(instances.map(scan))).toEqual([401, 401]);
    } finally {
      await feed.close();
    }
  }, 60_000);
});

describe('an instance that cannot hear the change feed', () => {
  test('refuses a rotated or revoked controller token at once all the same: it reads the controller, not its cache', async () => {
    const database = await openTestDatabase();
    const feed = createChangeFeed(database.db);
    try {
      const masterKey = crypto.randomBytes(32);
      const queries = createQueries(database.db);
      const service = (feed: Parameters<typeof createAccessService>[0]['feed']) =>
        createAccessService({ queries, box: createSecretBox(masterKey), clock: systemClock, lookupKey: accessCodeLookupKey(masterKey), throttle: createThrottle(queries, systemClock), notifier: { notify: async () => undefined }, webPinMinLength: 6, feed });
      // Its LISTEN connection is down: notices from other instances do not arrive, and it knows it.
      const deaf = { publish: async () => undefined, subscribe: () => undefined, live: () => false, close: async () => undefined };
      const [here, elsewhere] = [service(deaf), service(feed)];
      const by = { actorId: null };
      const site = await elsewhere.createSite({ name: 'HQ', time_zone: 'Asia/Seoul' }, by);
      const controller = await elsewhere.createController(site.id, 'Front controller', by);
      expect(await here.authenticateController(controller.token)).toMatchObject({ id: controller.id });
      const rotated = await elsewhere.rotateControllerToken(controller.id, by);
      expect(await here.authenticateController(controller.token)).toBeUndefined();
      expect(await here.authenticateController(rotated.token)).toMatchObject({ id: controller.id });
      await elsewhere.deleteController(controller.id, undefined, by);
      expect(await here.authenticateController(rotated.token)).toBeUndefined();
    } finally {
      await feed.close();
      await database.close();
    }
  });
});
