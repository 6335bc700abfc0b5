import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ensureSuperAdmin } from '../../src/admin/users.js';
import { ConfigError } from '../../src/config/index.js';
import { assertPasswordAllowed } from '../../src/security/password-policy.js';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { BrowserAgent } from '../helpers/browser-agent.js';
import { consoleSignIn, csrfOf } from '../helpers/console.js';
import { APP_ORIGIN, aUser } from '../helpers/factories.js';
import { openTestDatabase } from '../helpers/database.js';
import { recordingNotifier } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const notices = recordingNotifier();
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let token: string;

beforeAll(async () => {
  server = await startTestServer({ notifier: notices.notifier, env: { LATCHKEY_ISSUER_NAME: 'Acme Identity' } });
  api = apiClient(server.url);
  token = (await anAdmin(server.latchkey, server.url, ['super_admin'])).token;
});
afterAll(() => server.close());

const refusal = async (password: string, email = 'jkim@example.test') => {
  const deps = { settings: server.latchkey.settings, issuerName: 'Acme Identity' };
  try {
    await assertPasswordAllowed(deps, password, { email });
    return undefined;
  } catch (error) {
    return (error as { code: string }).code;
  }
};

async function withMfaEnforced<T>(work: () => Promise<T>) {
  await server.latchkey.settings.write('enforce-mfa', { enabled: true });
  try {
    return await work();
  } finally {
    await server.latchkey.settings.write('enforce-mfa', { enabled: false });
  }
}

describe('the password policy (SP 800-63B-4 3.1.1.2)', () => {
  test('15 characters when a password may be the only factor; the policy minimum (8 by default) when MFA is enforced', async () => {
    expect(await refusal('fourteen chars')).toBe('password_too_short');
    expect(await refusal('fifteen chars!!')).toBeUndefined();
    await withMfaEnforced(async () => {
      expect(await refusal('zq8#Lm2!')).toBeUndefined();
      expect(await refusal('zq8#Lm2')).toBe('password_too_short');
      await server.latchkey.settings.write('password-policy', { min_length: 20 });
      expect(await refusal('nineteen characters')).toBe('password_too_short');
      await server.latchkey.settings.write('password-policy', { min_length: 8 });
    });
    await server.latchkey.settings.write('password-policy', { min_length: 20 });
    expect(await refusal('nineteen characters')).toBe('password_too_short');
    await server.latchkey.settings.write('password-policy', { min_length: 8 });
  });

  test('refuses the most common passwords and their obvious variants, in any case', async () => {
    for (const common of ['passwordpassword', '1qaz2wsx3edc4rfv', 'QWERTY123456789', 'Password2024!!!!!!', '!!!iloveyou123456', 'pass word 1234567']) {
      expect([common, await refusal(common)]).toEqual([common, 'password_common']);
    }
    await withMfaEnforced(async () => {
      for (const common of ['password', '12345678', 'iloveyou', 'Password1']) expect([common, await refusal(common)]).toEqual([common, 'password_common']);
    });
  });

  test("refuses the service's name and the user's email in a password", async () => {
    for (const context of ['latchkey2026!!!!!', 'Acme Identity 2026', 'acmeidentity2026!', 'jkim@example.test', 'Jkim 12345678901', 'example!!2024####']) {
      expect([context, await refusal(context)]).toEqual([context, 'password_context']);
    }
  });

  test('accepts long passphrases, any Unicode, no composition rules', async () => {
    for (const fine of ['correct horse battery staple', 'x'.repeat(64), '비밀번호는 길고 특별해야 합니다', 'all lower case words here', '🔑 my latch is open 🔑']) {
      expect([fine, await refusal(fine)]).toEqual([fine, undefined]);
    }
  });

  test('applies wherever a password is set: the admin API, an invitation, a password change', async () => {
    const created = await api('POST', '/api/admin/users', token, { email: 'common.pw@example.test', password: '12345678' });
    expect(created.json).toMatchObject({ status: 400, field: 'password' });
    const common = await api('POST', '/api/admin/users', token, { email: 'common.pw@example.test', password: 'passwordpassword' });
    expect(common.json).toMatchObject({ status: 400, code: 'password_common', field: 'password' });
    expect(JSON.stringify(common.json)).toContain('this password is among the most commonly used');

    const invited = await api('POST', '/api/admin/users/invitations', token, { email: 'invited.pw@example.test' });
    const userId = (invited.json.user as { id: string }).id;
    const link = notices.sent.find((n) => n.userId === userId && n.event === 'invited')!.details!.link!;
    const agent = new BrowserAgent(APP_ORIGIN);
    const page = await agent.visit(link);
    const accept = (password: string) => agent.submit(page, '', { password, password_again: password });
    const refused = await accept('password');
    expect(refused.status).toBe(400);
    expect((await accept('passwordpassword')).html).toContain('among the most commonly used');
    expect((await accept('invited.pw 2026!!!')).html).toContain('made from your email address');
    expect((await server.latchkey.queries.users.findById(userId))!.password_hash).toBeNull();

    const user = await aUser(server.latchkey);
    const signedIn = await consoleSignIn(server.url, user.email, user.password, '/account/profile');
    const change = (next: string) =>
      signedIn.agent.visit(`${server.url}/account/password`, { form: { _csrf: csrfOf(signedIn.page), current_password: user.password, new_password: next, new_password_again: next } });
    expect((await change('iloveyou')).status).toBe(400);
    const changed = await change('1qaz2wsx3edc4rfv');
    expect(changed.status).toBe(400);
    expect(changed.html).toContain('among the most commonly used');
    expect((await server.latchkey.hasher.verify((await server.latchkey.queries.users.findById(user.id))!.password_hash, user.password)).valid).toBe(true);
  });

  test('the first admin from LATCHKEY_ADMIN_PASSWORD meets it too, or the start fails naming the variable', async () => {
    const database = await openTestDatabase();
    try {
      const deps = { ...server.latchkey, queries: (await import('../../src/db/index.js')).createQueries(database.db) };
      const start = ensureSuperAdmin(deps, { email: 'root@example.test', password: 'password1234' });
      await expect(start).rejects.toThrow(ConfigError);
      await expect(start).rejects.toThrow(/LATCHKEY_ADMIN_PASSWORD: expected at least 15 characters/);
      await expect(ensureSuperAdmin(deps, { email: 'root@example.test', password: 'qwerty123456789' })).rejects.toThrow(/LATCHKEY_ADMIN_PASSWORD: this password is among the most commonly used/);
      expect(await ensureSuperAdmin(deps, { email: 'root@example.test', password: 'a long and unusual first passphrase' })).toEqual({ email: 'root@example.test', generatedPassword: undefined });
    } finally {
      await database.close();
    }
  });
});
