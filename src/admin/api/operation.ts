import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import type { UserRow } from '../../db/users.js';
import { AppError } from '../../errors.js';
import { parseBody } from '../../security/koa-body.js';
import type { Role } from '../users.js';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ApiResponse {
  description: string;
  schema?: z.ZodType;
  mediaType?: string;
  headers?: Record<string, string>;
}

type Input<P, Q, B> = { params: P; query: Q; body: B };

/** A handler's answer when it is not the operation's first success status. */
export class Reply {
  constructor(
    readonly status: number,
    readonly body?: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

/**
 * One admin API operation: the zod schemas that validate its request are the ones the OpenAPI document is made
 * from, and the roles it names are the ones enforced, so the document cannot drift from the router.
 */
export interface Operation<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  id: string;
  method: HttpMethod;
  /** Koa style: `/users/:id`. */
  path: string;
  tag: string;
  summary: string;
  description?: string;
  roles: readonly Role[];
  /** For per-site roles: the site the request is about (undefined: 404), found from the validated path. */
  site?: (params: z.output<P>) => Promise<string | undefined>;
  params?: P;
  query?: Q;
  body?: B;
  bodyMediaType?: 'application/json' | 'text/csv';
  /** Optimistic concurrency: the operation honours If-Match with an ETag from its GET. */
  ifMatch?: boolean;
  responses: Record<number, ApiResponse>;
  handle: (ctx: Context, input: Input<z.output<P>, z.output<Q>, z.output<B>>) => Promise<unknown>;
}

export const operation = <P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType>(
  op: Operation<P, Q, B>,
): Operation => op as unknown as Operation;

const MAX_CSV_BYTES = 10 * 1024 * 1024;

async function readText(ctx: Context, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AppError(413, 'body_too_large', 'request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** No version is this: what a weak ETag is compared as (If-Match compares strongly, RFC 9110 13.1.1). */
const NO_VERSION = -1;

/** The `If-Match` version a client sent, or undefined when it sent none or `*` (whatever version exists). */
export function ifMatchVersion(ctx: Context): number | undefined {
  const raw = ctx.get('if-match').trim();
  if (!raw || raw === '*') return undefined;
  // One entity tag (a bare number is taken as its quoted self); its opaque part is compared exactly, so "0x1",
  // "1.0" or "" name no version we gave out, whatever Number() makes of them.
  const tag = /^(W\/)?"([\x21\x23-\x7e]*)"$/.exec(raw) ?? /^()(\d+)$/.exec(raw);
  if (!tag) throw new AppError(400, 'invalid_request', 'If-Match must be an ETag from GET', 'If-Match');
  const [, weak, opaque = ''] = tag;
  const version = /^(0|[1-9]\d*)$/.test(opaque) ? Number(opaque) : NO_VERSION;
  // Versions are PostgreSQL integers: a larger number is no version we gave out (and would fail in the query).
  if (version > 2_147_483_647) throw new AppError(400, 'invalid_request', 'If-Match must be an ETag from GET', 'If-Match');
  return weak ? NO_VERSION : version;
}

export interface MountDeps {
  authenticate: Middleware;
  isSiteAdmin: (siteId: string, userId: string) => Promise<boolean>;
}

export interface RawRequest {
  params?: Record<string, string | undefined>;
  query?: Record<string, unknown>;
  body?: unknown;
}

/**
 * Runs one operation for the signed-in user in `ctx.state.user`: find the target, check roles, validate, act. The
 * API router and the admin console both come through here, so a page can do no more than the API allows.
 */
export async function invokeOperation(op: Operation, ctx: Context, raw: RawRequest, deps: Pick<MountDeps, 'isSiteAdmin'>): Promise<Reply> {
  const user = ctx.state.user as UserRow;
  const params = op.params ? op.params.safeParse(raw.params ?? {}) : { success: true as const, data: raw.params ?? {} };
  if (!params.success) {
    const field = String(params.error.issues[0]?.path[0] ?? 'id');
    throw new AppError(404, 'not_found', `no such ${field}`, field);
  }
  const siteId = op.site ? await op.site(params.data) : undefined;
  if (op.site && !siteId) throw new AppError(404, 'not_found', 'no such site or door');
  // A per-site role counts only on its own sites; on an operation about no site in particular it is a role like any.
  const allowed =
    op.roles.some((role) => user.roles.includes(role) && (role !== 'access_site_admin' || !op.site)) ||
    (op.roles.includes('access_site_admin') && user.roles.includes('access_site_admin') && !!siteId && (await deps.isSiteAdmin(siteId, user.id)));
  if (!allowed) throw new AppError(403, 'forbidden', `needs one of the roles ${op.roles.join(', ')}`);
  ctx.state.siteId = siteId;

  if (op.bodyMediaType === 'text/csv' && typeof raw.body !== 'string') throw new AppError(415, 'unsupported_media_type', 'send the file as text/csv');
  const query = op.query ? op.query.parse(raw.query ?? {}) : {};
  const body = op.body ? op.body.parse(raw.body ?? {}) : raw.body;
  const result = await op.handle(ctx, { params: params.data, query, body });
  if (result instanceof Reply) return result;
  return new Reply(Number(Object.keys(op.responses).find((status) => status.startsWith('2')) ?? 200), result);
}

/** Whether this user's roles could let them call the operation at all (for showing or hiding console controls). */
export const mayCall = (op: Operation, user: Pick<UserRow, 'roles'>) => op.roles.some((role) => user.roles.includes(role));

/** Builds the router from the operations. */
export function mountOperations(prefix: string, operations: readonly Operation[], deps: MountDeps): Router {
  const router = new Router({ prefix });
  const json = parseBody();
  for (const op of operations) {
    router[op.method](op.path, deps.authenticate, async (ctx, next) => (op.bodyMediaType === 'text/csv' ? next() : json(ctx, next)), async (ctx) => {
      let body = ctx.request.body;
      if (op.bodyMediaType === 'text/csv') body = ctx.is('text/csv') ? await readText(ctx, MAX_CSV_BYTES) : undefined;
      const reply = await invokeOperation(op, ctx, { params: ctx.params, query: ctx.query, body }, deps);
      ctx.status = reply.status;
      for (const [name, value] of Object.entries(reply.headers)) ctx.set(name, value);
      if (reply.status !== 204 && reply.body !== undefined) ctx.body = reply.body;
    });
  }
  return router;
}
