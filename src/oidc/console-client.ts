import type { ClientStore } from './clients.js';

/**
 * Latchkey's own account and admin pages sign users in like any app would, through the same interactions (password,
 * second factor, enrolment), as this built-in client. It asks for `response_type=none`: it needs the session, no
 * token.
 */
export const CONSOLE_CLIENT_ID = 'latchkey-console';
export const CONSOLE_CALLBACK_PATH = '/console/callback';

export async function ensureConsoleClient(clients: ClientStore, issuer: string) {
  const redirect = `${issuer}${CONSOLE_CALLBACK_PATH}`;
  const existing = await clients.findMetadata(CONSOLE_CLIENT_ID);
  if (existing && (existing.redirect_uris as string[] | undefined)?.[0] === redirect) return;
  if (existing) await clients.remove(CONSOLE_CLIENT_ID);
  await clients.registerBuiltIn({
    client_id: CONSOLE_CLIENT_ID,
    client_name: 'Latchkey',
    redirect_uris: [redirect],
    post_logout_redirect_uris: [`${issuer}/`],
    response_types: ['none'],
    grant_types: [],
    token_endpoint_auth_method: 'none',
  });
}
