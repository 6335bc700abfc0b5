import { expect, test } from '@jest/globals';
import { aUser } from '../helpers/factories.js';
import { artifactPath } from '../helpers/chromium.js';
import { manualClock } from '../helpers/mfa.js';
import { browserTestbed } from '../helpers/browser-testbed.js';

// Tuesday 6 January 2026, 10:00 in Seoul.
const clock = manualClock(new Date('2026-01-06T01:00:00Z'));
const bed = browserTestbed({ clock });

test("seed 002 in the console: select a schedule, select a day, switch two-factor entry on, set its times, save; then off to troubleshoot", async () => {
  const admin = await aUser(bed.server.latchkey, { roles: ['super_admin'] });
  const context = await bed.browser.newContext({ locale: 'en-GB', timezoneId: 'Asia/Seoul' });
  const page = await context.newPage();
  await page.goto(`${bed.server.url}/admin/doors`);
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password').fill(admin.password);
  await page.getByRole('button', { name: 'Sign in' }).click();

  // Sites → doors → schedules, each step from the empty state's hint.
  await page.getByText('No sites yet: create the first one below.').waitFor();
  await page.getByLabel('Name').fill('Seoul office');
  await page.getByLabel('Time zone').fill('Asia/Seoul');
  await page.getByRole('button', { name: 'Create site' }).click();
  await page.getByText('Site created').waitFor();
  await page.getByLabel('New schedule name').fill('Office hours');
  await page.getByRole('button', { name: 'Add schedule' }).click();
  await page.getByText('every day is locked until you set its hours').waitFor();
  const scheduleUrl = page.url();
  await page.getByRole('link', { name: 'Seoul office' }).click();
  await page.getByText('Add a door').click();
  const doorForm = page.locator('form[action$="/doors"]');
  await doorForm.getByLabel('Name').fill('Lab');
  await doorForm.getByLabel('keypad').check();
  await doorForm.getByLabel('Schedule').selectOption({ label: 'Office hours' });
  await page.getByRole('button', { name: 'Add door' }).click();
  await page.getByText('Door added.').waitFor();

  // Select the schedule, select Tuesday.
  await page.goto(scheduleUrl.split('?')[0]!);
  await page.getByText('Legend: blank = locked.').waitFor();
  await page.getByRole('link', { name: 'Tue' }).click();
  await page.getByRole('heading', { name: 'Tue: hours and mode' }).waitFor();
  // Two-factor entry on, 09:00 to 18:30 (to the minute); the grid follows as it is typed.
  await page.getByLabel('Start 1', { exact: true }).fill('09:00');
  await page.getByLabel('End 1', { exact: true }).fill('18:30');
  await page.getByLabel('Mode 1', { exact: true }).selectOption({ label: 'Card + code' });
  await expect(page.locator('td[data-day="2"][data-hour="10"]').getAttribute('class')).resolves.toContain('mode-card_and_code');
  await expect(page.locator('td[data-day="2"][data-hour="20"]').getAttribute('class')).resolves.not.toContain('mode-');
  // Rows can be added by the script (the form has two blank ones without it).
  await page.getByRole('button', { name: 'Add a period' }).click();
  expect(await page.locator('[data-window-row]').count()).toBe(3);
  await page.screenshot({ path: artifactPath('admin-schedule-day-en.png'), fullPage: true });
  await page.getByRole('button', { name: 'Save', exact: true }).first().click();
  await page.getByText('Schedule saved.').waitFor();
  const scheduleId = /schedules\/([0-9a-f-]{36})/.exec(page.url())![1]!;
  expect((await bed.server.latchkey.access.getSchedule(scheduleId)).windows).toEqual([{ days: [2], start: 540, end: 1110, mode: 'card_and_code' }]);

  // A controller at the door asks: the card now needs its code.
  const [siteId] = [(await bed.server.latchkey.access.getSchedule(scheduleId)).site_id as string];
  const detail = await bed.server.latchkey.queries.access.siteDetail(siteId);
  const person = await aUser(bed.server.latchkey);
  await bed.server.latchkey.access.addCredential(person.id, { kind: 'card', identifier: 'CARD-SEED-002' }, { actorId: null });
  await bed.server.latchkey.access.createLevel(siteId, { name: 'Staff', door_ids: [detail.doors[0]!.id], user_ids: [person.id] }, { actorId: null });
  await page.goto(`${bed.server.url}/admin/doors/sites/${siteId}`);
  await page.getByLabel('New controller name').fill('Lab controller');
  await page.getByRole('button', { name: 'Add controller' }).click();
  const token = await page.locator('[data-controller-token]').inputValue();
  expect(page.url()).not.toContain(token);
  const scan = async () =>
    (await (await fetch(`${bed.server.url}/api/access/v1/credential`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ door_id: detail.doors[0]!.id, credential: 'CARD-SEED-002' }) })).json()) as { result: string };
  expect(await scan()).toMatchObject({ result: 'code_required' });

  // Troubleshooting: switch two-factor entry off for Tuesday; the card alone opens the door.
  await page.goto(`${bed.server.url}/admin/doors/schedules/${scheduleId}?day=2`);
  await expect(page.getByLabel('Start 1', { exact: true }).inputValue()).resolves.toBe('09:00');
  await page.getByLabel('Mode 1', { exact: true }).selectOption({ label: 'Card or code' });
  await page.getByRole('button', { name: 'Save', exact: true }).first().click();
  await page.getByText('Schedule saved.').waitFor();
  expect((await bed.server.latchkey.access.getSchedule(scheduleId)).windows).toEqual([{ days: [2], start: 540, end: 1110, mode: 'access' }]);
  expect(await scan()).toMatchObject({ result: 'grant' });

  // A mistyped window comes back on the same form, the field marked for assistive technology.
  await page.getByLabel('End 1', { exact: true }).fill('08:00');
  await page.getByRole('button', { name: 'Save', exact: true }).first().click();
  const end = page.getByLabel('End 1', { exact: true });
  await expect(end.getAttribute('aria-invalid')).resolves.toBe('true');
  await expect(end.inputValue()).resolves.toBe('08:00');
  await page.getByText('a window ends after it starts').waitFor();
  await context.close();
});
