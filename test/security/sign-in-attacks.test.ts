import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import type { UserRow } from '../../src/db/users.js';
import { ACR } from '../../src/mfa/policy.js';
import { createThrottle, type Throttle } from '../../src/security/throttle.js';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { aClient, aUser, CALLBACK } from '../helpers/factories.js';
import { enrolTotp } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { relyingParty } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import {
  authorizeOnly, begin, claimsAfter, go, methodOf, newAgent, offsetClock, outbox, password, rawPost, recoveryCodesOf, secretOf, send, type SignIn,
} from './sign-in-attack-kit.js';

/**
 * The attacker's view of the sign-in state machine: replayed, reordered, raced and swapped requests, state changed
 * under a sign-in, hostile input, step-up, the throttle and the emailed enrolment code. Each test asserts the safe
 * outcome. Attacks that still work are in sign-in-attacks-open.test.ts.
 */
const clock = offsetClock();
const mail = outbox();
let server: TestServer;
let mailed: TestServer;
let config: oidc.Configuration;
let mailedConfig: oidc.Configuration;
// Wrong passwords in one test must not use up the loopback address's budget for the next.
const env = { LATCHKEY_LOGIN_IP_FAILURES: '10000' };

beforeAll(async () => {
  [server, mailed] = await Promise.all([startTestServer({ clock, env }), startTestServer({ clock, env, emailSender: mail.sender })]);
  const [client, mailedClient] = await Promise.all([aClient(server.latchkey), aClient(mailed.latchkey)]);
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
  mailedConfig = await relyingParty(mailed.url, mailedClient.clientId, mailedClient.clientSecret);
});
afterAll(async () => {
  await Promise.all([server.close(), mailed.close()]);
});

const rowOf = (t: TestServer, uid: string) => t.database.db('login_progress').where({ interaction_uid: uid }).first();
const audits = async (t: TestServer, subjectId: string, action: string, outcome?: string) =>
  (await t.latchkey.queries.audit.list({ subjectId, action })).filter((e) => !outcome || e.outcome === outcome).length;
const wrongTo = (code: string) => (code === '000000' ? '111111' : '000000');
const statuses = (answers: Response[]) => answers.map((a) => a.status);
/** The answers whose status is not among `expected`, with the start of their bodies: what a failure should show. */
const unexpected = async (answers: Response[], expected: (status: number) => boolean) =>
  Promise.all(answers.filter((a) => !expected(a.status)).map(async (a) => ({ status: a.status, body: (await a.clone().text()).slice(0, 300) })));

/** A user with an authenticator, at the second-factor step of a fresh sign-in. */
async function atSecondFactor(t: TestServer = server, c: oidc.Configuration = config) {
  const user = await aUser(t.latchkey);
  const { secret, methodId, recoveryCodes } = await enrolTotp(t.latchkey, user, clock);
  clock.nextStep();
  const s = await begin(c);
  const page = await password(s, user);
  expect(page.html).toContain('/mfa"');
  return { user, secret, methodId, recoveryCodes, s, page };
}

/** A user without a factor, at the enrolment step of a sign-in asking acr mfa (no mail configured). */
async function atEnrolment() {
  const user = await aUser(server.latchkey);
  const s = await begin(config, { acr_values: ACR.mfa });
  const page = await password(s, user);
  expect(page.html).toContain('totp-secret');
  return { user, s, page, secret: secretOf(page) };
}

/** A user without a factor, at the inbox-confirmation step (mail configured). */
async function atEmailConfirmation(c: oidc.Configuration = mailedConfig, user?: { email: string; password: string; id: string }) {
  const u = user ?? (await aUser(mailed.latchkey));
  const s = await begin(c, { acr_values: ACR.mfa });
  const page = await password(s, u);
  expect(page.html).toContain('/enrol/email"');
  return { user: u, s, page };
}

/** At the step after enrolment (recovery codes shown, /continue next). */
async function atVerified() {
  const e = await atEnrolment();
  const codes = await go(e.s, '/enrol', { code: referenceTotp(e.secret, clock.now()) });
  expect(codes.html).toContain('/continue"');
  return { ...e, codes };
}

describe('replay', () => {
  test('one TOTP code posted 20 times at once signs in once, and is refused in the next sign-in', async () => {
    const { user, secret, methodId, s } = await atSecondFactor();
    const code = referenceTotp(secret, clock.now());
    const answers = await Promise.all(Array.from({ length: 20 }, () => send(s, '/mfa', { method: methodId, code })));
    expect(await unexpected(answers, (st) => st < 500)).toEqual([]);
    expect(await audits(server, user.id, 'mfa.verify', 'success')).toBe(1);

    const next = await begin(config);
    await password(next, user);
    expect((await send(next, '/mfa', { method: methodId, code })).status).toBe(401);
  });

  test('a recovery code posted 20 times at once signs in once', async () => {
    const { user, recoveryCodes, s } = await atSecondFactor();
    const answers = await Promise.all(Array.from({ length: 20 }, () => send(s, '/mfa', { method: 'recovery', code: recoveryCodes[0]! })));
    expect(await unexpected(answers, (st) => st < 500)).toEqual([]);
    expect(await audits(server, user.id, 'mfa.verify', 'success')).toBe(1);
  });

  test('a finished sign-in re-posted, before and after the app redeemed it, changes nothing and answers no 5xx', async () => {
    const { user, secret, methodId, s } = await atSecondFactor();
    const other = await aUser(server.latchkey);
    const done = await send(s, '/mfa', { method: methodId, code: referenceTotp(secret, clock.now()) });
    expect(done.status).toBe(303);
    // Not yet redeemed: the interaction still exists, its sign-in is finished.
    clock.nextStep();
    const before = [
      await send(s, '/mfa', { method: methodId, code: referenceTotp(secret, clock.now()) }),
      await send(s, '/login', { email: other.email, password: other.password }),
      await send(s, '/continue'),
      await send(s, '/abort'),
    ];
    expect(statuses(before)).toEqual([400, 400, 400, 400]);
    expect((await s.login.agent.request(s.base)).status).toBe(400);

    const claims = await claimsAfter(config, s, await s.login.agent.visit(new URL(done.headers.get('location')!, s.base).toString()));
    expect(claims.sub).toBe(user.id);
    const after = [await send(s, '/mfa', { method: methodId, code: '123456' }), await send(s, '/continue'), await send(s, '/confirm'), await send(s, '/abort')];
    for (const a of after) expect(a.status).toBeGreaterThanOrEqual(400);
    for (const a of after) expect(a.status).toBeLessThan(500);
  });

  test('an emailed enrolment code works only in the sign-in it was sent for', async () => {
    const first = await atEmailConfirmation();
    const code = mail.codesTo(first.user.email).at(-1)!;
    const second = await atEmailConfirmation(mailedConfig, first.user);
    const secondCode = mail.codesTo(first.user.email).at(-1)!;
    if (code !== secondCode) expect((await send(second.s, '/enrol/email', { code })).status).toBe(401);
    // And a code already used opens nothing twice.
    const opened = await go(first.s, '/enrol/email', { code });
    expect(opened.html).toContain('totp-secret');
    expect((await send(first.s, '/enrol/email', { code })).status).toBe(400);
  });
});

describe('reorder', () => {
  test('at the enrolment step, every other step is refused', async () => {
    const { user, s, secret } = await atEnrolment();
    const other = await aUser(server.latchkey);
    const refused = [
      await send(s, '/continue'),
      await send(s, '/mfa', { method: 'recovery', code: '123456' }),
      await send(s, '/mfa/send', { method: 'x' }),
      await send(s, '/enrol/email', { code: '123456' }),
      await send(s, '/enrol/email/resend'),
      await send(s, '/login', { email: user.email, password: user.password }),
      await send(s, '/login', { email: other.email, password: other.password }),
    ];
    expect(statuses(refused)).toEqual([400, 400, 400, 400, 400, 400, 400]);
    const codes = await go(s, '/enrol', { code: referenceTotp(secret, clock.now()) });
    expect((await claimsAfter(config, s, await s.login.agent.submit(codes, '/continue'))).sub).toBe(user.id);
  });

  test('at the inbox-confirmation step, enrolment, continue and the second factor are refused', async () => {
    const { s, page } = await atEmailConfirmation();
    expect(page.html).not.toContain('totp-secret');
    const refused = [await send(s, '/enrol', { code: '123456' }), await send(s, '/continue'), await send(s, '/mfa', { method: 'recovery', code: '123456' })];
    expect(statuses(refused)).toEqual([400, 400, 400]);
  });

  test('at the second-factor step, enrolment, inbox confirmation and continue are refused', async () => {
    const { s } = await atSecondFactor();
    const refused = [await send(s, '/enrol', { code: '123456' }), await send(s, '/enrol/email', { code: '123456' }), await send(s, '/continue')];
    expect(statuses(refused)).toEqual([400, 400, 400]);
  });

  test("a session stepping up (GET) binds the session's user; a password posted afterwards is refused", async () => {
    const sessionUser = await aUser(server.latchkey);
    const other = await aUser(server.latchkey);
    const first = await begin(config);
    await claimsAfter(config, first, await password(first, sessionUser));
    const stepUp = await begin(config, { acr_values: ACR.mfa }, first.login.agent);
    expect(stepUp.login.page.html).toContain('totp-secret');
    expect((await send(stepUp, '/login', { email: other.email, password: other.password })).status).toBe(400);
    const codes = await go(stepUp, '/enrol', { code: referenceTotp(secretOf(stepUp.login.page), clock.now()) });
    const claims = await claimsAfter(config, stepUp, await stepUp.login.agent.submit(codes, '/continue'));
    expect(claims.sub).toBe(sessionUser.id);
    expect(claims.acr).toBe(ACR.mfa);
  });

  test("a password posted before the step-up GET binds that password's user, who then needs their own factor", async () => {
    const sessionUser = await aUser(server.latchkey);
    const other = await aUser(server.latchkey);
    const { methodId } = await enrolTotp(server.latchkey, other, clock);
    const first = await begin(config);
    await claimsAfter(config, first, await password(first, sessionUser));
    const url = await authorizeOnly(config, first.login.agent, { acr_values: ACR.mfa });
    const s: SignIn = { ...first, base: url, uid: url.split('/').pop()! };
    const page = await password(s, other);
    expect(page.html).toContain('/mfa"');
    expect(methodOf(page)).toBe(methodId);
    expect((await send(s, '/continue')).status).toBe(400);
    expect((await rowOf(server, s.uid)).user_id).toBe(other.id);
  });
});

describe('race', () => {
  test('the right password posted 40 times at once binds the sign-in once', async () => {
    const { user, secret } = await (async () => {
      const u = await aUser(server.latchkey);
      return { user: u, ...(await enrolTotp(server.latchkey, u, clock)) };
    })();
    clock.nextStep();
    const s = await begin(config);
    const answers = await Promise.all(Array.from({ length: 40 }, () => send(s, '/login', { email: user.email, password: user.password })));
    expect(answers.filter((a) => a.status === 303)).toHaveLength(1);
    expect(await unexpected(answers, (st) => [303, 400, 429].includes(st))).toEqual([]);
    const page = await s.login.agent.visit(s.base);
    const claims = await claimsAfter(config, s, await go(s, '/mfa', { method: methodOf(page), code: referenceTotp(secret, clock.now()) }));
    expect(claims.sub).toBe(user.id);
  });

  test("two users' passwords 20 times each at once: one user is bound, and only their factor finishes it", async () => {
    const one = await aUser(server.latchkey);
    const two = await aUser(server.latchkey);
    const keys = { [one.id]: await enrolTotp(server.latchkey, one, clock), [two.id]: await enrolTotp(server.latchkey, two, clock) };
    clock.nextStep();
    const s = await begin(config);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => send(s, '/login', { email: [one, two][i % 2]!.email, password: [one, two][i % 2]!.password })));
    expect(answers.filter((a) => a.status === 303)).toHaveLength(1);
    const bound = (await rowOf(server, s.uid)).user_id as string;
    const loser = bound === one.id ? two.id : one.id;
    expect((await send(s, '/mfa', { method: keys[loser]!.methodId, code: referenceTotp(keys[loser]!.secret, clock.now()) })).status).toBe(401);
    const claims = await claimsAfter(config, s, await go(s, '/mfa', { method: keys[bound]!.methodId, code: referenceTotp(keys[bound]!.secret, clock.now()) }));
    expect(claims.sub).toBe(bound);
  });

  test('/abort racing /continue (10 each): exactly one of them takes effect', async () => {
    const { s } = await atVerified();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => send(s, i % 2 ? '/abort' : '/continue')));
    expect(answers.filter((a) => a.status === 303)).toHaveLength(1);
    expect(await unexpected(answers, (st) => st === 303 || st === 400)).toEqual([]);
    expect((await rowOf(server, s.uid)).step).toBe('finished');
  });

  test('/continue posted 40 times at once finishes once', async () => {
    const { s } = await atVerified();
    const answers = await Promise.all(Array.from({ length: 40 }, () => send(s, '/continue')));
    expect(answers.filter((a) => a.status === 303)).toHaveLength(1);
  });

  test('/enrol racing /continue: /continue never finishes before a factor is bound, and codes shown are codes that work', async () => {
    const { user, s, secret } = await atEnrolment();
    const code = referenceTotp(secret, clock.now());
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => send(s, i % 2 ? '/continue' : '/enrol', { code })));
    expect(await unexpected(answers, (st) => st < 500)).toEqual([]);
    const enrolled = answers.filter((a, i) => i % 2 === 0 && a.status === 200);
    const continued = answers.filter((a, i) => i % 2 === 1 && a.status === 303);
    expect(enrolled.length).toBeLessThanOrEqual(1);
    expect(continued.length).toBeLessThanOrEqual(enrolled.length);
    expect(await server.latchkey.queries.factors.countConfirmed(user.id)).toBeLessThanOrEqual(1);
    if (continued.length) expect((await rowOf(server, s.uid)).verified_amr).toEqual(['pwd', 'otp', 'mfa']);
    if (enrolled.length) {
      const shown = recoveryCodesOf(await enrolled[0]!.text());
      expect(shown).toHaveLength(10);
      const next = await begin(config);
      await password(next, user);
      expect((await claimsAfter(config, next, await go(next, '/mfa', { method: 'recovery', code: shown[3]! }))).sub).toBe(user.id);
    }
  });

  test('40 concurrent wrong emailed codes evaluate at most 5, and the right one after them is refused', async () => {
    const { user, s } = await atEmailConfirmation();
    const code = mail.codesTo(user.email).at(-1)!;
    const answers = await Promise.all(Array.from({ length: 40 }, () => send(s, '/enrol/email', { code: wrongTo(code) })));
    expect(await unexpected(answers, (st) => st < 500)).toEqual([]);
    expect(await audits(mailed, user.id, 'mfa.enrolment_confirmed_by_email', 'failure')).toBeLessThanOrEqual(5);
    expect((await send(s, '/enrol/email', { code })).status).toBe(400);
  });

  test('40 concurrent resends mail at most the hourly quota', async () => {
    const { user, s } = await atEmailConfirmation();
    const before = mail.codesTo(user.email).length;
    const answers = await Promise.all(Array.from({ length: 40 }, () => send(s, '/enrol/email/resend')));
    expect(await unexpected(answers, (st) => st === 200 || st === 429)).toEqual([]);
    expect(mail.codesTo(user.email).length - before).toBeLessThanOrEqual(5);
    // The last code mailed is the one the sign-in accepts.
    expect((await go(s, '/enrol/email', { code: mail.codesTo(user.email).at(-1)! })).html).toContain('totp-secret');
  });
});

describe('swapped ids', () => {
  test("a sign-in's URL with another browser's cookies is refused, and the sign-in is untouched", async () => {
    const victim = await atSecondFactor();
    const attacker = await atSecondFactor();
    const swapped: SignIn = { ...attacker.s, base: victim.s.base, uid: victim.s.uid };
    const answers = [
      await attacker.s.login.agent.request(victim.s.base),
      await send(swapped, '/mfa', { method: victim.methodId, code: '000000' }),
      await send(swapped, '/abort'),
    ];
    expect(statuses(answers)).toEqual([400, 400, 400]);
    const row = await rowOf(server, victim.s.uid);
    expect(row.mfa_failures).toBe(0);
    expect(row.step).toBe('second_factor');
  });

  test("another user's method id with that user's valid code (or their recovery code) signs no one in", async () => {
    const me = await atSecondFactor();
    const other = await aUser(server.latchkey);
    const { secret, methodId, recoveryCodes } = await enrolTotp(server.latchkey, other, clock);
    clock.nextStep();
    expect((await send(me.s, '/mfa', { method: methodId, code: referenceTotp(secret, clock.now()) })).status).toBe(401);
    expect((await send(me.s, '/mfa', { method: 'recovery', code: recoveryCodes[0]! })).status).toBe(401);
    expect(await audits(server, me.user.id, 'mfa.verify', 'success')).toBe(0);
    expect(await server.latchkey.queries.recoveryCodes.countUnused(other.id)).toBe(10);
  });

  test("consent posted to another browser's interaction is refused", async () => {
    const a = await begin(config);
    const aConsent = await password(a, await aUser(server.latchkey));
    expect(aConsent.html).toContain('/confirm"');
    const b = await begin(config);
    const bConsent = await password(b, await aUser(server.latchkey));
    expect(bConsent.html).toContain('/confirm"');
    const aUid = /\/interaction\/([^/]+)\/confirm/.exec(aConsent.html)![1]!;
    const bBase = /\/interaction\/[^/]+/.exec(bConsent.url)![0]!;
    const answer = await b.login.agent.request(`${b.base.replace(/\/interaction\/.*$/, '')}/interaction/${aUid}/confirm`, { form: { _csrf: b.csrf } });
    expect(answer.status).toBe(400);
    expect(bBase).not.toContain(aUid);
  });
});

describe('state changed under a sign-in', () => {
  test('a user disabled between steps gets no further', async () => {
    const second = await atSecondFactor();
    const verified = await atVerified();
    await server.latchkey.queries.users.update(second.user.id, { status: 'disabled' });
    await server.latchkey.queries.users.update(verified.user.id, { status: 'disabled' });
    expect((await send(second.s, '/mfa', { method: second.methodId, code: referenceTotp(second.secret, clock.now()) })).status).toBe(400);
    expect((await send(verified.s, '/continue')).status).toBe(400);
  });

  test("a factor removed (or MFA reset by an admin) mid-sign-in: its codes no longer sign in", async () => {
    const removed = await atSecondFactor();
    const row = (await server.latchkey.queries.users.findById(removed.user.id)) as UserRow;
    await server.latchkey.mfa.removeFactor(row, removed.methodId, { actorId: removed.user.id });
    expect((await send(removed.s, '/mfa', { method: removed.methodId, code: referenceTotp(removed.secret, clock.now()) })).status).toBe(401);

    const reset = await atSecondFactor();
    await server.latchkey.mfa.reset((await server.latchkey.queries.users.findById(reset.user.id)) as UserRow, { actorId: null });
    expect((await send(reset.s, '/mfa', { method: 'recovery', code: reset.recoveryCodes[0]! })).status).toBe(401);
    expect((await send(reset.s, '/mfa', { method: reset.methodId, code: referenceTotp(reset.secret, clock.now()) })).status).toBe(401);
  });

  test('an admin reset during enrolment voids the pending authenticator', async () => {
    const { user, s, secret } = await atEnrolment();
    await server.latchkey.mfa.reset((await server.latchkey.queries.users.findById(user.id)) as UserRow, { actorId: null });
    const answer = await send(s, '/enrol', { code: referenceTotp(secret, clock.now()) });
    expect([400, 401]).toContain(answer.status);
    expect(await server.latchkey.queries.factors.countConfirmed(user.id)).toBe(0);
  });

  test('enforcement switched on: a password-only session is stepped up on its next authorization, not let through', async () => {
    const user = await aUser(server.latchkey);
    const first = await begin(config);
    expect((await claimsAfter(config, first, await password(first, user))).amr).toEqual(['pwd']);
    await server.latchkey.mfa.setEnforcement(true, { actorId: null });
    try {
      const next = await begin(config, {}, first.login.agent);
      expect(next.login.page.url.startsWith(CALLBACK)).toBe(false);
      expect(next.login.page.html).toContain('totp-secret');
      expect((await send(next, '/continue')).status).toBe(400);
    } finally {
      await server.latchkey.mfa.setEnforcement(false, { actorId: null });
    }
  });
});

describe('oversized and injected input', () => {
  const bodies = (csrf: string) => [
    `_csrf=${csrf}&code=${'9'.repeat(65)}&method=recovery`,
    `_csrf=${csrf}&code=${'9'.repeat(30_000)}&method=recovery`,
    `_csrf=${csrf}&code=${'9'.repeat(40_000)}`,
    `_csrf=${csrf}&code=1&code=2&method=recovery`,
    `_csrf=${csrf}&code[]=123456&method[]=recovery`,
    `_csrf=${csrf}&code[$gt]=&method[a]=b`,
    `_csrf=${csrf}&code=%00%00%00%00%00%00&method=%00`,
    `_csrf=${csrf}&code=${encodeURIComponent('１２３４５６')}&method=${encodeURIComponent('𝓻𝓮𝓬𝓸𝓿𝓮𝓻𝔂')}`,
    `_csrf=${csrf}&code=${encodeURIComponent('٣٤٥٦٧٨')}&method=${encodeURIComponent("' or 1=1 --")}`,
    `_csrf=${csrf}&__proto__[admin]=1&constructor[prototype][x]=1&code=1`,
    `_csrf=${csrf}&code=${'9'.repeat(6)}&method=${'m'.repeat(65)}`,
  ];
  const json = (csrf: string) => [
    JSON.stringify({ _csrf: csrf, code: 123456, method: 'recovery' }),
    JSON.stringify({ _csrf: csrf, code: { $ne: '' }, method: ['recovery'] }),
    JSON.stringify({ _csrf: csrf, code: null, method: null, email: ['a'], password: { x: 1 } }),
    '{"_csrf":' + JSON.stringify(csrf) + ',"code":"' + '\\u0000'.repeat(6) + '"}',
    '{"_csrf": "' + csrf + '", "code": [' + '1,'.repeat(20_000) + '1]}',
  ];

  test('hostile bodies at every step answer 4xx, never 5xx, and sign no one in', async () => {
    const targets = [await atSecondFactor(), await atEnrolment(), await atEmailConfirmation()];
    for (const { s, user } of targets) {
      for (const suffix of ['/mfa', '/mfa/send', '/enrol', '/enrol/email', '/enrol/email/resend', '/continue', '/login', '/abort']) {
        for (const body of bodies(s.csrf)) {
          const answer = await rawPost(s.login.agent, `${s.base}${suffix}`, body);
          expect({ suffix, body: body.slice(0, 80), status: answer.status < 500 }).toEqual({ suffix, body: body.slice(0, 80), status: true });
        }
        for (const body of json(s.csrf)) {
          const answer = await rawPost(s.login.agent, `${s.base}${suffix}`, body, 'application/json');
          expect({ suffix, body: body.slice(0, 80), status: answer.status < 500 }).toEqual({ suffix, body: body.slice(0, 80), status: true });
        }
      }
      const t = s.base.startsWith(mailed.url) ? mailed : server;
      expect(await audits(t, user.id, 'mfa.verify', 'success')).toBe(0);
      expect(await t.latchkey.queries.factors.countConfirmed(user.id)).toBe(targets[0]!.user === user ? 1 : 0);
    }
  });

  test('hostile emails and passwords at /login answer 4xx, never 5xx', async () => {
    const s = await begin(config);
    const emails = ['a\u0000b@example.test', `${'x'.repeat(310)}@example.test`, `${'x'.repeat(400)}@e.t`, "'; drop table users; --@x.y", '%@%', '_@_', 'ｖｉｃｔｉｍ@ｅｘａｍｐｌｅ．ｔｅｓｔ', '\u202e@x.y', ' ', ''];
    for (const email of emails) {
      for (const pw of ['x', '\u0000', 'p'.repeat(1025)]) {
        const answer = await send(s, '/login', { email, password: pw });
        expect({ email, status: answer.status < 500 }).toEqual({ email, status: true });
      }
    }
    for (const body of [`_csrf=${s.csrf}&email[]=a&password=b`, `_csrf=${s.csrf}&email=a&email=b&password=c`, `_csrf=${s.csrf}&email[$ne]=&password[$ne]=`]) {
      expect((await rawPost(s.login.agent, `${s.base}/login`, body)).status).toBeLessThan(500);
    }
  });

  test('a login_hint carrying markup is shown as text', async () => {
    const s = await begin(config, { login_hint: '"><script>alert(1)</script>' });
    expect(s.login.page.html).not.toContain('<script>alert(1)</script>');
    expect(s.login.page.html).toContain('&lt;script&gt;');
  });
});

describe('step-up', () => {
  test('a password-only session reaching an app that requires MFA is stepped up, never let through with [pwd]', async () => {
    const user = await aUser(server.latchkey);
    const other = await aUser(server.latchkey);
    const strict = await aClient(server.latchkey, { require_mfa: true });
    const strictConfig = await relyingParty(server.url, strict.clientId, strict.clientSecret);
    const first = await begin(config);
    expect((await claimsAfter(config, first, await password(first, user))).amr).toEqual(['pwd']);

    const stepUp = await begin(strictConfig, {}, first.login.agent);
    expect(stepUp.login.page.url.startsWith(CALLBACK)).toBe(false);
    expect(stepUp.login.page.html).toContain('totp-secret');
    expect((await send(stepUp, '/login', { email: other.email, password: other.password })).status).toBe(400);
    expect((await send(stepUp, '/continue')).status).toBe(400);
    const codes = await go(stepUp, '/enrol', { code: referenceTotp(secretOf(stepUp.login.page), clock.now()) });
    const claims = await claimsAfter(strictConfig, stepUp, await stepUp.login.agent.submit(codes, '/continue'));
    expect(claims.sub).toBe(user.id);
    expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
  });

  test('a [pwd, pin] session asking acr_values mfa must enrol a real factor: the PIN is not offered', async () => {
    const api = apiClient(server.url);
    const { token } = await anAdmin(server.latchkey, server.url, ['access_credential_manager']);
    const user = await aUser(server.latchkey);
    expect((await api('POST', `/api/admin/access/users/${user.id}/mfa-codes`, token, { code: '58203917' })).status).toBe(201);
    await server.latchkey.access.enableWebPin(user.id, '58203917', { actorId: user.id });

    const first = await begin(config);
    const pinPage = await password(first, user);
    expect(pinPage.html).toContain('/mfa"');
    const claims = await claimsAfter(config, first, await go(first, '/mfa', { method: methodOf(pinPage), code: '58203917' }));
    expect(claims.amr).toEqual(['pwd', 'pin']);
    expect(claims.acr).toBe(ACR.pin);

    const stepUp = await begin(config, { acr_values: ACR.mfa }, first.login.agent);
    expect(stepUp.login.page.url.startsWith(CALLBACK)).toBe(false);
    expect(stepUp.login.page.html).toContain('totp-secret');
    expect((await send(stepUp, '/mfa', { method: methodOf(pinPage), code: '58203917' })).status).toBe(400);
    expect((await send(stepUp, '/continue')).status).toBe(400);
  });
});

describe('the throttle', () => {
  const rule = (key: string, over: Partial<{ limit: number; windowSeconds: number; baseLockSeconds: number }> = {}) => ({
    key,
    limit: 3,
    windowSeconds: 900,
    baseLockSeconds: 30,
    onSuccess: 'reset' as const,
    ...over,
  });
  let throttle: Throttle;
  beforeAll(() => {
    throttle = createThrottle(server.latchkey.queries, clock);
  });
  const reserve = (r: ReturnType<typeof rule>) => throttle.reserve([r]);

  test('reservations and successes on the same keys at once never deadlock (in whatever order callers list them)', async () => {
    const account = rule(`attack:account:${crypto.randomUUID()}`, { limit: 1_000_000 });
    const ip = { ...rule(`attack:ip:${crypto.randomUUID()}`, { limit: 1_000_000 }), onSuccess: 'release' as const };
    const failures: string[] = [];
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          try {
            const taken = await throttle.reserve(i % 3 ? [account, ip] : [ip, account]);
            if (taken.allowed && i % 2) await taken.succeeded();
          } catch (error) {
            failures.push(String((error as { code?: string }).code ?? error));
          }
        }),
      );
    }
    expect(failures).toEqual([]);
  });

  test('a lock doubles with each attempt after it, never past the window, and the window ending frees the key', async () => {
    const r = rule(`attack:doubling:${crypto.randomUUID()}`);
    for (let i = 0; i < 3; i++) expect((await reserve(r)).allowed).toBe(true);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      const refused = await reserve(r);
      expect(refused.allowed).toBe(false);
      const wait = (refused as { retryAfterSeconds: number }).retryAfterSeconds;
      waits.push(wait);
      clock.advance(wait + 1);
      expect((await reserve(r)).allowed).toBe(true);
    }
    expect(waits).toEqual([30, 60, 120, 240]);
    const capped = await reserve(r);
    expect(capped.allowed).toBe(false);
    expect((capped as { retryAfterSeconds: number }).retryAfterSeconds).toBeLessThanOrEqual(900);
    clock.advance(901);
    // The window has passed: the count starts again; nothing stays locked for good.
    for (let i = 0; i < 2; i++) expect((await reserve(r)).allowed).toBe(true);
  });

  test('40 reservations at once just after the window ended let at most the limit through', async () => {
    const r = rule(`attack:boundary:${crypto.randomUUID()}`, { limit: 5, windowSeconds: 60 });
    for (let i = 0; i < 4; i++) await reserve(r);
    const before = await Promise.all(Array.from({ length: 40 }, () => reserve(r)));
    expect(before.filter((x) => x.allowed)).toHaveLength(1);
    clock.advance(61);
    const after = await Promise.all(Array.from({ length: 40 }, () => reserve(r)));
    expect(after.filter((x) => x.allowed).length).toBeLessThanOrEqual(5);
  });

  test('keys of odd characters are plain keys: no error, no sharing with other keys', async () => {
    const odd = ["'; drop table throttle_counters; --", ':now', ':key0', '?', '%', '_', '\\', '$1', '한국어', '𝓾𝓷𝓲', 'x'.repeat(5000)];
    for (const key of odd) {
      const r = rule(`attack:odd:${crypto.randomUUID()}:${key}`, { limit: 1 });
      expect((await reserve(r)).allowed).toBe(true);
      expect((await reserve(r)).allowed).toBe(false);
    }
    const fresh = rule(`attack:odd:${crypto.randomUUID()}`, { limit: 1 });
    expect((await reserve(fresh)).allowed).toBe(true);
  });

  test('release: a success gives its attempt back without lifting a lock others earned; refused rules give theirs back', async () => {
    const ip = { ...rule(`attack:ip:${crypto.randomUUID()}`, { limit: 3 }), onSuccess: 'release' as const };
    const account = rule(`attack:acct:${crypto.randomUUID()}`, { limit: 3 });
    // Two failures, then a success: only failures count on a release key.
    await throttle.reserve([ip]);
    await throttle.reserve([ip]);
    const ok = await throttle.reserve([ip, account]);
    expect(ok.allowed).toBe(true);
    if (ok.allowed) await ok.succeeded();
    expect((await server.latchkey.queries.throttle.find(ip.key))!.failures).toBe(2);
    // The third failure locks; nothing but time lifts it.
    expect((await throttle.reserve([ip])).allowed).toBe(true);
    expect((await throttle.reserve([ip, account])).allowed).toBe(false);
    // A refusal on the IP key took nothing on the account key.
    expect((await server.latchkey.queries.throttle.find(account.key))?.failures ?? 0).toBe(0);
    clock.advance(31);
    expect((await throttle.reserve([ip])).allowed).toBe(true);
  });

  test('over HTTP: a spoofed X-Forwarded-For is not a new address, and a locked address is locked for right passwords too', async () => {
    const t = await startTestServer({ clock, env: { LATCHKEY_LOGIN_IP_FAILURES: '5' } });
    try {
      const c = await aClient(t.latchkey);
      const cfg = await relyingParty(t.url, c.clientId, c.clientSecret);
      const me = await aUser(t.latchkey);
      const s = await begin(cfg);
      const wrong = (i: number) =>
        s.login.agent.request(`${s.base}/login`, { form: { _csrf: s.csrf, email: `nobody-${i}@example.test`, password: 'wrong' }, headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      const answers = [];
      for (let i = 0; i < 6; i++) answers.push((await wrong(i)).status);
      expect(answers).toEqual([401, 401, 401, 401, 401, 429]);
      expect((await send(s, '/login', { email: me.email, password: me.password })).status).toBe(429);
      // Not for good: after the window the address may try again.
      clock.advance(901);
      expect((await send(s, '/login', { email: me.email, password: me.password })).status).toBe(303);
    } finally {
      await t.close();
    }
  });

  test('an account lock holds whatever the case and spacing of the email, and ends with its time', async () => {
    const user = await aUser(server.latchkey);
    const s = await begin(config);
    const variants = [user.email.toUpperCase(), ` ${user.email} `, user.email.replace(/^./, (c) => c.toUpperCase()), `\t${user.email}`, user.email];
    for (const email of variants) expect((await send(s, '/login', { email, password: 'wrong-password' })).status).toBe(401);
    expect((await send(s, '/login', { email: user.email, password: user.password })).status).toBe(429);
    clock.advance(31);
    expect((await send(s, '/login', { email: user.email, password: user.password })).status).toBe(303);
  });
});

describe('the emailed enrolment code', () => {
  test('an expired code is refused even when right', async () => {
    const { user, s } = await atEmailConfirmation();
    const code = mail.codesTo(user.email).at(-1)!;
    clock.advance(301);
    expect((await send(s, '/enrol/email', { code })).status).toBe(401);
  });

  test('the send quota: five codes an hour, the first included, then 429 with Retry-After; the hour ending frees it', async () => {
    const { user, s } = await atEmailConfirmation();
    const resends = [];
    for (let i = 0; i < 5; i++) resends.push(await send(s, '/enrol/email/resend'));
    expect(statuses(resends)).toEqual([200, 200, 200, 200, 429]);
    expect(Number(resends[4]!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(mail.codesTo(user.email)).toHaveLength(5);
    // Not for good: an hour later (in a new sign-in, this one has expired) resending works again.
    clock.advance(3601);
    const later = await atEmailConfirmation(mailedConfig, user);
    expect((await send(later.s, '/enrol/email/resend')).status).toBe(200);
  });

});
