import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import type { BrowserContext, Page } from 'playwright-core';
import type { OutgoingEmail } from '../../src/notify/email.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { artifactPath, virtualAuthenticator } from '../helpers/chromium.js';
import { aClient, APP_ORIGIN, aUser, CALLBACK } from '../helpers/factories.js';
import { enrolTotp, recordingNotifier, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { relyingParty } from '../helpers/relying-party.js';
import { browserTestbed } from '../helpers/browser-testbed.js';
import { enrolSoftPasskey } from '../helpers/soft-authenticator.js';

/**
 * Every page a person can reach (sign-in, account, admin console), in English and Korean, at a phone's width and a
 * laptop's: axe-core finds no serious or critical WCAG problem, nothing makes the page scroll sideways, and nothing
 * Latchkey wrote itself is left in English on a Korean page. A screenshot of each lands in test-artifacts/.
 */
const AXE = fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');
const WIDTHS = [375, 1280];
// Each test visits some twenty pages four times over: generous, for a CI machine shared by parallel suites.
const PAGES_TIMEOUT = 240_000;
const LANGUAGES = [
  { lang: 'en', browser: 'en-GB', accept: 'en-GB,en;q=0.9' },
  { lang: 'ko', browser: 'ko-KR', accept: 'ko-KR,ko;q=0.9' },
] as const;
type Language = (typeof LANGUAGES)[number];

const clock = steppingClock();
const notices = recordingNotifier();
const mails: OutgoingEmail[] = [];
// WebAuthn needs a host name (localhost), and mail makes the inbox-confirmation step and the email factor reachable.
const bed = browserTestbed({ clock, hostname: 'localhost', notifier: notices.notifier, emailSender: { send: async (mail) => void mails.push(mail) } });

// The checks run inside the page (the test's TypeScript has no DOM types): plain scripts, each returning JSON.
const RUN_AXE = `window.axe.run(document, { resultTypes: ['violations'], preload: false }).then((result) => result.passes.length === 0 ? ['axe checked nothing'] : result.violations
  .filter((v) => v.impact === 'serious' || v.impact === 'critical')
  .map((v) => v.impact + ' ' + v.id + ': ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ') + ' [' + (n.failureSummary || '').replace(/\\s+/g, ' ').slice(0, 160) + ']').join('; ')))`;
const OVERFLOW = `(() => {
  const inner = window.innerWidth;
  if (document.documentElement.scrollWidth <= inner) return null;
  const wide = [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > inner + 1)
    .filter((e) => { for (let up = e.parentElement; up; up = up.parentElement) if (getComputedStyle(up).overflowX !== 'visible') return false; return true; })
    .slice(0, 4)
    .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (typeof e.className === 'string' && e.className ? '.' + e.className.trim().replace(/\\s+/g, '.') : ''));
  return document.documentElement.scrollWidth + ' > ' + inner + ' (' + wide.join(', ') + ')';
})()`;
// Two English words in a row, one of them lower-case ("Authenticator app", not "Google Authenticator"), outside code,
// addresses, what the user typed and text marked as another language: a string we forgot to translate.
const ENGLISH_TEXT = `(() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const leaks = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest('code, script, style, textarea, .secret, .brand, [translate="no"], [lang]:not([lang="ko"]), [hidden]')) continue;
    const text = node.textContent.replace(/\\S+@\\S+|https?:\\/\\/\\S+/g, '');
    const pairs = [...text.matchAll(/([A-Za-z]{3,})\\s+(?=([A-Za-z]{3,}))/g)];
    if (pairs.some((m) => /^[a-z]+$/.test(m[1]) || /^[a-z]+$/.test(m[2]))) leaks.push(text.trim().slice(0, 80));
  }
  return leaks;
})()`;

/** What is wrong with the page as it is now, at each width; and a screenshot of each. */
async function check(page: Page, name: string, language: Language, found: string[]) {
  await page.waitForLoadState('load');
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    const where = `${name} (${language.lang}, ${width}px)`;
    const lang = await page.locator('html').getAttribute('lang');
    if (lang !== language.lang) found.push(`${where}: <html lang="${lang}">`);
    if (!(await page.evaluate<boolean>('window.axe !== undefined'))) await page.addScriptTag({ content: AXE });
    found.push(...(await page.evaluate<string[]>(RUN_AXE)).map((v) => `${where}: ${v}`));
    const overflow = await page.evaluate<string | null>(OVERFLOW);
    if (overflow) found.push(`${where}: scrolls sideways, ${overflow}`);
    if (language.lang === 'ko') found.push(...(await page.evaluate<string[]>(ENGLISH_TEXT)).map((text) => `${where}: English on a Korean page: "${text}"`));
    await page.screenshot({ path: artifactPath(`a11y-${name}-${language.lang}-${width}.png`), fullPage: true });
  }
}

const FOCUSED = `(() => {
  const e = document.activeElement;
  const style = getComputedStyle(e);
  const box = e.getBoundingClientRect();
  return { id: e.id, name: (e.textContent || e.getAttribute('aria-label') || '').trim(), outline: style.outlineStyle, width: parseFloat(style.outlineWidth), color: style.outlineColor, top: box.top };
})()`;
const luminance = (rgb: string) => {
  const [r, g, b] = (rgb.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((c) => Number(c) / 255).map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
};
const contrast = (a: string, b: string) => {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light! + 0.05) / (dark! + 0.05);
};
// The backgrounds a focused control can sit on: the card (white) and the page around it.
const BACKGROUNDS = ['rgb(255, 255, 255)', 'rgb(243, 245, 248)'];

/** The keyboard's view: the first Tab shows the skip link, which jumps to the content; every focus ring is 3:1 or more. */
async function checkKeyboard(page: Page, name: string, language: Language, found: string[]) {
  const where = `${name} (${language.lang})`;
  await page.keyboard.press('Tab');
  const skip = await page.evaluate<{ id: string; name: string; outline: string; width: number; color: string; top: number }>(FOCUSED);
  if (skip.top < 0) found.push(`${where}: the skip link stays off screen when focused`);
  await page.keyboard.press('Enter');
  if ((await page.evaluate<{ id: string }>(FOCUSED)).id !== 'content') found.push(`${where}: the skip link does not reach the content`);
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Tab');
    const ring = await page.evaluate<{ id: string; name: string; outline: string; width: number; color: string; top: number }>(FOCUSED);
    const worst = Math.min(...BACKGROUNDS.map((bg) => contrast(ring.color, bg)));
    if (ring.outline === 'none' || ring.width < 2 || worst < 3) found.push(`${where}: focus ring on "${ring.name}" is ${ring.outline} ${ring.width}px ${ring.color} (${worst.toFixed(1)}:1)`);
  }
}

/** Submits the form whose action ends with `action`, with `fields` filled in by name, and waits for the next page. */
async function submit(page: Page, action: string, fields: Record<string, string> = {}) {
  const form = page.locator(`form[action$="${action}"]`).first();
  for (const [name, value] of Object.entries(fields)) await form.locator(`[name="${name}"]`).fill(value);
  await Promise.all([page.waitForNavigation(), form.locator('button[type=submit], button:not([type])').first().click()]);
}

async function newContext(language: Language): Promise<BrowserContext> {
  const context = await bed.browser.newContext({ locale: language.browser, timezoneId: 'Asia/Seoul', bypassCSP: true, extraHTTPHeaders: { 'accept-language': language.accept } });
  // The app's own callback is not served: the browser stops there.
  await context.route(`${APP_ORIGIN}**`, (route) => route.fulfill({ body: 'back at the app', contentType: 'text/plain' }));
  return context;
}

async function authorizationUrl(client: { clientId: string; clientSecret?: string }) {
  const config = await relyingParty(bed.server.url, client.clientId, client.clientSecret);
  const verifier = oidc.randomPKCECodeVerifier();
  return oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid email profile', prompt: 'consent', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'a11y' }).toString();
}

/** Signs a user into the console (password, then a code when they have an authenticator) and lands on `target`. */
async function consoleSignIn(page: Page, target: string, user: { email: string; password: string }, secret?: string) {
  await page.goto(`${bed.server.url}${target}`);
  await submit(page, '/login', { email: user.email, password: user.password });
  if (secret) {
    clock.nextStep();
    await submit(page, '/mfa', { code: referenceTotp(secret, clock.now()) });
  }
  await page.waitForURL(`${bed.server.url}${target}**`);
}

const codeMailedTo = (email: string) => /\b(\d{6})\b/.exec(mails.filter((m) => m.to === email).at(-1)!.subject)![1]!;
const names = (language: Language) => (language.lang === 'ko' ? { person: '김철수', admin: '이관리', app: '사내포털', site: '서울본사', door: '정문', schedule: '평일', level: '직원', controller: '정문제어기', api: '주문' } : { person: 'Grace', admin: 'Ada', app: 'Intranet', site: 'Seoul', door: 'Lobby', schedule: 'Weekdays', level: 'Staff', controller: 'Gate', api: 'Orders' });

/** Visits the pages in both languages at once (one browser, a context each), then reports every problem found. */
async function inBothLanguages(visit: (language: Language, found: string[]) => Promise<void>) {
  const found: string[] = [];
  await Promise.all(LANGUAGES.map((language) => visit(language, found)));
  expect(found).toEqual([]);
}

describe('every page, in English and Korean, at 375 and 1280 px', () => {
  test('sign-in pages: login, second factor (code, recovery, passkey), inbox confirmation, enrolment, recovery codes, continue, consent, sign-out, error', () => inBothLanguages(async (language, found) => {
    const n = names(language);
    const plain = await aClient(bed.server.latchkey, { client_name: n.app });
    const strict = await aClient(bed.server.latchkey, { client_name: n.app, require_mfa: true });
    const user = await aUser(bed.server.latchkey, { name: n.person });
    const { secret } = await enrolTotp(bed.server.latchkey, user, clock);
    const { methodId: passkeyId } = await enrolSoftPasskey(bed.server.latchkey, user, bed.server.url);
    const context = await newContext(language);
    const page = await context.newPage();

    await page.goto(`${bed.server.url}/interaction/no-such-sign-in`);
    await check(page, 'error', language, found);

    await page.goto(await authorizationUrl(plain));
    await check(page, 'login', language, found);
    const icon = await page.request.get(`${bed.server.url}/static/favicon.svg`);
    if (icon.headers()['content-type'] !== 'image/svg+xml') found.push(`favicon: ${icon.status()} ${icon.headers()['content-type']}`);
    const signInUrl = page.url().split('?')[0]!;
    await page.goto(`${signInUrl}/forgot`);
    await check(page, 'forgot-password', language, found);
    await page.goto(`${bed.server.url}/password-reset`);
    await check(page, 'password-reset', language, found);
    await page.goto(signInUrl);
    await submit(page, '/login', { email: user.email, password: 'not the password' });
    await check(page, 'login-failed', language, found);
    await submit(page, '/login', { email: user.email, password: user.password });
    await check(page, 'mfa-code', language, found);
    const interaction = page.url().split('?')[0]!;
    await page.goto(`${interaction}?method=recovery`);
    await check(page, 'mfa-recovery', language, found);
    await page.goto(`${interaction}?method=${passkeyId}`);
    await check(page, 'mfa-passkey', language, found);
    await page.goto(interaction);
    await submit(page, '/mfa', { code: '000000' });
    await check(page, 'mfa-wrong-code', language, found);
    clock.nextStep();
    await submit(page, '/mfa', { code: referenceTotp(secret, clock.now()) });
    await check(page, 'consent', language, found);
    // Back to the app, which nothing serves: the browser stops there.
    await page.locator('form[action$="/confirm"] button').click();
    await page.waitForURL(`${CALLBACK}**`);

    await page.goto(`${bed.server.url}/session/end`);
    await check(page, 'logout', language, found);
    await Promise.all([page.waitForNavigation(), page.locator('button[name=logout][value=yes]').click()]);
    await check(page, 'logged-out', language, found);

    // A user without a factor at an app that demands one: their inbox first, then an authenticator.
    const newcomer = await aUser(bed.server.latchkey, { name: n.person });
    await page.goto(await authorizationUrl(strict));
    await submit(page, '/login', { email: newcomer.email, password: newcomer.password });
    await check(page, 'enrol-email-confirm', language, found);
    await submit(page, '/enrol/email', { code: codeMailedTo(newcomer.email) });
    await check(page, 'enrol-at-sign-in', language, found);
    const newSecret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
    await submit(page, '/enrol', { code: referenceTotp(newSecret, clock.now()) });
    await check(page, 'recovery-codes-at-sign-in', language, found);
    await page.goto(page.url().replace(/\/enrol$/, ''));
    await check(page, 'continue', language, found);
    await context.close();
  }), PAGES_TIMEOUT);

  test('account pages: profile, security, sessions, password re-entry, adding an authenticator app, a passkey and an email code, recovery codes', () => inBothLanguages(async (language, found) => {
    const user = await aUser(bed.server.latchkey, { name: names(language).person });
    const { secret } = await enrolTotp(bed.server.latchkey, user, clock);
    await bed.server.latchkey.access.addMfaCode(user.id, { code: language.lang === 'en' ? '583920' : '694031' }, { actorId: null });
    await bed.server.latchkey.access.enableWebPin(user.id, language.lang === 'en' ? '583920' : '694031', { actorId: user.id });
    const context = await newContext(language);
    const page = await context.newPage();
    await virtualAuthenticator(context, page);
    await consoleSignIn(page, '/account/profile', user, secret);
    await check(page, 'account-profile', language, found);
    await page.goto(`${bed.server.url}/account/security`);
    await check(page, 'account-security', language, found);
    await checkKeyboard(page, 'account-security', language, found);
    // Buttons in a row of methods say which method they act on.
    const remove = language.lang === 'en' ? 'Remove (Authenticator app)' : '삭제 (인증 앱)';
    if ((await page.getByRole('button', { name: remove, exact: true }).count()) !== 1) found.push(`account-security (${language.lang}): no button named "${remove}"`);
    await page.goto(`${bed.server.url}/account/sessions`);
    await check(page, 'account-sessions', language, found);

    // The password typed at sign-in counts as recent (its cookie): without it, changes ask for the password again.
    await context.clearCookies({ name: 'lk_reauth' });
    await page.goto(`${bed.server.url}/account/security`);
    await submit(page, '/account/security/enrol/totp');
    await check(page, 'account-reauth', language, found);
    // A password manager knows whose password this is.
    if ((await page.locator('form[action="/account/reauth"] input[autocomplete="username"]').inputValue()) !== user.email) found.push(`account-reauth (${language.lang}): no username for password managers`);
    // The password page goes on with what it interrupted: the authenticator app's setup.
    await submit(page, '/account/reauth', { password: user.password });
    await check(page, 'account-enrol-totp', language, found);
    await page.goto(`${bed.server.url}/account/security`);
    await submit(page, '/account/security/enrol/passkey', { label: names(language).door });
    await check(page, 'account-enrol-passkey', language, found);
    await page.goto(`${bed.server.url}/account/security`);
    await submit(page, '/account/security/enrol/email');
    await check(page, 'account-enrol-email-sent', language, found);
    await page.goto(`${bed.server.url}/account/security`);
    await submit(page, '/account/security/recovery-codes');
    await check(page, 'account-confirm', language, found);
    await submit(page, '/account/security/recovery-codes');
    await check(page, 'account-recovery-codes', language, found);
    await context.close();
  }), PAGES_TIMEOUT);

  test('admin console: users, user, reset, invitation, apps, app secret, APIs, settings, audit, doors, site, door, schedule, level, controller token, import', () => inBothLanguages(async (language, found) => {
    const n = names(language);
    const { access } = bed.server.latchkey;
    const admin = await aUser(bed.server.latchkey, { roles: ['super_admin'], name: n.admin });
    const person = await aUser(bed.server.latchkey, { name: n.person });
    await enrolTotp(bed.server.latchkey, person, clock);
    await access.addMfaCode(person.id, { code: language.lang === 'en' ? '482913' : '815274' }, { actorId: null });
    await access.setEntryCode(person.id, { code: language.lang === 'en' ? '7301' : '9264' }, { actorId: null });
    await access.addCredential(person.id, { kind: 'card', identifier: `CARD-${language.lang}-1` }, { actorId: null });
    await aClient(bed.server.latchkey, { client_name: n.app });
    await bed.server.latchkey.resources.register({ identifier: `https://api.example.test/${language.lang}`, name: n.api, scopes: ['orders:read'] });
    const site = await access.createSite({ name: n.site, time_zone: 'Asia/Seoul' }, { actorId: null });
    const schedule = await access.createSchedule(site.id, { name: n.schedule, windows: [{ days: [1, 2, 3, 4, 5], start: 480, end: 1080, mode: 'card_and_code' }] }, { actorId: null });
    const door = await access.createDoor(site.id, { name: n.door, has_keypad: true, schedule_id: schedule.id }, { actorId: null });
    const level = await access.createLevel(site.id, { name: n.level, door_ids: [door.id], user_ids: [person.id], schedule_id: schedule.id }, { actorId: null });
    await access.createController(site.id, n.controller, { actorId: null });

    const context = await newContext(language);
    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    await consoleSignIn(page, '/admin/users', admin);
    await check(page, 'admin-users', language, found);
    const current = await page.locator('nav a[aria-current="page"]').evaluateAll((links) => links.map((a) => a.getAttribute('href')));
    if (current.join() !== '/admin/users') found.push(`admin-users (${language.lang}): the nav marks ${current.join() || 'nothing'} as the current page`);
    await page.goto(`${bed.server.url}/admin/users/${person.id}`);
    await check(page, 'admin-user', language, found);
    await page.goto(`${bed.server.url}/admin/users/${person.id}/reset-mfa`);
    await check(page, 'admin-reset-mfa', language, found);
    await page.goto(`${bed.server.url}/admin/users`);
    await submit(page, '/admin/users/invite', { email: `invitee-${language.lang}@example.test`, name: n.person });
    await check(page, 'admin-user-invited', language, found);

    await page.goto(`${bed.server.url}/admin/clients`);
    await check(page, 'admin-clients', language, found);
    await submit(page, '/admin/clients', { client_name: n.app, redirect_uri: 'https://app.example.test/callback' });
    await check(page, 'admin-client-secret', language, found);
    await page.goto(`${bed.server.url}/admin/resources`);
    await check(page, 'admin-resources', language, found);
    await page.goto(`${bed.server.url}/admin/settings`);
    await check(page, 'admin-settings', language, found);
    await page.goto(`${bed.server.url}/admin/audit`);
    await check(page, 'admin-audit', language, found);

    await page.goto(`${bed.server.url}/admin/doors`);
    await check(page, 'admin-doors', language, found);
    await page.goto(`${bed.server.url}/admin/doors/sites/${site.id}`);
    await check(page, 'admin-site', language, found);
    await page.goto(`${bed.server.url}/admin/doors/doors/${door.id}`);
    await check(page, 'admin-door', language, found);
    await page.goto(`${bed.server.url}/admin/doors/schedules/${schedule.id}`);
    await check(page, 'admin-schedule', language, found);
    await page.goto(`${bed.server.url}/admin/doors/schedules/${schedule.id}?day=2`);
    await check(page, 'admin-schedule-day', language, found);
    await page.goto(`${bed.server.url}/admin/doors/levels/${level.id}`);
    await check(page, 'admin-level', language, found);
    await page.goto(`${bed.server.url}/admin/doors/sites/${site.id}`);
    await submit(page, '/controllers', { name: n.controller });
    await check(page, 'admin-controller-token', language, found);
    await page.goto(`${bed.server.url}/admin/doors/import`);
    await check(page, 'admin-import', language, found);
    await submit(page, '/admin/doors/import', { csv: `email,name,kind,value,action\n${person.email},${n.person},card,CARD-${language.lang}-2,add\nnot-an-email,,card,X,add\n` });
    await check(page, 'admin-import-report', language, found);

    // The invited person sets a password from the link in their mail.
    const invited = (await bed.server.latchkey.queries.users.findByEmail(`invitee-${language.lang}@example.test`))!;
    const link = notices.sent.find((s) => s.userId === invited.id && s.event === 'invited')!.details!.link!;
    const guest = await newContext(language);
    const tab = await guest.newPage();
    await tab.goto(link);
    await check(tab, 'invitation', language, found);
    await submit(tab, new URL(link).pathname, { password: 'a long chosen passphrase', password_again: 'a long chosen passphrase' });
    await check(tab, 'invitation-accepted', language, found);
    await guest.close();
    await context.close();
  }), PAGES_TIMEOUT);
});
