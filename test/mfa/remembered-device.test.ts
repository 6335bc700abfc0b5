import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { changePassword, revokeSessions } from '../../src/admin/users.js';
import { ACR, acrFor, decideMfa, satisfies } from '../../src/mfa/policy.js';
import { createRememberedDevices, publicKeySchema, REMEMBERED_DEVICE_AMR, type RememberedDevices, type SignInView } from '../../src/mfa/remembered-device/index.js';
import { aUser } from '../helpers/factories.js';
import { manualClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const clock = manualClock();
let server: TestServer;
let devices: RememberedDevices;
beforeAll(async () => {
  server = await startTestServer({ clock });
  const { queries, box, settings, mfa } = server.latchkey;
  devices = createRememberedDevices({ queries, box, clock, settings, issuer: server.url, reserveAttempt: mfa.reserveAttempt });
});
afterAll(() => server.close());

const setDays = async (days: number) => {
  const { settings } = server.latchkey;
  await settings.write('remember-device', { days });
};
beforeEach(() => setDays(30));

const actor = (user: { id: string }) => ({ actorId: user.id, ip: '203.0.113.9', userAgent: 'test' });
const signIn = (overrides: Partial<SignInView> = {}): SignInView => ({ interactionUid: crypto.randomUUID(), pinAccepted: false, phishingResistant: false, clientForbids: false, ...overrides });

/** A browser's key, as WebCrypto would make it: the public JWK goes to the server, the private key stays here. */
function aBrowserKey() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKeySchema.parse(publicKey.export({ format: 'jwk' }));
  return { jwk, sign: (payload: string) => crypto.sign('sha256', Buffer.from(payload), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url') };
}

/** A user who ticked "remember" in a browser: the device id the cookie would name, and that browser's key. */
async function rememberedUser(roles: NonNullable<Parameters<typeof aUser>[1]>['roles'] = []) {
  const created = await aUser(server.latchkey, { roles });
  const user = (await server.latchkey.queries.users.findById(created.id))!;
  const key = aBrowserKey();
  const remembered = await devices.remember(user, signIn(), key.jwk, 'Chrome, Linux', actor(user));
  if (!remembered) throw new Error('not remembered');
  return { user, password: created.password, key, deviceId: remembered.id };
}

const auditOf = (userId: string, action: string) => server.database.db('audit_events').where({ subject_id: userId, action }).orderBy('id');

describe('remembering a browser', () => {
  test('records the public key sealed to its row, for the days the setting allows, and audits it', async () => {
    const { user, deviceId } = await rememberedUser();
    const [row] = await server.database.db('remembered_devices').where({ id: deviceId });
    expect(row).toMatchObject({ user_id: user.id, label: 'Chrome, Linux', last_used_at: null });
    expect(row.public_key_sealed).toMatch(/^v1\./);
    expect(new Date(row.expires_at).getTime() - clock.now().getTime()).toBe(30 * 86_400_000);
    expect((await auditOf(user.id, 'mfa.device_remembered')).map((e) => [e.outcome, e.details.days])).toEqual([['success', 30]]);
  });

  test('is not offered where it would weaken what the sign-in must be', async () => {
    const { user } = await rememberedUser();
    expect(await devices.rememberDays(user, signIn({ phishingResistant: true }))).toBe(0);
    expect(await devices.rememberDays(user, signIn({ pinAccepted: true }))).toBe(0);
    expect(await devices.rememberDays(user, signIn({ clientForbids: true }))).toBe(0);
    await setDays(0);
    expect(await devices.rememberDays(user, signIn())).toBe(0);
    expect(await devices.remember(user, signIn(), aBrowserKey().jwk, 'x', actor(user))).toBeUndefined();
  });

  test('an admin who must use a passkey is not offered it', async () => {
    const { user } = await rememberedUser(['super_admin']);
    expect(await devices.rememberDays(user, signIn())).toBe(30);
    await server.latchkey.settings.write('admin-phishing-resistant', { required: true });
    try {
      expect(await devices.rememberDays(user, signIn())).toBe(0);
    } finally {
      await server.latchkey.settings.write('admin-phishing-resistant', { required: false });
    }
  });

  test('a public key off the curve, or not P-256, is refused at the edge', () => {
    const good = aBrowserKey().jwk;
    expect(publicKeySchema.safeParse({ ...good, y: good.x }).success).toBe(false);
    expect(publicKeySchema.safeParse({ ...good, crv: 'P-384' }).success).toBe(false);
    expect(publicKeySchema.safeParse({ ...good, d: 'private' }).data).toEqual(good);
  });
});

describe('a remembered browser at a later sign-in', () => {
  test('signs the challenge: a second factor, amr pwd pop mfa, acr mfa, never phishing resistant', async () => {
    const { user, key, deviceId } = await rememberedUser();
    const view = signIn();
    const offer = (await devices.offer(user, view, [deviceId]))!;
    expect(offer).toMatchObject({ device: deviceId });
    expect(offer.payload.split('\n').slice(0, 4)).toEqual(['latchkey remembered device v1', server.url, view.interactionUid, deviceId]);
    const outcome = await devices.verify(user, view, { device: deviceId, signature: key.sign(offer.payload) }, actor(user));
    expect(outcome).toEqual({ ok: true, amr: ['pwd', 'pop', 'mfa'] });
    expect(acrFor(REMEMBERED_DEVICE_AMR)).toBe(ACR.mfa);
    const phishingResistant = decideMfa({ enforced: false, clientRequiresMfa: false, clientRequiresPhishingResistant: true, enrolledFactors: 1, enrolledPhishingResistant: 1 });
    expect(satisfies(phishingResistant, REMEMBERED_DEVICE_AMR)).toBe(false);
    expect(satisfies(decideMfa({ enforced: true, clientRequiresMfa: true, enrolledFactors: 1 }), REMEMBERED_DEVICE_AMR)).toBe(true);
    const [row] = await server.database.db('remembered_devices').where({ id: deviceId });
    expect(row.last_used_at).not.toBeNull();
    expect((await auditOf(user.id, 'mfa.remembered_device')).map((e) => e.outcome)).toEqual(['success']);
  });

  test('a replayed answer finds no challenge', async () => {
    const { user, key, deviceId } = await rememberedUser();
    const view = signIn();
    const offer = (await devices.offer(user, view, [deviceId]))!;
    const answer = { device: deviceId, signature: key.sign(offer.payload) };
    expect((await devices.verify(user, view, answer, actor(user))).ok).toBe(true);
    expect(await devices.verify(user, view, answer, actor(user))).toMatchObject({ ok: false, reason: 'no_challenge' });
  });

  test('a signature by another key, or over other data, is refused and uses the challenge up', async () => {
    const { user, key, deviceId } = await rememberedUser();
    const view = signIn();
    let offer = (await devices.offer(user, view, [deviceId]))!;
    expect(await devices.verify(user, view, { device: deviceId, signature: aBrowserKey().sign(offer.payload) }, actor(user))).toMatchObject({ ok: false, reason: 'wrong_signature' });
    // The right key after a wrong answer: the challenge is gone.
    expect(await devices.verify(user, view, { device: deviceId, signature: key.sign(offer.payload) }, actor(user))).toMatchObject({ ok: false, reason: 'no_challenge' });

    offer = (await devices.offer(user, view, [deviceId]))!;
    const challenge = offer.payload.split('\n')[4]!;
    const elsewhere = ['latchkey remembered device v1', 'https://evil.example', view.interactionUid, deviceId, challenge].join('\n');
    expect(await devices.verify(user, view, { device: deviceId, signature: key.sign(elsewhere) }, actor(user))).toMatchObject({ ok: false, reason: 'wrong_signature' });
    offer = (await devices.offer(user, view, [deviceId]))!;
    expect(await devices.verify(user, view, { device: deviceId, signature: key.sign(challenge) }, actor(user))).toMatchObject({ ok: false, reason: 'wrong_signature' });
  });

  test("a challenge answers only its own sign-in, and only its own user's", async () => {
    const { user, key, deviceId } = await rememberedUser();
    const view = signIn();
    const offer = (await devices.offer(user, view, [deviceId]))!;
    const answer = { device: deviceId, signature: key.sign(offer.payload) };
    expect(await devices.verify(user, signIn(), answer, actor(user))).toMatchObject({ ok: false, reason: 'no_challenge' });
    const other = await rememberedUser();
    expect(await devices.verify(other.user, view, answer, actor(other.user))).toMatchObject({ ok: false, reason: 'no_challenge' });
    // Neither attempt took it: the real answer still works.
    expect((await devices.verify(user, view, answer, actor(user))).ok).toBe(true);
  });

  test("user A's device in user B's sign-in: not offered, and not accepted in place of B's own", async () => {
    const a = await rememberedUser();
    const b = await rememberedUser();
    const view = signIn();
    expect(await devices.offer(b.user, view, [a.deviceId])).toBeUndefined();
    // B's browser also remembers B: the challenge names B's device, and A's device and key do not answer it.
    const offer = (await devices.offer(b.user, view, [a.deviceId, b.deviceId]))!;
    expect(offer.device).toBe(b.deviceId);
    const forged = offer.payload.replace(b.deviceId, a.deviceId);
    expect(await devices.verify(b.user, view, { device: a.deviceId, signature: a.key.sign(forged) }, actor(b.user))).toMatchObject({ ok: false, reason: 'no_challenge' });
  });

  test('an expired device, or an expired challenge, does not answer', async () => {
    const { user, key, deviceId } = await rememberedUser();
    const view = signIn();
    let offer = (await devices.offer(user, view, [deviceId]))!;
    clock.advance(121);
    expect(await devices.verify(user, view, { device: deviceId, signature: key.sign(offer.payload) }, actor(user))).toMatchObject({ ok: false, reason: 'no_challenge' });

    offer = (await devices.offer(user, view, [deviceId]))!;
    await server.database.db('remembered_devices').where({ id: deviceId }).update({ expires_at: new Date(clock.now().getTime() - 1000) });
    expect(await devices.verify(user, view, { device: deviceId, signature: key.sign(offer.payload) }, actor(user))).toMatchObject({ ok: false, reason: 'unknown_device' });
    expect(await devices.offer(user, signIn(), [deviceId])).toBeUndefined();
  });

  test('lowering the setting shortens what was remembered before it', async () => {
    const { user, key, deviceId } = await rememberedUser();
    clock.advance(3 * 86_400);
    const view = signIn();
    const offer = (await devices.offer(user, view, [deviceId]))!;
    expect(offer).toBeDefined();
    // Remembered for 30 days three days ago; the setting now allows 2: it no longer counts.
    await setDays(2);
    expect(await devices.verify(user, view, { device: deviceId, signature: key.sign(offer.payload) }, actor(user))).toMatchObject({ ok: false, reason: 'unknown_device' });
    expect(await devices.offer(user, signIn(), [deviceId])).toBeUndefined();
    expect(await devices.list(user.id)).toEqual([]);
    await setDays(10);
    const [listed] = await devices.list(user.id);
    expect(listed!.id).toBe(deviceId);
    expect(listed!.expires_at.getTime()).toBe(listed!.created_at.getTime() + 10 * 86_400_000);
  });

  test('a forgotten device does not answer, even with a challenge already on its page', async () => {
    const { user, key, deviceId } = await rememberedUser();
    const view = signIn();
    const offer = (await devices.offer(user, view, [deviceId]))!;
    expect(await devices.forget(user, deviceId, actor(user))).toBe(true);
    expect(await devices.verify(user, view, { device: deviceId, signature: key.sign(offer.payload) }, actor(user))).toMatchObject({ ok: false });
    expect(await devices.offer(user, signIn(), [deviceId])).toBeUndefined();
    expect((await auditOf(user.id, 'mfa.remembered_device_forgotten')).map((e) => e.details.device)).toEqual([deviceId]);
  });

  test('a key row planted without the master key does not verify', async () => {
    const { user, deviceId } = await rememberedUser();
    const attacker = aBrowserKey();
    await server.database.db('remembered_devices').where({ id: deviceId }).update({ public_key_sealed: server.latchkey.box.seal(JSON.stringify(attacker.jwk), 'remembered-device:another') });
    const view = signIn();
    const offer = (await devices.offer(user, view, [deviceId]))!;
    expect(await devices.verify(user, view, { device: deviceId, signature: attacker.sign(offer.payload) }, actor(user))).toMatchObject({ ok: false, reason: 'unknown_device' });
  });

  test('40 concurrent answers to one challenge: exactly one passes', async () => {
    const { user, key, deviceId } = await rememberedUser();
    const view = signIn();
    const offer = (await devices.offer(user, view, [deviceId]))!;
    const answer = { device: deviceId, signature: key.sign(offer.payload) };
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => devices.verify(user, view, answer, actor(user))));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
  });

  test('no remembered browser answers where the setting is off or the sign-in asks for a passkey', async () => {
    const { user, key, deviceId } = await rememberedUser();
    const view = signIn();
    const offer = (await devices.offer(user, view, [deviceId]))!;
    const answer = { device: deviceId, signature: key.sign(offer.payload) };
    expect(await devices.offer(user, signIn({ phishingResistant: true }), [deviceId])).toBeUndefined();
    expect(await devices.verify(user, { ...view, phishingResistant: true }, answer, actor(user))).toMatchObject({ ok: false, reason: 'not_offered' });
    await setDays(0);
    expect(await devices.verify(user, view, answer, actor(user))).toMatchObject({ ok: false, reason: 'not_offered' });
  });
});

describe('forgetting every remembered browser', () => {
  test('on a password change, an admin MFA reset, and an admin signing the user out everywhere', async () => {
    const { hasher, queries, settings, notifier, mfa } = server.latchkey;
    const people = { queries, hasher, settings, notifier, clock, issuer: server.url, issuerName: 'Latchkey' };
    const count = (userId: string) => server.database.db('remembered_devices').where({ user_id: userId }).count<{ count: string }[]>('* as count').then((r) => Number(r[0]!.count));

    const changing = await rememberedUser();
    await changePassword(people, changing.user, changing.password, 'a brand new and long passphrase 42', actor(changing.user));
    expect(await count(changing.user.id)).toBe(0);
    expect((await auditOf(changing.user.id, 'mfa.remembered_devices_forgotten')).map((e) => e.details)).toEqual([{ count: 1, reason: 'password_change' }]);

    const reset = await rememberedUser();
    await mfa.reset(reset.user, { actorId: null });
    expect(await count(reset.user.id)).toBe(0);

    const signedOut = await rememberedUser();
    await revokeSessions(people, signedOut.user, { actorId: null });
    expect(await count(signedOut.user.id)).toBe(0);
    // Signing out one's other sessions forgets the other browsers, and keeps the one asking (its cookie names it).
    const others = await rememberedUser();
    const elsewhere = await devices.remember(others.user, signIn(), aBrowserKey().jwk, 'Firefox, Windows', actor(others.user));
    await revokeSessions(people, others.user, { actorId: others.user.id }, { sessionId: 'current-session', deviceIds: [others.deviceId] });
    expect(await server.database.db('remembered_devices').where({ user_id: others.user.id }).pluck('id')).toEqual([others.deviceId]);
    expect(elsewhere).toBeTruthy();
    expect((await auditOf(others.user.id, 'mfa.remembered_devices_forgotten')).map((e) => e.details)).toEqual([{ count: 1, reason: 'signed_out_others' }]);
  });
});
