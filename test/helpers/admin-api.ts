import type { Latchkey } from '../../src/app.js';
import type { NewUserInput } from '../../src/admin/users.js';
import { aClient, aUser } from './factories.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from './relying-party.js';

/**
 * Tokens as an automation script gets them: its client registered for the admin API (unless `adminApi` is false),
 * its user signed in with their password, then `code` when they have a second factor.
 */
export async function adminApiTokens(latchkey: Latchkey, baseUrl: string, user: { email: string; password: string }, options: { adminApi?: boolean; code?: string } = {}) {
  const client = await aClient(latchkey, { latchkey_admin_api: options.adminApi ?? true });
  const config = await relyingParty(baseUrl, client.clientId, client.clientSecret);
  const login = await startLogin(config);
  let page = await signInWithPassword(login, user.email, user.password);
  if (options.code !== undefined) {
    page = await login.agent.submit(page, '/mfa', { code: options.code });
    if (page.html.includes('/confirm"')) page = await login.agent.submit(page, '/confirm');
  }
  return { config, tokens: await completeLogin(config, login, page.url) };
}

/** An admin-API access token from a password-only sign-in. */
export async function accessTokenFor(latchkey: Latchkey, baseUrl: string, user: { email: string; password: string }, adminApi = true) {
  return (await adminApiTokens(latchkey, baseUrl, user, { adminApi })).tokens.access_token;
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
