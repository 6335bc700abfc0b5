import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The account pages' forms: a refusal comes back on the same form, typed values kept (never a password), on the field. */
const clock = steppingClock();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ clock });
});
afterAll(() => server.close());

describe('account forms', () => {
  test('an unknown time zone: the profile form again with the name kept and the error on the time zone', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    const bad = await agent.visit(`${server.url}/account/profile`, { form: { _csrf: csrfOf(page), name: 'Ada Typed', locale: 'ko', time_zone: 'Mars/Olympus' } });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('id="name" name="name" type="text" value="Ada Typed"');
    expect(bad.html).toMatch(/<option value="ko" selected>/);
    expect(bad.html).toMatch(/id="time_zone" name="time_zone" type="text" value="Mars\/Olympus"[^>]*aria-invalid="true" aria-describedby="time_zone-help time_zone-error"/);
    expect(bad.html).toContain('id="time_zone-error">That time zone is unknown.');
    expect((await server.latchkey.queries.users.findById(user.id))!.name).not.toBe('Ada Typed');

    // Saved: 303 See Other to the page, so that Back never posts the form again.
    const good = await agent.request(`${server.url}/account/profile`, { form: { _csrf: csrfOf(bad), name: 'Ada Typed', locale: '', time_zone: 'Asia/Seoul' } });
    expect(good.status).toBe(303);
    expect(good.headers.get('location')).toBe('/account/profile?notice=profile_saved');
  });

  test('a weak or mismatched new password: the error on its field, and no password is sent back into the page', async () => {
    const user = await aUser(server.latchkey);
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    const short = await agent.visit(`${server.url}/account/password`, { form: { _csrf: csrfOf(page), current_password: user.password, new_password: 'short', new_password_again: 'short' } });
    expect(short.status).toBe(400);
    expect(short.html).toMatch(/id="new_password" name="new_password" type="password" value=""[^>]*aria-invalid="true" aria-describedby="new_password-error"/);
    expect(short.html).toContain('id="new_password-error">That password is too short.');
    expect(short.html).not.toContain(user.password);

    const mismatch = await agent.visit(`${server.url}/account/password`, { form: { _csrf: csrfOf(page), current_password: user.password, new_password: 'a long unusual passphrase 1', new_password_again: 'a long unusual passphrase 2' } });
    expect(mismatch.status).toBe(400);
    expect(mismatch.html).toMatch(/id="new_password_again"[^>]*aria-invalid="true"/);
    expect(mismatch.html).not.toContain('a long unusual passphrase');
  });

  test('a nickname too long: the error on that method\'s name field only', async () => {
    const user = await aUser(server.latchkey);
    const { methodId, secret } = await enrolTotp(server.latchkey, user, clock);
    clock.nextStep();
    const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/security', referenceTotp(secret, clock.now()));
    const bad = await agent.visit(`${server.url}/account/security/rename`, { form: { _csrf: csrfOf(page), method: methodId, label: 'x'.repeat(61) } });
    expect(bad.status).toBe(400);
    expect(bad.html).toMatch(new RegExp(`id="rename-${methodId}"[^>]*aria-invalid="true"`));
    const named = await agent.visit(`${server.url}/account/security/rename`, { form: { _csrf: csrfOf(page), method: methodId, label: 'Work phone' } });
    expect(named.url).toContain('notice=factor_renamed');
    expect(named.html).toContain('<strong>Work phone</strong>');
    expect(named.html).toContain('Remove<span class="visually-hidden"> (Work phone)</span>');
  });

  test('two-step verification cannot be turned off while the organisation enforces it', async () => {
    const user = await aUser(server.latchkey);
    const { secret } = await enrolTotp(server.latchkey, user, clock);
    await server.latchkey.mfa.setEnforcement(true, { actorId: user.id });
    clock.nextStep();
    try {
      const { agent, page } = await consoleSignIn(server.url, user.email, user.password, '/account/security', referenceTotp(secret, clock.now()));
      expect(page.html).not.toContain('action="/account/security/disable"');
      const refused = await agent.visit(`${server.url}/account/security/disable`, { form: { _csrf: csrfOf(page), confirm: 'yes' } });
      expect(refused.status).toBe(409);
      expect(refused.html).toContain('Your organisation requires two-step verification, so it can&#39;t be turned off.');
      expect(await server.database.db('user_factors').where({ user_id: user.id })).toHaveLength(1);
    } finally {
      await server.latchkey.mfa.setEnforcement(false, { actorId: user.id });
    }
  });
});
