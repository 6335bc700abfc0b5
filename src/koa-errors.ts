import type { Context, Middleware } from 'koa';
import { ZodError } from 'zod';
import type { Locale } from './i18n.js';
import { pickLocale } from './i18n.js';
import type { PageRenderer } from './render.js';

const DATABASE_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P02', '57P03', '08006', '08001']);

export function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: string; name?: string; message?: string } | undefined;
  return !!e && (DATABASE_DOWN.has(e.code ?? '') || e.name === 'KnexTimeoutError' || /Connection terminated/.test(e.message ?? ''));
}

/**
 * oidc-provider answers any error it did not raise itself with a 500; a database that is down is a 503 (try again
 * soon), which is what its `statusCode` tells the provider's error handler.
 */
export async function orUnavailable<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (isDatabaseUnavailable(error)) Object.assign(error as object, { statusCode: 503 });
    throw error;
  }
}

interface Shown {
  status: number;
  code: string;
  field?: string;
  detail?: string;
}

function classify(error: unknown): Shown {
  const e = error as { status?: number; expose?: boolean; code?: string; name?: string; field?: string; detail?: string };
  if (isDatabaseUnavailable(error)) return { status: 503, code: 'service_unavailable' };
  if (error instanceof ZodError) {
    const issue = error.issues[0]!;
    const field = issue.path.join('.') || undefined;
    return { status: 400, code: 'invalid_request', field, detail: `${field ?? 'input'}: ${issue.message}` };
  }
  if (e?.name === 'SessionNotFound') return { status: 400, code: 'session_not_found' };
  // PostgreSQL's data exceptions (class 22: a NUL byte, text where a UUID goes, a number out of range) are input no
  // schema caught before it reached the database: still the request's fault, not the server's.
  if (typeof e?.code === 'string' && /^22[0-9A-Z]{3}$/.test(e.code) && !e.expose) return { status: 400, code: 'invalid_request' };
  // An error made to be shown keeps its status, even a 502 from a provider we depend on.
  if (e?.expose && typeof e.status === 'number') {
    return { status: e.status, code: typeof e.code === 'string' ? e.code : 'bad_request', field: e.field, detail: e.detail };
  }
  return { status: 500, code: 'internal_error' };
}

function wantsJson(ctx: Context) {
  return ctx.path.startsWith('/api/') || ctx.accepts('html', 'json') === 'json';
}

/**
 * The last word on any error: a user sees a status, a stable code and (for bad input) the field at fault; a 500
 * is logged with its request id and shown as a generic page carrying that id, nothing more.
 */
export function errorHandler(renderer: PageRenderer, defaultLocale: Locale): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw Object.assign(new Error('not found'), { status: 404, expose: true, code: 'not_found' });
    } catch (error) {
      const shown = classify(error);
      if (shown.status >= 500) ctx.state.log?.[shown.code === 'internal_error' ? 'error' : 'warn']({ err: error }, 'request failed');
      ctx.status = shown.status;
      ctx.set('cache-control', 'no-store');
      if (shown.status === 503) ctx.set('retry-after', '5');
      const locale: Locale =
        ctx.state.locale ?? pickLocale({ acceptsLanguages: (...l) => ctx.acceptsLanguages(...l), fallback: defaultLocale });
      const t = renderer.translator(locale);
      const message = t(`error.${shown.code}`) === `error.${shown.code}` ? t('error.generic') : t(`error.${shown.code}`);
      if (wantsJson(ctx)) {
        ctx.type = 'application/problem+json';
        ctx.body = { type: 'about:blank', title: message, status: shown.status, code: shown.code, ...(shown.field ? { field: shown.field } : {}), ...(shown.detail ? { detail: shown.detail } : {}), request_id: ctx.state.requestId };
      } else {
        ctx.type = 'html';
        ctx.body = renderer.render('error', locale, { message, detail: shown.detail, requestId: shown.code === 'internal_error' ? ctx.state.requestId : undefined });
      }
    }
  };
}
