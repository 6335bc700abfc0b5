import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { ACR } from '../../src/mfa/policy.js';
import { accessTokenFor, adminApiTokens, apiClient } from '../helpers/admin-api.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const clock = steppingClock();
let server: TestServer;
let api: ReturnType<typeof apiClient>;
beforeAll(async () => {
  server = await startTestServer({ clock });
  api = apiClient(server.url);
});
afterAll(() => server.close());

const operator = { actorId: null };
const setEnforcement = (on: boolean) => server.latchkey.mfa.setEnforcement(on, operator);
afterEach(() => setEnforcement(false));

const readSetting = (token: string) => api('GET', '/api/admin/settings/enforce-mfa', token);

function expectStepUpChallenge(response: Awaited<ReturnType<typeof readSetting>>) {
  expect(response.status).toBe(401);
  // RFC 9470 section 3: the error, and the acr the client should ask for in its next authorization request.
  expect(response.headers.get('www-authenticate')).toBe(
    `Bearer error="insufficient_user_authentication", error_description="a sign-in with a second factor is required", acr_values="${ACR.mfa}"`,
  );
  expect(response.headers.get('content-type')).toContain('application/problem+json');
  expect(response.json).toMatchObject({ status: 401, code: 'insufficient_user_authentication' });
}

describe('admin-API tokens follow the MFA policy in force when they are used', () => {
  test('a token from a password-only sign-in is refused once enforcement is switched on, with RFC 9470\'s challenge', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const token = await accessTokenFor(server.latchkey, server.url, admin);
    expect((await readSetting(token)).status).toBe(200);

    await setEnforcement(true);
    expectStepUpChallenge(await readSetting(token));
    // A burst of requests with the stale token: not one gets through.
    const burst = await Promise.all(Array.from({ length: 40 }, () => readSetting(token)));
    expect(burst.map((r) => r.status)).toEqual(Array(40).fill(401));
    // Writes are refused the same way: the stale token cannot switch enforcement back off.
    expectStepUpChallenge(await api('PUT', '/api/admin/settings/enforce-mfa', token, { enabled: false }));
    expect((await server.latchkey.mfa.readEnforcement()).value).toBe(true);
    const audit = await server.latchkey.queries.audit.list({ subjectId: admin.id, action: 'mfa.step_up_required' });
    expect(audit[0]).toMatchObject({ outcome: 'denied', actor_id: admin.id });

    await setEnforcement(false);
    expect((await readSetting(token)).status).toBe(200);
  });

  test('a token from password + TOTP keeps working under enforcement, and so does one refreshed from it', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { secret } = await enrolTotp(server.latchkey, admin, clock);
    clock.nextStep();
    const { config, tokens } = await adminApiTokens(server.latchkey, server.url, admin, { code: referenceTotp(secret, clock.now()) });
    await setEnforcement(true);
    expect((await readSetting(tokens.access_token)).status).toBe(200);
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect((await readSetting(refreshed.access_token)).status).toBe(200);
  });

  test('refreshing a password-only token does not launder it: the new token is refused too', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const { config, tokens } = await adminApiTokens(server.latchkey, server.url, admin);

    await setEnforcement(true);
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expectStepUpChallenge(await readSetting(refreshed.access_token));
  });

  test('an admin who enrolled a factor since their password-only token was issued must step up', async () => {
    const auditor = await aUser(server.latchkey, { roles: ['auditor'] });
    const token = await accessTokenFor(server.latchkey, server.url, auditor);
    expect((await api('GET', '/api/admin/audit', token)).status).toBe(200);
    await enrolTotp(server.latchkey, auditor, clock);
    expectStepUpChallenge(await api('GET', '/api/admin/audit', token));
  });

  test('a token from another app is refused as before, not asked to step up; so is one of a user without rights', async () => {
    const admin = await aUser(server.latchkey, { roles: ['super_admin'] });
    const user = await aUser(server.latchkey);
    const otherApp = await accessTokenFor(server.latchkey, server.url, admin, false);
    const noRights = await accessTokenFor(server.latchkey, server.url, user);
    expect((await readSetting(noRights)).status).toBe(403);
    await setEnforcement(true);
    // The token's client is checked before its sign-in: an app not registered for the admin API has nothing to step up to.
    expect((await readSetting(otherApp)).status).toBe(403);
    expect((await readSetting('not-a-real-token-at-all')).headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });
});
