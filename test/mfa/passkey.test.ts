import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Factor, Method, SignInContext } from '../../src/mfa/factor.js';
import { createPasskeyFactor } from '../../src/mfa/factors/passkey/index.js';
import { relyingPartyFor } from '../../src/mfa/factors/passkey/webauthn.js';
import { aUser } from '../helpers/factories.js';
import { manualClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { assert, type Ceremony, createCredential, type SoftCredential } from '../helpers/soft-authenticator.js';

const clock = manualClock();
const rp = relyingPartyFor('https://id.example.test', 'Latchkey');
let server: TestServer;
let factor: Factor;
beforeAll(async () => {
  server = await startTestServer({ clock });
  const { queries, box } = server.latchkey;
  factor = createPasskeyFactor({ queries, box, clock, issuerName: 'Latchkey' }, rp);
});
afterAll(() => server.close());

const signIn = (): SignInContext => ({ interactionUid: crypto.randomUUID(), locale: 'en' });
const ceremony = (challenge: string, overrides: Partial<Ceremony> = {}): Ceremony => ({ rpId: rp.id, origin: rp.origin, challenge, ...overrides });

/** A user with one passkey registered through the factor's own enrolment. */
async function withPasskey(options: { backupEligible?: boolean; userVerified?: boolean } = {}) {
  const user = await aUser(server.latchkey);
  const enrolling = { id: user.id, email: user.email, locale: 'en' as const };
  const { pendingId } = await factor.enrol!.start(enrolling, { label: 'Test key' });
  const pending = (await server.latchkey.queries.factors.findPending(user.id, pendingId, clock.now()))!;
  const display = await factor.enrol!.display(enrolling, pending);
  const options_ = display.ceremony as { challenge: string; rp: { id: string } };
  expect(options_.rp.id).toBe('id.example.test');
  const made = createCredential(ceremony(options_.challenge), user, options);
  const confirmed = await factor.enrol!.confirm(enrolling, pendingId, made.response);
  if (!confirmed.ok) throw new Error(`registration refused: ${confirmed.reason}`);
  return { user, method: confirmed.method, credential: made.credential };
}

/** Asks the factor for a sign-in's options (which stores their challenge) and returns that challenge. */
async function challengeFor(method: Method, context: SignInContext) {
  return ((await factor.ceremony!.options([method], context)) as { challenge: string }).challenge;
}

async function answer(method: Method, credential: SoftCredential, flags: Parameters<typeof assert>[2] = {}, context = signIn(), tweak: Partial<Ceremony> = {}) {
  const response = assert(credential, ceremony(await challengeFor(method, context), tweak), flags);
  return { response, context, outcome: await factor.verify(method, response, context) };
}

describe('passkey registration', () => {
  test('records the credential, device-bound or synced, with its key sealed to the row', async () => {
    const { method } = await withPasskey();
    expect(method).toMatchObject({ factor: 'passkey', label: 'Test key', detail: 'device_bound' });
    expect((await withPasskey({ backupEligible: true })).method.detail).toBe('synced');
    expect(method.record.secret_sealed).toMatch(/^v1\./);
  });

  test('a credential made for another RP ID or on another origin is refused', async () => {
    const user = await aUser(server.latchkey);
    const enrolling = { id: user.id, email: user.email, locale: 'en' as const };
    for (const tweak of [{ rpId: 'evil.example' }, { origin: 'https://id.example.test.evil.example' }]) {
      const { pendingId } = await factor.enrol!.start(enrolling, {});
      const pending = (await server.latchkey.queries.factors.findPending(user.id, pendingId, clock.now()))!;
      const { challenge } = (await factor.enrol!.display(enrolling, pending)).ceremony as { challenge: string };
      const made = createCredential(ceremony(challenge, tweak), user);
      expect(await factor.enrol!.confirm(enrolling, pendingId, made.response)).toMatchObject({ ok: false, reason: 'rpId' in tweak ? 'wrong_rp_id' : 'wrong_origin' });
    }
  });
});

describe('passkey verification', () => {
  test('a fresh assertion passes and says what it proved: hwk or swk, and user when the user was verified', async () => {
    const bound = await withPasskey();
    expect((await answer(bound.method, bound.credential)).outcome).toEqual({ ok: true, amr: ['hwk', 'user'] });
    const synced = await withPasskey({ backupEligible: true });
    expect((await answer(synced.method, synced.credential)).outcome).toEqual({ ok: true, amr: ['swk', 'user'] });
    expect((await answer(bound.method, bound.credential, { userVerified: false })).outcome).toEqual({ ok: true, amr: ['hwk'] });
  });

  test('a replayed assertion is refused: its challenge was taken by the first use', async () => {
    const { method, credential } = await withPasskey();
    const first = await answer(method, credential);
    expect(first.outcome.ok).toBe(true);
    expect(await factor.verify(method, first.response, first.context)).toEqual({ ok: false, reason: 'wrong_challenge' });
  });

  test('a synced passkey (no counter) replayed is refused too', async () => {
    const { method, credential } = await withPasskey({ backupEligible: true });
    const first = await answer(method, credential, { counter: 0 });
    expect(first.outcome.ok).toBe(true);
    expect(await factor.verify(method, first.response, first.context)).toEqual({ ok: false, reason: 'wrong_challenge' });
  });

  test('a counter that goes backwards (or stands still) is refused', async () => {
    const { method, credential } = await withPasskey();
    expect((await answer(method, credential, { counter: 5 })).outcome.ok).toBe(true);
    expect((await answer(method, credential, { counter: 3 })).outcome).toEqual({ ok: false, reason: 'counter_regressed' });
    expect((await answer(method, credential, { counter: 5 })).outcome).toEqual({ ok: false, reason: 'counter_regressed' });
    expect((await answer(method, credential, { counter: 6 })).outcome.ok).toBe(true);
  });

  test('an assertion made on another origin is refused (a relaying look-alike site)', async () => {
    const { method, credential } = await withPasskey();
    const { outcome } = await answer(method, credential, {}, signIn(), { origin: 'https://id-example.test' });
    expect(outcome).toEqual({ ok: false, reason: 'wrong_origin' });
  });

  test('an assertion for another RP ID is refused', async () => {
    const { method, credential } = await withPasskey();
    const { outcome } = await answer(method, credential, {}, signIn(), { rpId: 'example.test' });
    expect(outcome).toEqual({ ok: false, reason: 'wrong_rp_id' });
  });

  test('an assertion over a challenge we did not issue, or issued to another sign-in, is refused', async () => {
    const { method, credential } = await withPasskey();
    const invented = assert(credential, ceremony(crypto.randomBytes(32).toString('base64url')));
    expect(await factor.verify(method, invented, signIn())).toEqual({ ok: false, reason: 'wrong_challenge' });
    const other = signIn();
    const forOther = assert(credential, ceremony(await challengeFor(method, other)));
    expect(await factor.verify(method, forOther, signIn())).toEqual({ ok: false, reason: 'wrong_challenge' });
    // Compared exactly: the same challenge with a character changed is another challenge.
    const mine = signIn();
    const challenge = await challengeFor(method, mine);
    const changed = challenge.slice(0, -1) + (challenge.endsWith('A') ? 'B' : 'A');
    expect(await factor.verify(method, assert(credential, ceremony(changed)), mine)).toEqual({ ok: false, reason: 'wrong_challenge' });
  });

  test('a challenge expires after five minutes; a newer one replaces the older', async () => {
    const { method, credential } = await withPasskey();
    const late = signIn();
    const stale = assert(credential, ceremony(await challengeFor(method, late)));
    clock.advance(5 * 60 + 1);
    expect(await factor.verify(method, stale, late)).toEqual({ ok: false, reason: 'wrong_challenge' });
    const twice = signIn();
    const older = assert(credential, ceremony(await challengeFor(method, twice)));
    await challengeFor(method, twice);
    expect(await factor.verify(method, older, twice)).toEqual({ ok: false, reason: 'wrong_challenge' });
  });

  test('a forged signature is refused', async () => {
    const { method, credential } = await withPasskey();
    const context = signIn();
    const response = JSON.parse(assert(credential, ceremony(await challengeFor(method, context))));
    const impostor = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const data = Buffer.concat([Buffer.from(response.response.authenticatorData, 'base64url'), crypto.createHash('sha256').update(Buffer.from(response.response.clientDataJSON, 'base64url')).digest()]);
    response.response.signature = crypto.sign('sha256', data, impostor).toString('base64url');
    expect(await factor.verify(method, JSON.stringify(response), context)).toEqual({ ok: false, reason: 'wrong_code' });
  });

  test("another user's passkey does not answer for this user", async () => {
    const mine = await withPasskey();
    const theirs = await withPasskey();
    const context = signIn();
    const response = assert(theirs.credential, ceremony(await challengeFor(mine.method, context)));
    expect(await factor.verify(mine.method, response, context)).toEqual({ ok: false, reason: 'unknown_credential' });
  });

  test('passwordless needs user verification: the same authenticator without it is a second factor only', async () => {
    const { method, credential } = await withPasskey();
    const context = { ...signIn(), passwordless: true };
    const options = (await factor.ceremony!.passwordless!.options(context)) as { challenge: string; userVerification: string; allowCredentials?: unknown[] };
    expect(options.userVerification).toBe('required');
    expect(options.allowCredentials ?? []).toEqual([]);
    const response = assert(credential, ceremony(options.challenge), { userVerified: false });
    const identified = await factor.ceremony!.passwordless!.identify(response);
    expect(identified?.id).toBe(method.id);
    expect(await factor.verify(identified!, response, context)).toEqual({ ok: false, reason: 'no_user_verification' });
  });

  test("the login page's challenge is stored nowhere, yet answers once, for its own sign-in, within five minutes", async () => {
    const { method, credential } = await withPasskey();
    const { db } = server.latchkey.queries;
    const passwordless = async (context: SignInContext, tweak: (challenge: string) => string = (c) => c) => {
      const before = await db('webauthn_challenges').count({ n: '*' }).first();
      const { challenge } = (await factor.ceremony!.passwordless!.options(context)) as { challenge: string };
      expect(await db('webauthn_challenges').count({ n: '*' }).first()).toEqual(before);
      return assert(credential, ceremony(tweak(challenge)));
    };
    const context = { ...signIn(), passwordless: true };
    const response = await passwordless(context);
    expect(await factor.verify(method, response, context)).toEqual({ ok: true, amr: ['hwk', 'user'] });
    // A replay (the same assertion, or another one over the same challenge) finds it spent.
    expect(await factor.verify(method, response, context)).toEqual({ ok: false, reason: 'wrong_challenge' });
    const [challenge] = /"challenge":"([^"]+)"/.exec(Buffer.from(JSON.parse(response).response.clientDataJSON, 'base64url').toString())!.slice(1);
    expect(await factor.verify(method, assert(credential, ceremony(challenge!), { counter: 99 }), context)).toEqual({ ok: false, reason: 'wrong_challenge' });
    // Another sign-in's, a changed one, an expired one, and the second step's stored one do not answer.
    const other = { ...signIn(), passwordless: true };
    expect(await factor.verify(method, await passwordless(other), context)).toEqual({ ok: false, reason: 'wrong_challenge' });
    const changed = await passwordless(context, (c) => c.slice(0, -2) + (c.endsWith('AA') ? 'BB' : 'AA'));
    expect(await factor.verify(method, changed, context)).toEqual({ ok: false, reason: 'wrong_challenge' });
    const late = await passwordless(context);
    clock.advance(5 * 60 + 1);
    expect(await factor.verify(method, late, context)).toEqual({ ok: false, reason: 'wrong_challenge' });
    const stepTwo = assert(credential, ceremony(await challengeFor(method, context)));
    expect(await factor.verify(method, stepTwo, context)).toEqual({ ok: false, reason: 'wrong_challenge' });
    // Nor does the login page's challenge answer the second step.
    const fromLoginPage = await passwordless(context);
    expect(await factor.verify(method, fromLoginPage, { ...context, passwordless: false })).toEqual({ ok: false, reason: 'wrong_challenge' });
  });

  test("the login page's challenge answers once however it is spelled: another spelling of the same bytes is a replay", async () => {
    // A synced passkey keeps no counter: the spent record is all that stops a second answer. base64url has other
    // spellings of the same bytes (the last character's unused bits, padding, a suffix after a dot), and a signer can
    // put any of them in its client data.
    const { method, credential } = await withPasskey({ backupEligible: true });
    const context = { ...signIn(), passwordless: true };
    const { challenge } = (await factor.ceremony!.passwordless!.options(context)) as { challenge: string };
    expect(await factor.verify(method, assert(credential, ceremony(challenge), { counter: 0 }), context)).toMatchObject({ ok: true });
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(challenge.at(-1)!);
    const spellings = [`${challenge.slice(0, -1)}${alphabet[last ^ 1]}`, `${challenge}=`, `${challenge}.x`, ` ${challenge}`];
    for (const spelling of spellings) {
      expect(await factor.verify(method, assert(credential, ceremony(spelling), { counter: 0 }), context)).toEqual({ ok: false, reason: 'wrong_challenge' });
    }
  });

  test('concurrent answers over one login page challenge: exactly one is taken', async () => {
    const { method, credential } = await withPasskey({ backupEligible: true });
    const context = { ...signIn(), passwordless: true };
    const { challenge } = (await factor.ceremony!.passwordless!.options(context)) as { challenge: string };
    const responses = Array.from({ length: 8 }, () => assert(credential, ceremony(challenge), { counter: 0 }));
    const outcomes = await Promise.all(responses.map((r) => factor.verify(method, r, context)));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
  });

  test('a key planted in the database without the master key does not verify', async () => {
    const { method, credential, user } = await withPasskey();
    const { db } = server.latchkey.queries;
    const other = await withPasskey();
    // Copy another passkey's sealed key onto this row: it was sealed for another row, so it does not open.
    const sealed = (await db('user_factors').where({ id: other.method.id }).first()).secret_sealed;
    await db('user_factors').where({ id: method.id, user_id: user.id }).update({ secret_sealed: sealed });
    expect((await answer(method, credential)).outcome).toEqual({ ok: false, reason: 'unknown_credential' });
  });

  test('malformed and oversized responses are refused as such', async () => {
    const { method } = await withPasskey();
    for (const bad of ['', 'not json', '{}', JSON.stringify({ id: 'x'.repeat(5000), rawId: 'x', type: 'public-key', response: {} })]) {
      expect(await factor.verify(method, bad, signIn())).toEqual({ ok: false, reason: 'malformed' });
    }
  });
});
