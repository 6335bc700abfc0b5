import crypto from 'node:crypto';
import type { Middleware } from 'koa';
import { AppError } from '../errors.js';
import { constantTimeEqual } from './secret-box.js';

const COOKIE = 'lk_csrf';

/**
 * Double-submit token: a random value in an httpOnly cookie that only our own pages can echo back in a form
 * field. Runs after the body parser; every unsafe request under it must carry `_csrf`.
 */
export function csrf(): Middleware {
  return async (ctx, next) => {
    let token = ctx.cookies.get(COOKIE);
    if (!token || !/^[A-Za-z0-9_-]{43}$/.test(token)) {
      token = crypto.randomBytes(32).toString('base64url');
      ctx.cookies.set(COOKIE, token, { httpOnly: true, sameSite: 'lax', secure: ctx.secure, overwrite: true });
      if (!['GET', 'HEAD', 'OPTIONS'].includes(ctx.method)) throw new AppError(403, 'csrf_failed', 'form expired', '_csrf');
    }
    ctx.state.csrf = token;
    if (!['GET', 'HEAD', 'OPTIONS'].includes(ctx.method)) {
      const body = ctx.request.body as Record<string, unknown> | undefined;
      const sent = typeof body?._csrf === 'string' ? body._csrf : ctx.get('x-csrf-token');
      if (!sent || !constantTimeEqual(sent, token)) throw new AppError(403, 'csrf_failed', 'form expired', '_csrf');
    }
    await next();
  };
}
