import { afterAll, beforeAll, expect, test } from '@jest/globals';
import http from 'node:http';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The door pages of the admin console, over HTTP without a script: every form works as plain HTML. */
let server: TestServer;
let boss: Awaited<ReturnType<typeof aUser>>;
beforeAll(async () => {
  server = await startTestServer();
  boss = await aUser(server.latchkey, { roles: ['super_admin'] });
});
afterAll(() => server.close());

const idIn = (url: string, kind: string) => new RegExp(`/admin/doors/${kind}/([0-9a-f-]{36})`).exec(url)![1]!;

test('sites → doors → schedules → levels → controllers, each empty state saying what to do next', async () => {
  const { agent, page: home } = await consoleSignIn(server.url, boss.email, boss.password, '/admin/doors');
  expect(home.html).toContain('create the first one below');
  const site = await agent.submit(home, '/admin/doors/sites', { name: 'Seoul office', time_zone: 'Asia/Seoul' });
  expect(site.html).toContain('Site created');
  for (const empty of ['No doors yet: add', 'No schedules yet: add', 'No access levels yet: add', 'No controllers yet: add']) expect(site.html).toContain(empty);
  const siteId = idIn(site.url, 'sites');

  const schedule = await agent.submit(site, `/sites/${siteId}/schedules`, { name: 'Office hours' });
  const scheduleId = idIn(schedule.url, 'schedules');
  expect(schedule.html).toContain('blank = locked');
  const door = await agent.submit(await agent.visit(`${server.url}/admin/doors/sites/${siteId}`), `/sites/${siteId}/doors`, { name: 'Lab', has_badge_reader: 'on', has_keypad: 'on', schedule_id: scheduleId });
  expect(door.html).toContain('Door added');
  const doorId = idIn(door.url, 'doors');
  expect((await server.latchkey.queries.access.findDoor(doorId))).toMatchObject({ has_keypad: true, schedule_id: scheduleId });

  // Seed 002: select the schedule, select Monday, switch two-factor entry on from 09:00 to 18:00, save.
  const monday = await agent.visit(`${server.url}/admin/doors/schedules/${scheduleId}?day=1`);
  const saved = await agent.submit(monday, `/schedules/${scheduleId}/days/1`, { start: '09:00', end: '18:00', mode: 'card_and_code' });
  expect(saved.html).toContain('Schedule saved');
  expect((await server.latchkey.access.getSchedule(scheduleId)).windows).toEqual([{ days: [1], start: 540, end: 1080, mode: 'card_and_code' }]);
  // …and off again to troubleshoot, through the same form.
  const off = await agent.submit(saved, `/schedules/${scheduleId}/days/1`, { start: '09:00', end: '18:00', mode: 'access' });
  expect(off.status).toBe(200);
  expect((await server.latchkey.access.getSchedule(scheduleId)).windows).toEqual([{ days: [1], start: 540, end: 1080, mode: 'access' }]);
  // The page read before the last save is stale: its version is refused, and the form says why.
  const stale = await agent.submit(saved, `/schedules/${scheduleId}/days/1`, { start: '10:00', end: '11:00', mode: 'locked' });
  expect(stale.status).toBe(412);
  expect(stale.html).toContain('changed since it was read');

  // A schedule in use cannot be deleted: the page names the door.
  const refused = await agent.submit(off, `/schedules/${scheduleId}/delete`);
  expect(refused.status).toBe(409);
  expect(refused.html).toMatch(/still used by doors: Lab/);

  // A controller's token is on the POST's answer only.
  const controllerAnswer = await agent.request(`${server.url}/admin/doors/sites/${siteId}/controllers`, { form: { _csrf: csrfOf(site), name: 'Lab controller' } });
  expect(controllerAnswer.status).toBe(201);
  expect(controllerAnswer.headers.get('location')).toBeNull();
  expect(await controllerAnswer.text()).toMatch(/data-controller-token/);
});

test('a failed form comes back with what was typed and the error on its field, not the error page', async () => {
  const { agent, page: home } = await consoleSignIn(server.url, boss.email, boss.password, '/admin/doors');
  const bad = await agent.submit(home, '/admin/doors/sites', { name: 'Busan', time_zone: 'Busan/Haeundae' });
  expect(bad.status).toBe(400);
  expect(bad.html).toContain('value="Busan"');
  expect(bad.html).toContain('value="Busan/Haeundae"');
  expect(bad.html).toMatch(/id="site-new-time_zone"[^>]*aria-invalid="true" aria-describedby="site-new-time_zone-help site-new-time_zone-error"/);
  expect(bad.html).toContain('id="site-new-time_zone-error"');

  const site = await agent.submit(bad, '/admin/doors/sites', { name: 'Busan', time_zone: 'Asia/Seoul' });
  const siteId = idIn(site.url, 'sites');
  const schedule = await agent.submit(site, `/sites/${siteId}/schedules`, { name: 'Hours' });
  const scheduleId = idIn(schedule.url, 'schedules');
  const wednesday = await agent.visit(`${server.url}/admin/doors/schedules/${scheduleId}?day=3`);
  const backwards = await agent.submit(wednesday, `/schedules/${scheduleId}/days/3`, { start: '18:00', end: '09:00', mode: 'access' });
  expect(backwards.status).toBe(400);
  expect(backwards.html).toMatch(/id="schedule-day-w0-end"[^>]*value="09:00"[^>]*aria-invalid="true"/);
  expect(backwards.html).toContain('a window ends after it starts');

  // A reader-only door cannot be given a two-factor schedule: the schedule field says so.
  await agent.submit(backwards, `/schedules/${scheduleId}/days/3`, { start: '09:00', end: '18:00', mode: 'card_and_code' });
  const doors = await agent.visit(`${server.url}/admin/doors/sites/${siteId}`);
  const door = await agent.submit(doors, `/sites/${siteId}/doors`, { name: 'Gate', has_badge_reader: 'on', schedule_id: scheduleId });
  expect(door.status).toBe(400);
  expect(door.html).toMatch(/id="door-new-schedule_id"[^>]*aria-invalid="true"/);
  expect(door.html).toContain('value="Gate"');
});

test("people's cards and codes: suspend, remove, change, Generate for entry codes as well as MFA codes", async () => {
  const person = await aUser(server.latchkey);
  const { agent, page } = await consoleSignIn(server.url, boss.email, boss.password, `/admin/users/${person.id}`);
  const added = await agent.submit(page, `/users/${person.id}/credentials`, { kind: 'card', identifier: 'CARD-77' });
  expect(added.html).toContain('Credential added');
  const credential = (await server.latchkey.access.listCredentials(person.id))[0]!;
  const suspended = await agent.submit(added, `/credentials/${credential.id}/suspend`);
  expect(suspended.html).toContain('Credential suspended');
  expect((await server.latchkey.access.listCredentials(person.id))[0]!.suspended_at).not.toBeNull();
  const taken = await agent.submit(suspended, `/users/${person.id}/credentials`, { kind: 'card', identifier: 'CARD-77' });
  expect(taken.status).toBe(409);
  expect(taken.html).toMatch(/id="credential-identifier"[^>]*value="CARD-77"[^>]*aria-invalid="true"/);
  await agent.submit(taken, `/credentials/${credential.id}/delete`);
  expect(await server.latchkey.access.listCredentials(person.id)).toEqual([]);

  const entryAnswer = await agent.request(`${server.url}/admin/users/${person.id}/entry-code`, { form: { _csrf: csrfOf(page), code: '', length: '7' } });
  expect(entryAnswer.status).toBe(201);
  const entry = /data-generated-code>(\d{7})</.exec(await entryAnswer.text())![1]!;
  expect((await server.latchkey.access.listCodes(person.id)).map((c) => [c.kind, c.code])).toEqual([['entry', entry]]);
  const trivial = await agent.submit(page, `/users/${person.id}/entry-code`, { code: '1234' });
  expect(trivial.status).toBe(400);
  expect(trivial.html).toMatch(/id="entry-set-code"[^>]*value="1234"[^>]*aria-invalid="true"/);

  const mfa = await agent.submit(page, `/users/${person.id}/mfa-codes`, { code: '480213' });
  expect(mfa.html).toContain('MFA code added');
  const mfaId = (await server.latchkey.access.listCodes(person.id)).find((c) => c.kind === 'mfa')!.id;
  await agent.submit(mfa, `/mfa-codes/${mfaId}`, { code: '480214' });
  expect((await server.latchkey.access.listCodes(person.id)).find((c) => c.kind === 'mfa')!.code).toBe('480214');
  const removed = await agent.submit(mfa, `/mfa-codes/${mfaId}/delete`);
  await agent.submit(removed, `/users/${person.id}/entry-code/delete`);
  expect(await server.latchkey.access.listCodes(person.id)).toEqual([]);
});

test('the CSV import offers a template whose rows it accepts', async () => {
  const { agent } = await consoleSignIn(server.url, boss.email, boss.password, '/admin/doors/import');
  const template = await agent.request(`${server.url}/admin/doors/import/template.csv`);
  expect(template.headers.get('content-type')).toContain('text/csv');
  const csv = await template.text();
  expect(csv.split(/\r?\n/)[0]).toBe('email,name,kind,value,action');
  const page = await agent.visit(`${server.url}/admin/doors/import`);
  // Its delete row names a card nobody holds: the dry run names that line, and only that one.
  const report = await agent.submit(page, '/admin/doors/import', { csv, dry_run: 'on' });
  expect(report.status).toBe(422);
  expect(report.html).toMatch(/Line 6: no user with this email/);
  expect(report.html.match(/Line \d+/g)).toEqual(['Line 6']);
});

test("a day's form posted for a day that is not one (0–6) is refused, and no day is changed", async () => {
  const { agent, page: home } = await consoleSignIn(server.url, boss.email, boss.password, '/admin/doors');
  const site = await agent.submit(home, '/admin/doors/sites', { name: 'Weekdays', time_zone: 'Asia/Seoul' });
  const schedule = await agent.submit(site, `/sites/${idIn(site.url, 'sites')}/schedules`, { name: 'Week' });
  const scheduleId = idIn(schedule.url, 'schedules');
  for (const day of ['9', '-1', 'monday', '1.5']) {
    const answer = await agent.request(`${server.url}/admin/doors/schedules/${scheduleId}/days/${day}`, { form: { _csrf: csrfOf(schedule), start: '09:00', end: '10:00', mode: 'locked' } });
    expect({ day, status: answer.status }).toEqual({ day, status: 404 });
  }
  expect((await server.latchkey.access.getSchedule(scheduleId)).windows).toEqual([]);
});

test('the import form, the one page taking 10 MB, is not read for someone who may not import: they are answered before the body arrives', async () => {
  const announced = (cookie?: string) =>
    new Promise<number>((resolve, reject) => {
      const url = new URL(`${server.url}/admin/doors/import`);
      const request = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': 10_000_000, ...(cookie ? { cookie } : {}) } });
      const timer = setTimeout(() => reject(new Error('the server waited for the body')), 3000);
      request.on('response', (response) => {
        clearTimeout(timer);
        resolve(response.statusCode!);
        request.destroy();
      });
      request.on('error', () => undefined);
      // Only the start of the promised 10 MB: an answer can only come from a server that did not wait for the rest.
      request.write('csv=');
    });
  expect(await announced()).toBe(302);
  const auditor = await aUser(server.latchkey, { roles: ['auditor'] });
  const { agent } = await consoleSignIn(server.url, auditor.email, auditor.password, '/admin/audit');
  expect(await announced(agent.cookieHeader(new URL(`${server.url}/admin/doors/import`)))).toBe(403);
});
