import http from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import type { ParsedMail } from 'mailparser';
import { RESET_CODE_TRIES, resetRules } from '../../src/account/password-reset.js';
import { BrowserAgent, type Page } from '../helpers/browser-agent.js';
import { consoleSignIn } from '../helpers/console.js';
import { aClient, APP_ORIGIN, aUser } from '../helpers/factories.js';
import { enrolTotp } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { relyingParty, signInWithPassword, startLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startSmtpServer } from '../helpers/smtp.js';

/** Real time plus an offset the test moves: codes expire by this clock. */
const clock = (() => {
  let offset = 0;
  return { now: () => new Date(Date.now() + offset), advance: (seconds: number) => void (offset += seconds * 1000) };
})();
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let server: TestServer;
let config: Awaited<ReturnType<typeof relyingParty>>;
beforeAll(async () => {
  smtp = await startSmtpServer();
  server = await startTestServer({ clock, env: { LATCHKEY_SMTP_URL: smtp.url } });
  const client = await aClient(server.latchkey);
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
});
afterAll(async () => {
  await server.close();
  await smtp.close();
});
// Every request here comes from loopback: each test starts with that IP's counters at zero (the limit has its own test).
async function clearLoopbackCounters() {
  for (const ip of ['127.0.0.1', '::ffff:127.0.0.1']) {
    for (const rule of [resetRules.sendFromIp(ip), resetRules.guessFromIp(ip)]) await server.latchkey.queries.throttle.clear(rule.key);
  }
}
beforeEach(clearLoopbackCounters);

const NEW_PASSWORD = 'a fresh passphrase nobody guesses';
const resetMails = (to: string) => smtp.messages.filter((m) => m.to && (Array.isArray(m.to) ? m.to : [m.to]).some((a) => a.text.includes(to)) && !!m.text?.includes('/password-reset/code'));
const codeIn = (mail: ParsedMail) => /^\s+(\d{8})$/m.exec(mail.text ?? '')![1]!;
/** The reset mail to `to`, waiting for it (codes are mailed after the answer, see request()). */
async function resetMailTo(to: string, index = 0): Promise<ParsedMail> {
  const deadline = Date.now() + 10_000;
  while (resetMails(to).length <= index) {
    if (Date.now() > deadline) throw new Error(`no reset mail to ${to}`);
    await smtp.messageTo(to).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return resetMails(to)[index]!;
}

/** From an app's sign-in page to the "we sent a code" page. */
async function askForCode(email: string) {
  const login = await startLogin(config);
  expect(login.page.html).toContain('/forgot"');
  const form = await login.agent.visit(`${new URL(login.page.url).origin}${new URL(login.page.url).pathname}/forgot`);
  const sent = await login.agent.submit(form, '/forgot', { email });
  return { login, sent };
}
/** The code page as a browser submits it: the address typed on the page before is still in its field. */
const typeCode = (agent: BrowserAgent, page: Page, code: string, password = NEW_PASSWORD) =>
  agent.submit(page, '/forgot/code', { email: /id="email"[^>]* value="([^"]*)"/.exec(page.html)![1]!, code, password, password_again: password });

describe('forgot password, from an app’s sign-in page', () => {
  test('a code from the inbox sets a new password; the user signs in again, and the second factor is still asked', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    expect(secret).toBeTruthy();
    // Signed in elsewhere: the reset ends that session.
    clock.advance(30);
    const elsewhere = await consoleSignIn(server.url, user.email, user.password, '/account/profile', referenceTotp(secret, clock.now()));
    expect(elsewhere.page.url).toBe(`${server.url}/account/profile`);
    expect((await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).length).toBeGreaterThan(0);

    const { login, sent } = await askForCode(user.email);
    expect(sent.status).toBe(200);
    expect(sent.html).toContain('If an account exists for this address, we sent it a code');
    const mail = await resetMailTo(user.email);
    expect(mail.subject).toBe('Reset your Latchkey password');
    expect(mail.text).not.toContain('&#');
    expect(mail.text).toContain(`\n${server.url}/password-reset/code\n`);
    const code = codeIn(mail);
    expect(code).toMatch(/^\d{8}$/);
    expect(mail.html).toContain(code);

    const done = await typeCode(login.agent, sent, code);
    // Back to the same sign-in (so back to the app afterwards), on its login page, told what happened.
    expect(done.url).toBe(`${login.page.url}?notice=password_changed`);
    expect(done.html).toContain('Your password was changed. Sign in with your new password.');
    const row = (await server.latchkey.queries.users.findById(user.id))!;
    expect((await server.latchkey.hasher.verify(row.password_hash!, NEW_PASSWORD)).valid).toBe(true);
    expect(row.must_change_password).toBe(false);
    expect(await server.latchkey.mfa.methodsFor(row)).toHaveLength(1);
    expect(await server.latchkey.queries.oidcModels.sessionsOf(user.id, new Date())).toHaveLength(0);

    // The new password is the first factor only: the second one follows, as before the reset.
    const next = await login.agent.submit(done, '/login', { email: user.email, password: NEW_PASSWORD });
    expect(next.html).toContain('name="code"');
    expect(next.html).toContain('/mfa"');
    const old = await signInWithPassword(await startLogin(config), user.email, user.password);
    expect(old.html).toContain('Invalid email or password.');

    const notice = await smtp.messageTo(user.email).then(() => smtp.messages.find((m) => m.subject === 'Your password was changed' && m.text?.includes('password')));
    expect(notice).toBeDefined();
    const audit = (await server.latchkey.queries.audit.list({ subjectId: user.id })).map((e) => `${e.action}:${e.outcome}`);
    expect(audit).toEqual(expect.arrayContaining(['password_reset.request:success', 'password_reset.code_sent:success', 'password_reset.complete:success']));
  });

  test('the same answer for an address with no account, and for a disabled one; no mail goes out for either', async () => {
    const disabled = await aUser(server.latchkey);
    await server.latchkey.queries.users.update(disabled.id, { status: 'disabled' });
    const known = await aUser(server.latchkey);
    const strip = (page: Page, email: string) => page.html.replaceAll(email, 'EMAIL').replace(/\/interaction\/[^/"]+/g, '/interaction/UID').replace(/value="[\w-]{43}"/g, 'CSRF');
    const answers = [];
    for (const email of [known.email, 'nobody-here@example.test', disabled.email]) {
      const { sent } = await askForCode(email);
      answers.push({ status: sent.status, html: strip(sent, email) });
    }
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    await resetMailTo(known.email);
    expect(resetMails('nobody-here@example.test')).toHaveLength(0);
    expect(resetMails(disabled.email)).toHaveLength(0);
    const [unknown] = await server.latchkey.queries.audit.search({ action: 'password_reset.request', limit: 3 });
    expect(unknown).toBeDefined();
  });

  test('a code is bound to its account, works once, and not after 10 minutes', async () => {
    const alice = await aUser(server.latchkey);
    const bob = await aUser(server.latchkey);
    const forAlice = await askForCode(alice.email);
    const aliceCode = codeIn(await resetMailTo(alice.email));

    // Alice's code typed with Bob's address (who asked for none, then for one of his own): refused both times.
    const { login: bobLogin, sent: bobPage } = await askForCode(bob.email);
    await resetMailTo(bob.email);
    const crossed = await bobLogin.agent.submit(bobPage, '/forgot/code', { email: bob.email, code: aliceCode, password: NEW_PASSWORD, password_again: NEW_PASSWORD });
    expect(crossed.status).toBe(401);
    expect(crossed.html).toContain('That code is wrong or has expired');
    expect(crossed.html).toContain('aria-invalid="true" aria-describedby="code-error"');

    expect((await typeCode(forAlice.login.agent, forAlice.sent, aliceCode)).status).toBe(200);
    const replay = await typeCode(forAlice.login.agent, forAlice.sent, aliceCode, 'another passphrase entirely');
    expect(replay.status).toBe(401);
    const row = (await server.latchkey.queries.users.findById(alice.id))!;
    expect((await server.latchkey.hasher.verify(row.password_hash!, NEW_PASSWORD)).valid).toBe(true);

    const later = await askForCode(alice.email);
    const lateCode = codeIn(await resetMailTo(alice.email, 1));
    clock.advance(601);
    const expired = await typeCode(later.login.agent, later.sent, lateCode, 'another passphrase entirely');
    expect(expired.status).toBe(401);
    const audit = await server.latchkey.queries.audit.list({ subjectId: alice.id, action: 'password_reset.complete' });
    expect(audit.map((e) => e.details.reason)).toEqual(expect.arrayContaining(['no_live_code']));
  });

  test(`${RESET_CODE_TRIES} wrong codes spend a code, also when there are several`, async () => {
    const user = await aUser(server.latchkey);
    const first = await askForCode(user.email);
    await askForCode(user.email);
    const codes = [codeIn(await resetMailTo(user.email)), codeIn(await resetMailTo(user.email, 1))];
    const wrong = ['00000000', '00000001', '00000002'].find((c) => !codes.includes(c))!;
    for (let i = 0; i < RESET_CODE_TRIES; i++) expect((await typeCode(first.login.agent, first.sent, wrong)).status).toBe(401);
    for (const code of codes) expect((await typeCode(first.login.agent, first.sent, code)).status).toBe(401);
    const audit = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'password_reset.complete' });
    expect(audit.map((e) => e.details.reason)).toEqual([...codes.map(() => 'no_live_code'), ...Array(RESET_CODE_TRIES).fill('wrong_code')]);
  });

  test('40 concurrent tries of the right code change the password once', async () => {
    const user = await aUser(server.latchkey);
    const second = await askForCode(user.email);
    const fresh = codeIn(await resetMailTo(user.email));
    const passwords = Array.from({ length: 40 }, (_, i) => `concurrent passphrase number ${i}`);
    const answers = await Promise.all(passwords.map((password) => typeCode(second.login.agent, second.sent, fresh, password)));
    const winners = answers.filter((page) => page.url.endsWith('?notice=password_changed'));
    expect(winners).toHaveLength(1);
    expect(answers.every((page) => page.status < 500)).toBe(true);
    const row = (await server.latchkey.queries.users.findById(user.id))!;
    const matching = await Promise.all(passwords.map(async (p) => (await server.latchkey.hasher.verify(row.password_hash!, p)).valid));
    expect(matching.filter(Boolean)).toHaveLength(1);
    const audit = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'password_reset.complete' });
    expect(audit.filter((e) => e.outcome === 'success')).toHaveLength(1);
  });

  test('a password the policy refuses keeps the code good and the form filled in', async () => {
    const user = await aUser(server.latchkey);
    const { login, sent } = await askForCode(user.email);
    const code = codeIn(await resetMailTo(user.email));
    const weak = await typeCode(login.agent, sent, code, 'short');
    expect(weak.status).toBe(400);
    expect(weak.html).toContain('aria-invalid="true" aria-describedby="password-error"');
    expect(weak.html).toContain(`value="${code}"`);
    const mismatch = await login.agent.submit(weak, '/forgot/code', { email: user.email, code, password: NEW_PASSWORD, password_again: 'something else' });
    expect(mismatch.status).toBe(400);
    expect(mismatch.html).toContain('aria-describedby="password_again-error"');
    expect((await typeCode(login.agent, mismatch, code)).url).toContain('?notice=password_changed');
  });

  test('sending is limited per address, whether or not it has an account, and per IP', async () => {
    for (const email of [(await aUser(server.latchkey)).email, 'limit-nobody@example.test']) {
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await askForCode(email)).sent.status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    }
    const { sent } = await askForCode('limit-nobody@example.test');
    expect(sent.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(sent.html).toContain('Too many attempts. Try again in');

    await clearLoopbackCounters();
    const agent = new BrowserAgent(APP_ORIGIN);
    const form = await agent.visit(`${server.url}/password-reset`);
    const limit = resetRules.sendFromIp('127.0.0.1').limit;
    const statuses = [];
    for (let i = 0; i <= limit; i++) statuses.push((await agent.submit(form, '/password-reset', { email: `spray-${i}@example.test` })).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(limit);
    expect(statuses.at(-1)).toBe(429);
  });

  test('mail is in the account’s language, whatever the browser says', async () => {
    const user = await aUser(server.latchkey, { locale: 'ko' });
    await askForCode(user.email);
    const mail = await resetMailTo(user.email);
    expect(mail.subject).toBe('Latchkey 비밀번호 재설정');
    expect(mail.text).toContain('10분 동안 한 번만');
  });

  test('not once the sign-in has a user: a reset cannot be started at the second-factor step', async () => {
    const user = await aUser(server.latchkey);
    await enrolTotp(server.latchkey, user, clock);
    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    expect(mfaPage.html).toContain('/mfa"');
    const forgot = `${mfaPage.url}/forgot`;
    expect((await login.agent.visit(forgot)).status).toBe(400);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(mfaPage.html)![1]!;
    expect((await login.agent.visit(forgot, { form: { _csrf: csrf, email: user.email } })).status).toBe(400);
    expect((await login.agent.visit(`${forgot}/code`, { form: { _csrf: csrf, email: user.email, code: '12345678', password: NEW_PASSWORD, password_again: NEW_PASSWORD } })).status).toBe(400);
    expect(resetMails(user.email)).toHaveLength(0);
  });

  test('a reset ends a sign-in someone took past the old password: its second factor no longer finishes it', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    expect(mfaPage.html).toContain('/mfa"');

    const owner = new BrowserAgent(APP_ORIGIN);
    const asked = await owner.submit(await owner.visit(`${server.url}/password-reset`), '/password-reset', { email: user.email });
    const code = codeIn(await resetMailTo(user.email));
    expect((await owner.submit(asked, '/password-reset/code', { email: user.email, code, password: NEW_PASSWORD, password_again: NEW_PASSWORD })).url).toBe(`${server.url}/password-reset/done`);

    clock.advance(30);
    const late = await login.agent.submit(mfaPage, '/mfa', { code: referenceTotp(secret, clock.now()) });
    expect(late.status).toBe(400);
    expect(late.url).not.toContain('callback');
  });
});

describe('the page the mail links to', () => {
  /** A raw request whose Host and X-Forwarded-Host an attacker chose. */
  const hostile = (path: string, init: { method?: string; body?: string; cookie?: string } = {}) =>
    new Promise<{ status: number; body: string; cookies: string[] }>((resolve, reject) => {
      const target = new URL(path, server.url);
      const req = http.request(
        { host: target.hostname, port: target.port, path: target.pathname, method: init.method ?? 'GET', headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example', accept: 'text/html', ...(init.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...(init.cookie ? { cookie: init.cookie } : {}) } },
        (res) => {
          let body = '';
          res.on('data', (chunk) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, body, cookies: (res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]!) }));
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });

  test('links in the mail come from the configured issuer, never from the Host header', async () => {
    const user = await aUser(server.latchkey);
    const form = await hostile('/password-reset');
    expect(form.status).toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)![1]!;
    const sent = await hostile('/password-reset', { method: 'POST', cookie: form.cookies.join('; '), body: new URLSearchParams({ _csrf: csrf, email: user.email }).toString() });
    expect(sent.status).toBe(200);
    const mail = await resetMailTo(user.email);
    expect(mail.text).toContain(`${server.url}/password-reset/code`);
    expect(`${mail.text}${mail.html}`).not.toContain('evil.example');
  });

  test('on its own, without a sign-in: the code and a new password, then a way to sign in', async () => {
    const user = await aUser(server.latchkey);
    const agent = new BrowserAgent(APP_ORIGIN);
    const asked = await agent.submit(await agent.visit(`${server.url}/password-reset`), '/password-reset', { email: user.email });
    const code = codeIn(await resetMailTo(user.email));
    const codePage = await agent.visit(`${server.url}/password-reset/code`);
    expect(codePage.html).toContain('name="code"');
    const done = await agent.submit(asked, '/password-reset/code', { email: user.email, code, password: NEW_PASSWORD, password_again: NEW_PASSWORD });
    expect(done.url).toBe(`${server.url}/password-reset/done`);
    expect(done.html).toContain('href="/account"');
  });
});

describe('timing', () => {
  test('the answer does not wait for the mail server: an existing account answers as fast as a missing one', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const attempted: string[] = [];
    const slow = await startTestServer({ emailSender: { send: async (message) => { attempted.push(message.to); await stuck; } } });
    try {
      const user = await aUser(slow.latchkey);
      const agent = new BrowserAgent(APP_ORIGIN);
      const form = await agent.visit(`${slow.url}/password-reset`);
      // The mail server never answers while this request is made: it still gets the same page as any other.
      const sent = await agent.submit(form, '/password-reset', { email: user.email });
      expect(sent.status).toBe(200);
      expect(sent.html).toContain('If an account exists for this address, we sent it a code');
      // ...and the code was on its way all the same.
      for (const deadline = Date.now() + 10_000; attempted.length === 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(attempted).toEqual([user.email]);
    } finally {
      release();
      await slow.close();
    }
  });
});
