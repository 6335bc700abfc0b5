import crypto from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from './logger.js';

declare module 'koa' {
  interface DefaultState {
    loggedPath?: string;
  }
}

/**
 * Tags every request with an id (kept from a trusted proxy's X-Request-Id when well-formed) and logs it once.
 * A route whose path carries a secret (an invitation link's token) sets `ctx.state.loggedPath` to its template:
 * logs are read by more people, and kept longer, than the secret may be.
 */
export function requestLog(logger: Logger): Middleware {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = /^[A-Za-z0-9._-]{8,128}$/.test(incoming) ? incoming : crypto.randomUUID();
    ctx.state.requestId = requestId;
    ctx.state.log = logger.child({ requestId });
    ctx.set('x-request-id', requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      ctx.state.log.info(
        { method: ctx.method, path: ctx.state.loggedPath ?? ctx.path, status: ctx.status, ms: Math.round(performance.now() - started) },
        'request',
      );
    }
  };
}
