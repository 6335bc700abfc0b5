import crypto from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import type { MfaService } from '../mfa/service.js';
import { CONSOLE_CALLBACK_PATH, CONSOLE_CLIENT_ID } from '../oidc/console-client.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import { constantTimeEqual } from '../security/secret-box.js';
import { type ConsoleArea, stepUpFor } from './step-up.js';

const STATE_COOKIE = 'lk_console_state';
const PASSWORD_CHANGE_PAGE = '/account/profile?notice=choose_password';
const PASSWORD_CHANGE_ROUTES = new Set(['GET /account/profile', 'POST /account/password']);
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
 * browser through a normal sign-in as the built-in console client and come back here. A session whose sign-in no
 * longer satisfies the MFA policy (see step-up.ts) is sent through that sign-in too, asking for `acr_values` mfa:
 * the provider's `mfa_required` check then asks for the second factor alone (or an enrolment), not the password.
 */
export function createConsoleSession(deps: { providers: ProviderHolder; queries: Queries; mfa: Pick<MfaService, 'decide'>; issuer: string }) {
  const signIn = (ctx: Context, area: ConsoleArea, stepUp?: string) => {
    const state = crypto.randomBytes(16).toString('base64url');
    // A form post is not replayed after the sign-in: the browser comes back to the area's first page instead.
    const returnTo = ctx.method === 'GET' && ctx.originalUrl.startsWith('/') && !ctx.originalUrl.startsWith('//') ? ctx.originalUrl : `/${area}`;
    ctx.cookies.set(STATE_COOKIE, `${state}|${returnTo}`, { signed: true, httpOnly: true, sameSite: 'lax', maxAge: 600_000, secure: ctx.secure });
    const url = new URL(`${deps.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: CONSOLE_CLIENT_ID,
      response_type: 'none',
      scope: 'openid',
      redirect_uri: `${deps.issuer}${CONSOLE_CALLBACK_PATH}`,
      state,
      ...(stepUp ? { acr_values: stepUp } : {}),
    }).toString();
    ctx.redirect(url.toString());
  };

  const requireUserIn = (area: ConsoleArea): Middleware => async (ctx, next) => {
    const session = await deps.providers.provider.Session.get(ctx);
    const user = session.accountId ? await deps.queries.users.findById(session.accountId) : undefined;
    if (!user || user.status !== 'active') return signIn(ctx, area);
    const stepUp = await stepUpFor(deps.mfa, user, session.amr, area);
    if (stepUp) {
      await deps.queries.audit.insert({ action: 'mfa.step_up_required', outcome: 'denied', actorId: user.id, subjectId: user.id, ip: ctx.ip, userAgent: ctx.get('user-agent'), clientId: CONSOLE_CLIENT_ID, details: { area, amr: session.amr ?? [] } });
      return signIn(ctx, area, stepUp);
    }
    ctx.state.user = user;
    // A password someone else chose (generated at first start, or reset by an operator) opens the console once: its
    // user chooses their own before any other page.
    if (user.must_change_password && !PASSWORD_CHANGE_ROUTES.has(`${ctx.method} ${ctx.path}`)) return ctx.redirect(PASSWORD_CHANGE_PAGE);
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
    /** The account pages' user, signed in as the MFA policy now asks of anyone. */
    requireUser: requireUserIn('account'),
    /** The admin pages' user, signed in as the MFA policy now asks of someone holding admin rights. */
    requireAdminUser: requireUserIn('admin'),
    callback,
    requireRole(role: string): Middleware {
      return async (ctx, next) => {
        if (!ctx.state.user?.roles.includes(role)) throw new AppError(403, 'forbidden');
        await next();
      };
    },
    markReauthenticated(ctx: Context, userId: string, now: Date) {
      // Also for the rest of this request: the action the password page interrupted runs in it.
      ctx.state.reauthenticated = `${userId}|${now.getTime()}`;
      ctx.cookies.set(REAUTH_COOKIE, `${userId}|${now.getTime()}`, { signed: true, httpOnly: true, sameSite: 'strict', maxAge: REAUTH_SECONDS * 1000, secure: ctx.secure });
    },
    /** After sign-out: a password entered before it does not count as recent for whoever signs in next. */
    forgetReauthentication(ctx: Context) {
      ctx.cookies.set(REAUTH_COOKIE, null, { signed: true, httpOnly: true, sameSite: 'strict', secure: ctx.secure });
    },
    isRecentlyReauthenticated(ctx: Context, userId: string, now: Date): boolean {
      const [who, at] = ((ctx.state.reauthenticated as string | undefined) ?? ctx.cookies.get(REAUTH_COOKIE, { signed: true }))?.split('|') ?? [];
      return who === userId && now.getTime() - Number(at) <= REAUTH_SECONDS * 1000;
    },
  };
}

export type ConsoleSession = ReturnType<typeof createConsoleSession>;
