import type { Latchkey } from '../../src/app.js';
import type { NewUserInput } from '../../src/admin/users.js';
import { aClient, aUser } from './factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from './relying-party.js';

/** An access token as an automation script gets one: its client registered for the admin API, its user signed in. */
export async function accessTokenFor(latchkey: Latchkey, baseUrl: string, user: { email: string; password: string }, adminApi = true) {
  const client = await aClient(latchkey, { latchkey_admin_api: adminApi });
  const config = await relyingParty(baseUrl, client.clientId, client.clientSecret);
  const login = await startLogin(config);
  return (await completeLogin(config, login, (await signInWithPassword(login, user.email, user.password)).url)).access_token;
}

/** A user with these roles and an admin-API token for them. */
export async function anAdmin(latchkey: Latchkey, baseUrl: string, roles: NonNullable<NewUserInput['roles']>) {
  const user = await aUser(latchkey, { roles });
  return { user, token: await accessTokenFor(latchkey, baseUrl, user) };
}

export function apiClient(baseUrl: string) {
  return async (method: string, path: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { ...(body === undefined || typeof body === 'string' ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, json: (json ?? {}) as Record<string, unknown>, text, headers: response.headers };
  };
}
