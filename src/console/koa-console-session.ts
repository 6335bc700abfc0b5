import crypto from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import { CONSOLE_CALLBACK_PATH, CONSOLE_CLIENT_ID } from '../oidc/console-client.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import { constantTimeEqual } from '../security/secret-box.js';

const STATE_COOKIE = 'lk_console_state';
const REAUTH_COOKIE = 'lk_reauth';
/** Changes to sign-in methods need the password entered within this many seconds (and in this browser). */
export const REAUTH_SECONDS = 5 * 60;

declare module 'koa' {
  interface DefaultState {
    user?: UserRow;
  }
}

/**
 * The account and admin pages know their user from the provider's own session cookie; without one they send the
 * browser through a normal sign-in as the built-in console client and come back here.
 */
export function createConsoleSession(deps: { providers: ProviderHolder; queries: Queries; issuer: string }) {
  const signIn = (ctx: Context) => {
    const state = crypto.randomBytes(16).toString('base64url');
    const returnTo = ctx.originalUrl.startsWith('/') && !ctx.originalUrl.startsWith('//') ? ctx.originalUrl : '/account';
    ctx.cookies.set(STATE_COOKIE, `${state}|${ctx.method === 'GET' ? returnTo : '/account'}`, { signed: true, httpOnly: true, sameSite: 'lax', maxAge: 600_000, secure: ctx.secure });
    const url = new URL(`${deps.issuer}/auth`);
    url.search = new URLSearchParams({ client_id: CONSOLE_CLIENT_ID, response_type: 'none', scope: 'openid', redirect_uri: `${deps.issuer}${CONSOLE_CALLBACK_PATH}`, state }).toString();
    ctx.redirect(url.toString());
  };

  const requireUser: Middleware = async (ctx, next) => {
    const session = await deps.providers.provider.Session.get(ctx);
    const user = session.accountId ? await deps.queries.users.findById(session.accountId) : undefined;
    if (!user || user.status !== 'active') return signIn(ctx);
    ctx.state.user = user;
    await next();
  };

  const callback: Middleware = async (ctx) => {
    const stored = ctx.cookies.get(STATE_COOKIE, { signed: true });
    ctx.cookies.set(STATE_COOKIE, null);
    const [state, returnTo] = stored?.split('|') ?? [];
    const given = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    if (!state || !returnTo || !constantTimeEqual(state, given)) throw new AppError(400, 'session_not_found');
    if (typeof ctx.query.error === 'string') throw new AppError(403, 'access_denied');
    ctx.redirect(returnTo);
  };

  return {
    requireUser,
    callback,
    requireRole(role: string): Middleware {
      return async (ctx, next) => {
        if (!ctx.state.user?.roles.includes(role)) throw new AppError(403, 'forbidden');
        await next();
      };
    },
    markReauthenticated(ctx: Context, userId: string, now: Date) {
      ctx.cookies.set(REAUTH_COOKIE, `${userId}|${now.getTime()}`, { signed: true, httpOnly: true, sameSite: 'strict', maxAge: REAUTH_SECONDS * 1000, secure: ctx.secure });
    },
    isRecentlyReauthenticated(ctx: Context, userId: string, now: Date): boolean {
      const [who, at] = ctx.cookies.get(REAUTH_COOKIE, { signed: true })?.split('|') ?? [];
      return who === userId && now.getTime() - Number(at) <= REAUTH_SECONDS * 1000;
    },
  };
}

export type ConsoleSession = ReturnType<typeof createConsoleSession>;
