import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { aUser } from '../helpers/factories.js';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { recordingNotifier, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const clock = steppingClock();
const notices = recordingNotifier();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ clock, notifier: notices.notifier });
});
afterAll(() => server.close());

const secretOn = (html: string) => /id="totp-secret">([A-Z2-7 ]+)</.exec(html)![1]!.replace(/ /g, '');

describe('the account security page', () => {
  test('signs the user in through the normal login and shows that MFA is off', async () => {
    const user = await aUser(server.latchkey);
    const { page } = await consoleSignIn(server.url, user.email, user.password);
    expect(page.url).toBe(`${server.url}/account/security`);
    expect(page.html).toContain('Two-step verification is off');
    expect(page.html).toContain(user.email);
  });

  test('the password typed at sign-in counts as recent: adding an authenticator shows a QR code, then recovery codes once', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password);

    const enrol = await agent.submit(page, '/account/security/enrol/totp');
    expect(enrol.html).toMatch(/<img id="totp-qr" src="data:image\/png;base64,/);
    const secret = secretOn(enrol.html);
    const refused = await agent.submit(enrol, '', { code: '000000' });
    expect(refused.status).toBe(401);
    const codes = await agent.submit(refused, '', { code: referenceTotp(secret, clock.now()) });
    expect(codes.html.match(/<li><code>[0-9A-Z]{5}-[0-9A-Z]{5}<\/code><\/li>/g)).toHaveLength(10);

    const security = await agent.submit(codes, '/account/security/done');
    expect(security.html).toContain('Authenticator app');
    expect(security.html).toContain('Preferred');
    expect(security.html).toContain('Recovery codes left: 10');
    expect(notices.eventsFor(user.id)).toContain('factor_added');
    expect((await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.enrol' }))[0]).toMatchObject({ outcome: 'success' });
  });

  test('after five minutes the password is asked again, and the right one goes on with the action the user started', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password);
    for (let i = 0; i < 11; i++) clock.nextStep();

    const asked = await agent.submit(page, '/account/security/enrol/totp');
    expect(asked.status).toBe(401);
    expect(asked.html).toContain('Confirm it&#39;s you');
    expect(asked.html).toContain('name="return_to" value="/account/security/enrol/totp"');
    const wrong = await agent.submit(asked, '/account/reauth', { password: 'not my password' });
    expect(wrong.status).toBe(401);
    expect(wrong.html).toContain('aria-invalid="true"');
    const resumed = await agent.submit(wrong, '/account/reauth', { password: user.password });
    // Straight on to the authenticator's set-up, not back to the list.
    expect(resumed.url).toMatch(/\/account\/security\/enrol\/totp\/[0-9a-f-]{36}$/);
    expect(resumed.html).toContain('id="totp-qr"');
  });

  test('the password page goes back only to a path of the account console', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password);
    for (const returnTo of ['https://evil.example/account', '//evil.example/account', '/account/../admin', '/account\\evil']) {
      const answer = await agent.request(`${server.url}/account/reauth`, { form: { _csrf: csrfOf(page), password: user.password, return_to: returnTo } });
      expect(answer.status).toBe(303);
      expect(answer.headers.get('location')).toBe('/account/security');
    }
  });

  test('preferred method, removal, new recovery codes and turning MFA off', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password);
    const ready = page;

    const enrolOne = await agent.submit(ready, '/account/security/enrol/totp');
    await agent.submit(enrolOne, '', { code: referenceTotp(secretOn(enrolOne.html), clock.now()) });
    const enrolTwo = await agent.submit(ready, '/account/security/enrol/totp');
    const afterSecond = await agent.submit(enrolTwo, '', { code: referenceTotp(secretOn(enrolTwo.html), clock.now()) });
    expect(afterSecond.url).toContain('notice=factor_added');
    const methods = await server.latchkey.mfa.methodsFor((await server.latchkey.queries.users.findById(user.id))!);
    expect(methods).toHaveLength(2);

    const preferred = await agent.visit(`${server.url}/account/security/preferred`, { form: { _csrf: csrfOf(afterSecond), method: methods[1]!.id } });
    expect(preferred.url).toContain('notice=preferred_set');
    expect((await server.latchkey.queries.users.findById(user.id))!.preferred_factor_id).toBe(methods[1]!.id);

    const before = await server.database.db('recovery_codes').where({ user_id: user.id }).pluck('code_hash');
    // Destructive actions ask first, on a page of their own (no script needed); only the confirmation acts.
    const asked = await agent.visit(`${server.url}/account/security/recovery-codes`, { form: { _csrf: csrfOf(afterSecond) } });
    expect(asked.html).toContain('Make new recovery codes? The ones you have now stop working at once.');
    expect(await server.database.db('recovery_codes').where({ user_id: user.id }).pluck('code_hash')).toEqual(before);
    const regenerated = await agent.submit(asked, '/account/security/recovery-codes');
    expect(regenerated.html.match(/<li><code>/g)).toHaveLength(10);
    const after = await server.database.db('recovery_codes').where({ user_id: user.id }).pluck('code_hash');
    expect(after.filter((h: string) => before.includes(h))).toEqual([]);

    const askedRemove = await agent.visit(`${server.url}/account/security/remove`, { form: { _csrf: csrfOf(afterSecond), method: methods[0]!.id } });
    expect(askedRemove.html).toContain('You won&#39;t be able to sign in with it any more.');
    expect(await server.database.db('user_factors').where({ user_id: user.id })).toHaveLength(2);
    const removed = await agent.submit(askedRemove, '/account/security/remove');
    expect(removed.url).toContain('notice=factor_removed');
    const askedOff = await agent.visit(`${server.url}/account/security/disable`, { form: { _csrf: csrfOf(afterSecond) } });
    expect(askedOff.html).toContain('Turn two-step verification off?');
    const off = await agent.submit(askedOff, '/account/security/disable');
    expect(off.html).toContain('Two-step verification is off');
    expect(await server.database.db('user_factors').where({ user_id: user.id })).toHaveLength(0);
    expect(await server.database.db('recovery_codes').where({ user_id: user.id })).toHaveLength(0);
    expect(notices.eventsFor(user.id)).toEqual(expect.arrayContaining(['factor_removed', 'recovery_codes_regenerated', 'mfa_disabled']));
  });

  test('forms without their CSRF token are refused', async () => {
    const user = await aUser(server.latchkey);
    const { agent } = await consoleSignIn(server.url, user.email, user.password);
    const response = await agent.request(`${server.url}/account/security/disable`, { form: { _csrf: 'guess' } });
    expect(response.status).toBe(403);
  });
});
