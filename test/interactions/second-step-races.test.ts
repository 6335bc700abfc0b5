import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import type { Page } from '../helpers/browser-agent.js';
import { csrfOf } from '../helpers/console.js';
import { aClient, aUser, CALLBACK } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { relyingParty, signInWithPassword, startLogin, type StartedLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * The second step's writes joined in one statement each (the sign-in's try with the account's guess; the time step's
 * use with the settling, its audit entry and the sign-in's move): the conditions each of them carried alone still
 * decide races over HTTP.
 */
const clock = steppingClock();
let server: TestServer;
beforeAll(async () => void (server = await startTestServer({ clock })));
afterAll(() => server.close());

let app: Promise<oidc.Configuration> | undefined;
/** The first-party app every sign-in here is for, registered with the first of them. */
const appConfig = () => (app ??= aClient(server.latchkey, { first_party: true }).then((c) => relyingParty(server.url, c.clientId, c.clientSecret)));

const uidOf = (page: Page) => /\/interaction\/([^/?]+)/.exec(page.url)![1]!;
const postCode = (login: StartedLogin, page: Page, form: Record<string, string>) =>
  login.agent.request(`${server.url}/interaction/${uidOf(page)}/mfa`, { form: { _csrf: csrfOf(page), ...form } });
const finished = (response: Response) => response.status === 303 && !!response.headers.get('location')?.includes('/auth/');

async function secondStep(user: { email: string; password: string }) {
  const login = await startLogin(await appConfig());
  const page = await signInWithPassword(login, user.email, user.password);
  expect(page.html).toContain('/mfa"');
  return { login, page };
}

/** A user with an authenticator app, at their sign-in's second step in a fresh time step, and what the tests use of it. */
async function atSecondStep() {
  const user = await aUser(server.latchkey);
  const enrolled = await enrolTotp(server.latchkey, user, clock);
  clock.nextStep();
  const { login, page } = await secondStep(user);
  const row = (await server.latchkey.queries.users.findById(user.id))!;
  const input = { methodId: enrolled.methodId, code: referenceTotp(enrolled.secret, clock.now()), pinAccepted: false, firstFailureAfterPassword: false };
  return { user, ...enrolled, login, page, uid: uidOf(page), row, input, ...server.latchkey };
}

describe('the second step, raced', () => {
  test('one TOTP code posted at once into four sign-ins of its user finishes exactly one: its time step is used once', async () => {
    const first = await atSecondStep();
    const others = await Promise.all(Array.from({ length: 3 }, () => secondStep(first.user)));
    const sessions = [first, ...others];
    const answers = await Promise.all(sessions.map(({ login, page }) => postCode(login, page, { method: first.methodId, code: first.input.code })));
    expect(answers.filter(finished)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 401)).toHaveLength(3);
    const steps = await server.database.db('login_progress').whereIn('interaction_uid', sessions.map(({ page }) => uidOf(page))).pluck('step');
    expect(steps.sort()).toEqual(['finished', 'second_factor', 'second_factor', 'second_factor']);
    // The losers are audited as replays, the winner once as a success.
    const entries = await first.queries.audit.list({ subjectId: first.user.id, action: 'mfa.verify' });
    expect(entries.map((e) => `${e.outcome}:${e.details.reason ?? ''}`).sort()).toEqual(['failure:replayed', 'failure:replayed', 'failure:replayed', 'success:']);
  });

  test('a code whose time step another request used after this one read the factor: refused as a replay, no part of a success written', async () => {
    const { user, uid, row, input, queries, mfa } = await atSecondStep();
    const tried = (await mfa.reserveSignInTry(row, { interactionUid: uid, step: 'second_factor', limit: 5 }))!;
    // Meanwhile the same code signs in elsewhere: its time step is used.
    expect((await mfa.verifyAtSignIn(row, input, { interactionUid: 'elsewhere', locale: 'en' }, { actorId: user.id })).ok).toBe(true);
    expect(await queries.throttle.find(`mfa:consecutive:${user.id}`)).toBeUndefined();
    // This request read the factor before that: its check passes, the time step's use does not.
    const again = await mfa.reserveSignInTry(row, { interactionUid: uid, step: 'second_factor', limit: 5 });
    const outcome = await mfa.verifyAtSignIn(row, input, { interactionUid: uid, locale: 'en' }, { actorId: user.id }, { tried: { ...again!, factors: tried.factors }, advance: queries.signIns.advanceWrite(uid, user.id, 'second_factor', 'finished') });
    expect(outcome).toEqual({ ok: false, locked: false });
    expect((await queries.signIns.find(uid, new Date()))?.step).toBe('second_factor');
    expect((await queries.throttle.find(`mfa:consecutive:${user.id}`))?.failures).toBe(1);
    const entries = await queries.audit.list({ subjectId: user.id, action: 'mfa.verify' });
    expect(entries.map((e) => `${e.outcome}:${e.details.reason ?? ''}`)).toEqual(['failure:replayed', 'success:']);
  });

  test('a TOTP code and recovery codes posted at once into one sign-in: it moves on once, the others are refused', async () => {
    const { login, page, input, recoveryCodes } = await atSecondStep();
    const forms = [{ method: input.methodId, code: input.code }, ...recoveryCodes.slice(0, 4).map((code) => ({ method: 'recovery', code }))];
    const answers = await Promise.all(forms.map((form) => postCode(login, page, form)));
    expect(answers.filter(finished)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 303)).toHaveLength(1);
  });

  test('a right code read in a step the sign-in has since left spends its time step but moves nothing (a lost race)', async () => {
    const { user, uid, row, input, queries, mfa } = await atSecondStep();
    // Another request (a recovery code, say) moved the sign-in on after this one read it in `second_factor`.
    expect(await queries.signIns.advance(uid, user.id, 'second_factor', 'finished')).toBe(true);
    const outcome = await mfa.verifyAtSignIn(row, input, { interactionUid: uid, locale: 'en' }, { actorId: user.id }, { advance: queries.signIns.advanceWrite(uid, user.id, 'second_factor', 'finished') });
    expect(outcome).toMatchObject({ ok: true, moved: false });
    // As before the statements were joined: the code was good and is used up, the sign-in was not this request's to move.
    expect((await mfa.verifyAtSignIn(row, input, { interactionUid: uid, locale: 'en' }, { actorId: user.id })).ok).toBe(false);
  });

  test('wrong codes posted at once past the sign-in\'s five tries: five are taken, the account counts five', async () => {
    const { user, login, page, uid, input } = await atSecondStep();
    await Promise.all(Array.from({ length: 12 }, () => postCode(login, page, { method: input.methodId, code: '000000' })));
    expect((await server.latchkey.queries.throttle.find(`mfa:consecutive:${user.id}`))?.failures).toBe(5);
    expect(await server.database.db('login_progress').where({ interaction_uid: uid }).first()).toMatchObject({ mfa_failures: 5, step: 'finished' });
  });

  test('a try asked of a sign-in whose five are taken (its last one still being checked) touches no account counter', async () => {
    const { user, uid, row, queries, mfa } = await atSecondStep();
    const failuresSoFar = (count: number) => server.database.db('login_progress').where({ interaction_uid: uid }).update({ mfa_failures: count });
    const counter = async (kind: 'user' | 'consecutive') => (await queries.throttle.find(`mfa:${kind}:${user.id}`))?.failures;
    await failuresSoFar(5);
    expect(await mfa.reserveSignInTry(row, { interactionUid: uid, step: 'second_factor', limit: 5 })).toBeUndefined();
    expect([await counter('user'), await counter('consecutive')]).toEqual([undefined, undefined]);
    // With a try left, both are taken, and the user's factors come with them.
    await failuresSoFar(4);
    const tried = await mfa.reserveSignInTry(row, { interactionUid: uid, step: 'second_factor', limit: 5 });
    expect(tried).toMatchObject({ failures: 5, guess: { allowed: true }, factors: { confirmed: [expect.objectContaining({ factor: 'totp', user_id: user.id })] } });
    expect([await counter('user'), await counter('consecutive')]).toEqual([1, 1]);
  });

  test('the second step still finishes with the right code after wrong ones', async () => {
    const { user, login, page, input } = await atSecondStep();
    expect((await postCode(login, page, { method: input.methodId, code: '000000' })).status).toBe(401);
    const next = await login.agent.submit(page, '/mfa', { method: input.methodId, code: input.code });
    expect(next.url.startsWith(CALLBACK) || next.html.includes('/confirm"')).toBe(true);
    expect(await server.latchkey.queries.throttle.find(`mfa:consecutive:${user.id}`)).toBeUndefined();
  });
});
