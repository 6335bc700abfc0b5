import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aUser } from '../helpers/factories.js';
import { manualClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** A controller that lost its link decided on its own; back online, it sends those decisions, maybe more than once. */
const clock = manualClock(new Date());
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let admin: string;
let door: { id: string };
let otherSiteDoor: { id: string };
let controller: { id: string; token: string };
let person: { id: string };

beforeAll(async () => {
  server = await startTestServer({ clock });
  api = apiClient(server.url);
  admin = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
  const site = (await api('POST', '/api/admin/access/sites', admin, { name: 'Offline', time_zone: 'Asia/Seoul' })).json as unknown as { id: string };
  const elsewhere = (await api('POST', '/api/admin/access/sites', admin, { name: 'Elsewhere', time_zone: 'Europe/Paris' })).json as unknown as { id: string };
  door = (await api('POST', `/api/admin/access/sites/${site.id}/doors`, admin, { name: 'Back door' })).json as never;
  otherSiteDoor = (await api('POST', `/api/admin/access/sites/${elsewhere.id}/doors`, admin, { name: 'Paris door' })).json as never;
  controller = (await api('POST', `/api/admin/access/sites/${site.id}/controllers`, admin, { name: 'Sometimes offline' })).json as never;
  person = await aUser(server.latchkey);
  expect((await api('POST', `/api/admin/access/users/${person.id}/credentials`, admin, { kind: 'card', identifier: 'offline-card' })).status).toBe(201);
});
afterAll(() => server.close());

const send = (events: unknown[], token = controller.token) => api('POST', '/api/access/v1/events', token, { events });
const ago = (seconds: number) => new Date(clock.now().getTime() - seconds * 1000).toISOString();
const event = (id: string, overrides: Record<string, unknown> = {}) => ({ id, door_id: door.id, occurred_at: ago(3600), result: 'grant', reason: 'access_granted', mode: 'access', credential: 'offline-card', ...overrides });
const stored = async () =>
  (await server.database.db('audit_events').where({ action: 'door.decision' }).whereRaw("details->>'offline' = 'true'").orderBy('id')) as Array<{ occurred_at: Date; subject_id: string | null; details: Record<string, unknown> }>;

describe('decisions taken offline', () => {
  test('are stored once in the decision log, at their own time and naming the card\'s holder, however often the batch is replayed', async () => {
    const batch = [event('e-1'), event('e-2', { occurred_at: ago(1800), result: 'deny', reason: 'door_locked', mode: 'locked' }), event('e-3', { credential: 'a-card-we-do-not-know' })];
    expect((await send(batch)).json).toEqual({ stored: ['e-1', 'e-2', 'e-3'], already_stored: [] });
    // The controller did not hear the answer and sends it all again, twice at once, with one new event.
    const replays = await Promise.all([send([...batch, event('e-4')]), send([...batch, event('e-4')])]);
    expect(replays.map((r) => r.status)).toEqual([200, 200]);
    expect(replays.flatMap((r) => r.json.stored as string[])).toEqual(['e-4']);
    const rows = await stored();
    expect(rows.map((r) => r.details.event_id)).toEqual(['e-1', 'e-2', 'e-3', 'e-4']);
    expect(rows[0]!.occurred_at.toISOString()).toBe(batch[0]!.occurred_at);
    expect(rows[0]).toMatchObject({ subject_id: person.id, details: { door_id: door.id, result: 'grant', controller_id: controller.id, credential_kind: 'card' } });
    expect(rows[2]).toMatchObject({ subject_id: null, details: { credential: 'a-card-we-do-not-know' } });
    // They are door decisions like the others: the door's log shows them.
    const log = (await api('GET', `/api/admin/access/doors/${door.id}/decisions?user_id=${person.id}`, admin)).json.decisions as unknown as Array<{ details: Record<string, unknown> }>;
    expect(log.map((d) => d.details.event_id).sort()).toEqual(['e-1', 'e-2', 'e-4']);
  });

  test('another controller may use the same event ids: they name its own events', async () => {
    const site = (await api('GET', `/api/admin/access/sites`, admin)).json as unknown as { sites?: Array<{ id: string; name: string }> } | Array<{ id: string; name: string }>;
    const list = Array.isArray(site) ? site : site.sites ?? [];
    const own = (await api('POST', `/api/admin/access/sites/${list.find((s) => s.name === 'Offline')!.id}/controllers`, admin, { name: 'Second' })).json as unknown as { token: string };
    expect((await send([event('e-1')], own.token)).json).toEqual({ stored: ['e-1'], already_stored: [] });
  });

  test('an event id sent again with another time is the same event: stored once, in a later batch or in the same one', async () => {
    expect((await send([event('moved-1', { occurred_at: ago(600) })])).json).toEqual({ stored: ['moved-1'], already_stored: [] });
    // The controller's clock was set meanwhile: the same event, resent with a corrected time.
    expect((await send([event('moved-1', { occurred_at: ago(300) })])).json).toEqual({ stored: [], already_stored: ['moved-1'] });
    const twice = await send([event('moved-2', { occurred_at: ago(600) }), event('moved-2', { occurred_at: ago(300) })]);
    expect(twice.status).toBe(400);
    expect(twice.json.field).toBe('events.1.occurred_at');
    expect((await stored()).filter((r) => String(r.details.event_id).startsWith('moved-')).map((r) => r.details.event_id)).toEqual(['moved-1']);
  });

  test('an event id sent by 40 batches at once, each at another time, is stored once', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, (_v, i) => send([event('raced-1', { occurred_at: ago(600 + i) })])));
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 40 }, () => 200));
    expect(answers.flatMap((a) => a.json.stored as string[])).toEqual(['raced-1']);
    expect((await stored()).filter((r) => r.details.event_id === 'raced-1')).toHaveLength(1);
  });

  test.each([
    ['older than 7 days', () => ({ occurred_at: ago(7 * 86_400 + 60) }), 'events.1.occurred_at'],
    ['more than 5 minutes ahead', () => ({ occurred_at: ago(-360) }), 'events.1.occurred_at'],
    ['not a time', () => ({ occurred_at: 'yesterday' }), 'events.1.occurred_at'],
    ['a door of another site', () => ({ door_id: otherSiteDoor.id }), 'events.1.door_id'],
    ['an unknown result', () => ({ result: 'maybe' }), 'events.1.result'],
    ['an id with spaces', () => ({ id: 'e 5' }), 'events.1.id'],
    ['an unknown field', () => ({ pin: '1234' }), 'events.1'],
  ])('a batch with an event %s is refused whole, naming the field', async (_what, overrides, field) => {
    const before = (await stored()).length;
    const answer = await send([event('fine-1'), event('bad-1', overrides())]);
    expect(answer.status).toBe(400);
    expect(answer.json.field).toBe(field);
    expect((await stored()).length).toBe(before);
  });

  test('the edges of the bounds are accepted: 7 days back, 5 minutes ahead', async () => {
    const edges = [event('edge-past', { occurred_at: ago(7 * 86_400 - 1) }), event('edge-future', { occurred_at: ago(-300) })];
    expect((await send(edges)).json).toEqual({ stored: ['edge-past', 'edge-future'], already_stored: [] });
  });

  test('an empty or oversized batch, and a request without a controller token, are refused', async () => {
    expect((await send([])).status).toBe(400);
    expect((await send(Array.from({ length: 501 }, (_v, i) => event(`many-${i}`)))).json).toMatchObject({ field: 'events' });
    expect((await send([event('x')], 'not-a-controller-token')).status).toBe(401);
  });
});
