import type { Context } from 'koa';
import { z } from 'zod';
import type { UserRow } from '../../db/users.js';
import type { Role } from '../users.js';

export const READERS_OF_PEOPLE: readonly Role[] = ['super_admin', 'auditor', 'access_user_admin', 'access_user_manager', 'access_credential_manager', 'helpdesk'];
export const PEOPLE_ADMINS: readonly Role[] = ['super_admin', 'access_user_admin'];

export const idParams = z.object({ id: z.uuid({ message: 'expected an id' }) });

/** An opaque cursor: the position after the last item of a page, so pages stay stable while rows are added. */
export const cursor = {
  encode: (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url'),
  schema: <T extends z.ZodType>(shape: T) =>
    z
      .string()
      .max(1000)
      .transform((raw, ctx) => {
        try {
          const parsed = shape.safeParse(JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')));
          if (parsed.success) return parsed.data as z.output<T>;
        } catch {
          // fall through to the issue below
        }
        ctx.addIssue({ code: 'custom', message: 'expected a cursor from a previous page' });
        return z.NEVER;
      })
      .describe('`next_cursor` from the previous page'),
};

export const limitSchema = z.coerce.number().int().min(1).max(200).default(50);

export const actorOf = (ctx: Context) => ({ actorId: (ctx.state.user as UserRow).id, ip: ctx.ip, userAgent: ctx.get('user-agent') });
