import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const clock = steppingClock();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ clock });
});
afterAll(() => server.close());

const operator = { actorId: null };
const setEnforcement = (on: boolean) => server.latchkey.mfa.setEnforcement(on, operator);
afterEach(() => setEnforcement(false));

const isEnrolmentPage = (html: string) => html.includes('id="totp-qr"');
const secretOn = (html: string) => /id="totp-secret">([A-Z2-7 ]+)</.exec(html)![1]!.replace(/ /g, '');
const stepUpsOf = (userId: string) => server.latchkey.queries.audit.list({ subjectId: userId, action: 'mfa.step_up_required' });

describe('a console session made with a password only, once the policy asks for more', () => {
  test('an admin\'s next /admin page under enforcement goes through enrolment, not served; afterwards it is', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { agent, page } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/users');
    expect(page.url).toBe(`${server.url}/admin/users`);
    expect(page.html).toContain(admin.email);

    await setEnforcement(true);
    const stepUp = await agent.visit(`${server.url}/admin/users`);
    expect(stepUp.url).toContain('/interaction/');
    expect(stepUp.html).not.toContain(admin.email);
    // The session's password stands: only the missing second factor is asked for (here: set up, as none exists).
    expect(stepUp.html).not.toContain('name="password"');
    expect(isEnrolmentPage(stepUp.html)).toBe(true);
    expect(await stepUpsOf(admin.id)).toEqual([expect.objectContaining({ outcome: 'denied', actor_id: admin.id })]);

    const codes = await agent.submit(stepUp, '/enrol', { code: referenceTotp(secretOn(stepUp.html), clock.now()) });
    const served = await agent.submit(codes, '/continue');
    expect(served.url).toBe(`${server.url}/admin/users`);
    expect(served.status).toBe(200);
    expect(served.html).toContain(admin.email);
  });

  test('an admin who enrolled a factor since steps up with that factor alone, then the admin pages are served', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { agent } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/users');
    const { secret } = await enrolTotp(server.latchkey, admin, clock);
    clock.nextStep();

    // Their own account pages are not held up: enrolling is something they just did in this session.
    expect((await agent.visit(`${server.url}/account/profile`)).url).toBe(`${server.url}/account/profile`);

    const stepUp = await agent.visit(`${server.url}/admin/users`);
    expect(stepUp.url).toContain('/interaction/');
    expect(stepUp.html).not.toContain('name="password"');
    expect(stepUp.html).toContain('name="code"');
    const wrong = await agent.submit(stepUp, '/mfa', { code: '000000' });
    expect(wrong.status).toBe(401);
    const served = await agent.submit(wrong, '/mfa', { code: referenceTotp(secret, clock.now()) });
    expect(served.url).toBe(`${server.url}/admin/users`);
    expect(served.html).toContain(admin.email);
  });

  test('a form posted from a stale admin session is not acted on', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { agent, page } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/settings');
    const version = /name="version" value="(\d+)"/.exec(page.html)![1]!;
    await setEnforcement(true);
    // The admin (or whoever holds their old cookie) tries to switch enforcement off again without a second factor.
    const attempt = await agent.request(`${server.url}/admin/settings/enforce-mfa`, { form: { _csrf: csrfOf(page), version: String(Number(version) + 1) } });
    expect(attempt.status).toBe(302);
    expect(attempt.headers.get('location')).toContain('acr_values=urn%3Alatchkey%3Aacr%3Amfa');
    expect((await server.latchkey.mfa.readEnforcement()).value).toBe(true);
  });

  test('account pages under enforcement step up too, for users without an admin role', async () => {
    const user = await aUser(server.latchkey);
    const { agent } = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    await setEnforcement(true);
    const stepUp = await agent.visit(`${server.url}/account/profile`);
    expect(stepUp.url).toContain('/interaction/');
    expect(isEnrolmentPage(stepUp.html)).toBe(true);
    const codes = await agent.submit(stepUp, '/enrol', { code: referenceTotp(secretOn(stepUp.html), clock.now()) });
    expect((await agent.submit(codes, '/continue')).url).toBe(`${server.url}/account/profile`);
  });

  test('with enforcement off, an admin without a factor keeps working with a password, as before', async () => {
    const admin = await aUser(server.latchkey, { roles: ['auditor'] });
    const { agent, page } = await consoleSignIn(server.url, admin.email, admin.password, '/admin/audit');
    expect(page.url).toBe(`${server.url}/admin/audit`);
    expect((await agent.visit(`${server.url}/admin/audit`)).url).toBe(`${server.url}/admin/audit`);
    expect(await stepUpsOf(admin.id)).toHaveLength(0);
  });
});
