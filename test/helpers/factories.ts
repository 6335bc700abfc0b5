import crypto from 'node:crypto';
import type { Latchkey } from '../../src/app.js';
import { createUser, type NewUserInput } from '../../src/admin/users.js';
import type { ClientRegistration } from '../../src/oidc/clients.js';

/** The pretend app: nothing listens there, the test's browser stops when it is sent back to it. */
export const APP_ORIGIN = 'http://127.0.0.1:9/';
export const CALLBACK = `${APP_ORIGIN}callback`;
export const AFTER_LOGOUT = `${APP_ORIGIN}logged-out`;

export async function aUser(latchkey: Latchkey, overrides: Partial<NewUserInput> = {}) {
  const password = overrides.password ?? `pw-${crypto.randomBytes(6).toString('hex')}`;
  const email = overrides.email ?? `user-${crypto.randomBytes(4).toString('hex')}@example.test`;
  const user = await createUser(latchkey, { name: 'Test User', ...overrides, email, password });
  return { ...user, password };
}

export async function aClient(latchkey: Latchkey, overrides: Partial<ClientRegistration> = {}) {
  return latchkey.clients.register({
    client_name: 'Test App',
    redirect_uris: [CALLBACK],
    post_logout_redirect_uris: [AFTER_LOGOUT],
    ...overrides,
  });
}
