import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { UserRow } from '../../src/db/users.js';
import type { OutgoingEmail } from '../../src/notify/email.js';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { queriesDuring } from '../helpers/queries.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * A door PIN becomes a web second factor only when its owner opts in from their account page, naming the code,
 * and only while it is at least 6 digits, not trivial, and nobody else's code.
 */
const mails: OutgoingEmail[] = [];
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ emailSender: { send: async (mail) => void mails.push(mail) } });
});
afterAll(() => server.close());

const byAdmin = { actorId: null };
const row = async (id: string) => (await server.latchkey.queries.users.findById(id)) as UserRow;
const pinMethods = async (id: string) => (await server.latchkey.mfa.methodsFor(await row(id))).filter((m) => m.factor === 'pin');
const signInWithPin = async (id: string, code: string) =>
  server.latchkey.mfa.verifyAtSignIn(await row(id), { methodId: 'pin', code, pinAccepted: true, firstFailureAfterPassword: false }, { interactionUid: `pin-${id}`, locale: 'en' }, { actorId: id });
const refusal = (work: Promise<unknown>) => work.then(() => 'accepted', (error: { status?: number; code?: string; field?: string }) => `${error.status} ${error.code} ${error.field}`);

describe('opting in', () => {
  test('a PIN an access admin issues is not offered at sign-in until its owner opts in', async () => {
    const user = await aUser(server.latchkey);
    await server.latchkey.access.addMfaCode(user.id, { code: '682013' }, byAdmin);
    expect(await pinMethods(user.id)).toEqual([]);
    expect((await signInWithPin(user.id, '682013')).ok).toBe(false);
    await server.latchkey.access.enableWebPin(user.id, '682013', { actorId: user.id });
    expect(await pinMethods(user.id)).toHaveLength(1);
    expect((await signInWithPin(user.id, '682013')).ok).toBe(true);
  });

  test('opting in names one of the user’s own MFA codes, of 6 digits or more, not trivial, held by nobody else', async () => {
    const [user, other] = [await aUser(server.latchkey), await aUser(server.latchkey)];
    for (const code of ['4826', '123456', '777777', '503918', '719264', '847302']) await server.latchkey.access.addMfaCode(user.id, { code }, byAdmin);
    await server.latchkey.access.addMfaCode(other.id, { code: '503918' }, byAdmin);
    await server.latchkey.access.setEntryCode(user.id, { code: '719264' }, byAdmin);
    const enable = (code: string) => refusal(server.latchkey.access.enableWebPin(user.id, code, { actorId: user.id }));
    expect(await enable('905512')).toBe('400 pin_not_found code'); // not one of theirs
    expect(await enable('4826')).toBe('400 pin_not_eligible code'); // too short for the web
    expect(await enable('123456')).toBe('400 pin_not_eligible code'); // trivial
    expect(await enable('777777')).toBe('400 pin_not_eligible code');
    expect(await enable('503918')).toBe('400 pin_not_eligible code'); // another user has it
    expect(await enable('719264')).toBe('400 pin_not_eligible code'); // also their entry code, typed in view of anyone
    expect(await pinMethods(user.id)).toEqual([]);
    expect(await enable('847302')).toBe('accepted');
    expect(await pinMethods(user.id)).toHaveLength(1);
    // Only the named code signs in, not their other codes.
    expect((await signInWithPin(user.id, '503918')).ok).toBe(false);
    expect((await signInWithPin(user.id, '847302')).ok).toBe(true);
  });

  test('guessing one’s way into an opt-in is limited', async () => {
    const user = await aUser(server.latchkey);
    await server.latchkey.access.addMfaCode(user.id, { code: '630518' }, byAdmin);
    for (let i = 0; i < 5; i++) expect(await refusal(server.latchkey.access.enableWebPin(user.id, String(100200 + i * 37), { actorId: user.id }))).toBe('400 pin_not_found code');
    expect(await refusal(server.latchkey.access.enableWebPin(user.id, '630518', { actorId: user.id }))).toBe('429 too_many_attempts code');
  });

  test('another user getting the same code later ends the PIN’s use on the web; so does changing or removing it', async () => {
    const [user, other] = [await aUser(server.latchkey), await aUser(server.latchkey)];
    const issued = await server.latchkey.access.addMfaCode(user.id, { code: '295037' }, byAdmin);
    await server.latchkey.access.enableWebPin(user.id, '295037', { actorId: user.id });
    const second = await server.latchkey.access.addMfaCode(other.id, { code: '295037' }, byAdmin);
    expect(await pinMethods(user.id)).toEqual([]);
    expect((await signInWithPin(user.id, '295037')).ok).toBe(false);
    await server.latchkey.access.removeCode(other.id, second.id, byAdmin);
    expect(await pinMethods(user.id)).toHaveLength(1);
    await server.latchkey.access.updateCode(user.id, issued.id, { code: '295038' }, byAdmin);
    expect(await pinMethods(user.id)).toEqual([]);
    expect((await server.latchkey.access.webPinStatus(user.id)).enabled).toBeNull();
    await server.latchkey.access.enableWebPin(user.id, '295038', { actorId: user.id });
    expect(await pinMethods(user.id)).toHaveLength(1);
    await server.latchkey.access.removeCode(user.id, issued.id, byAdmin);
    expect(await pinMethods(user.id)).toEqual([]);
  });

  test('the sign-in asks the database once to offer the PIN and once to check it', async () => {
    const user = await aUser(server.latchkey);
    await server.latchkey.access.addMfaCode(user.id, { code: '381560' }, byAdmin);
    await server.latchkey.access.enableWebPin(user.id, '381560', { actorId: user.id });
    expect(await queriesDuring(server.database.db, () => server.latchkey.access.webPinSince(user.id))).toHaveLength(1);
    let found: unknown;
    expect(await queriesDuring(server.database.db, async () => (found = await server.latchkey.access.findWebPin(user.id, '381560')))).toHaveLength(1);
    expect(found).toBeTruthy();
  });
});

describe('telling the user', () => {
  test('a PIN issued or changed is mailed to its owner, in their language, without the code', async () => {
    const user = await aUser(server.latchkey);
    const korean = await aUser(server.latchkey, { locale: 'ko' });
    const issued = await server.latchkey.access.addMfaCode(user.id, { generate: { length: 8 } }, byAdmin);
    await server.latchkey.access.updateCode(user.id, issued.id, { code: '60391748' }, byAdmin);
    await server.latchkey.access.addMfaCode(korean.id, { code: '518094' }, byAdmin);
    const to = (email: string) => mails.filter((m) => m.to === email);
    expect(to(user.email).map((m) => m.subject)).toEqual(['A door PIN was issued to you', 'Your door PIN was changed']);
    expect(to(korean.email).map((m) => m.subject)).toEqual(['출입문 PIN이 발급되었습니다']);
    for (const mail of [...to(user.email), ...to(korean.email)]) {
      for (const code of [issued.code, '60391748', '518094']) expect(mail.text + mail.html).not.toContain(code);
    }
  });
});

describe('the account page', () => {
  test('shows the PIN state; opting in and out (with the password typed at sign-in)', async () => {
    const user = await aUser(server.latchkey);
    await server.latchkey.access.addMfaCode(user.id, { code: '716204' }, byAdmin);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password);
    expect(page.html).toContain('action="/account/security/pin"');
    const wrong = await agent.visit(`${server.url}/account/security/pin`, { form: { _csrf: csrfOf(page), code: '716205' } });
    expect(wrong.status).toBe(400);
    expect(wrong.html).toMatch(/id="door-pin"[^>]*aria-invalid="true" aria-describedby="door-pin-error"/);
    expect(await pinMethods(user.id)).toEqual([]);
    const enabled = await agent.visit(`${server.url}/account/security/pin`, { form: { _csrf: csrfOf(wrong), code: '716204' } });
    expect(enabled.url).toContain('notice=pin_enabled');
    expect(enabled.html).toContain('data-web-pin="on"');
    expect(enabled.html).not.toContain('716204');
    expect(await pinMethods(user.id)).toHaveLength(1);
    const off = await agent.visit(`${server.url}/account/security/pin/disable`, { form: { _csrf: csrfOf(enabled) } });
    expect(off.url).toContain('notice=pin_disabled');
    expect(off.html).toContain('action="/account/security/pin"');
    expect(await pinMethods(user.id)).toEqual([]);
  });
});
