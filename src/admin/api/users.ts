import { z } from 'zod';
import type { Queries } from '../../db/index.js';
import type { UserRow } from '../../db/users.js';
import { AppError } from '../../errors.js';
import { type BypassCodes, bypassCodeRequestSchema } from '../../mfa/bypass-codes.js';
import type { MfaService } from '../../mfa/service.js';
import {
  assertMayManage,
  createUser,
  inviteSchema,
  inviteUser,
  newUserSchema,
  type PeopleDeps,
  revokeSessions,
  rolesSchema,
  setRoles,
  updateUser,
  userPatchSchema,
  userView,
} from '../users.js';
import { actorOf, cursor, idParams, limitSchema, PEOPLE_ADMINS, READERS_OF_PEOPLE } from './common.js';
import { operation, Reply } from './operation.js';

const userSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  name: z.string(),
  status: z.enum(['active', 'disabled']),
  roles: z.array(z.string()),
  locale: z.string().nullable(),
  has_password: z.boolean().describe('false until an invited user sets theirs'),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
});
const factorSchema = z.object({
  id: z.string(),
  factor: z.string(),
  label: z.string(),
  detail: z.string().nullable().describe('a passkey: synced (backup eligible) or device_bound'),
  preferred: z.boolean(),
  added_at: z.iso.datetime().nullable(),
  last_used_at: z.iso.datetime().nullable(),
});
const userDetailSchema = userSchema.extend({ factors: z.array(factorSchema), recovery_codes_left: z.number().int() });
const listQuery = z.object({
  q: z.string().trim().max(320).optional().describe('part of an email or a name'),
  cursor: cursor.schema(z.object({ email: z.string(), id: z.string() })).optional(),
  limit: limitSchema,
});

export interface UserOperationDeps extends PeopleDeps {
  mfa: MfaService;
  bypassCodes: BypassCodes;
}

export async function userDetail(mfa: MfaService, queries: Queries, user: UserRow) {
  const methods = await mfa.methodsFor(user);
  return {
    ...userView(user),
    factors: methods.map((m, index) => ({
      id: m.id,
      factor: m.factor,
      label: m.label,
      detail: m.detail ?? null,
      preferred: user.preferred_factor_id ? m.id === user.preferred_factor_id : index === 0,
      added_at: m.record.confirmed_at?.toISOString() ?? null,
      last_used_at: m.record.last_used_at?.toISOString() ?? null,
    })),
    recovery_codes_left: await queries.recoveryCodes.countUnused(user.id),
  };
}

/** The user an operation's path names, or its 404. */
export const userFinder = (queries: Queries) => async (id: string) => {
  const user = await queries.users.findById(id);
  if (!user) throw new AppError(404, 'user_not_found', 'no such user', 'id');
  return user;
};

export function userOperations(deps: UserOperationDeps) {
  const { queries } = deps;
  const find = userFinder(queries);
  const tag = 'users';
  return [
    operation({
      id: 'listUsers',
      method: 'get',
      path: '/users',
      tag,
      summary: 'List users, by email, with search',
      roles: READERS_OF_PEOPLE,
      query: listQuery,
      responses: { 200: { description: 'one page', schema: z.object({ users: z.array(userSchema), next_cursor: z.string().nullable() }) } },
      handle: async (_ctx, { query }) => {
        const rows = await queries.users.page({ search: query.q, after: query.cursor, limit: query.limit + 1 });
        const page = rows.slice(0, query.limit);
        const last = page.at(-1);
        return { users: page.map(userView), next_cursor: rows.length > query.limit && last ? cursor.encode({ email: last.email, id: last.id }) : null };
      },
    }),
    operation({
      id: 'createUser',
      method: 'post',
      path: '/users',
      tag,
      summary: 'Create a user with a password',
      description: 'Only a super admin may give roles.',
      roles: PEOPLE_ADMINS,
      body: newUserSchema,
      responses: { 201: { description: 'created', schema: userSchema }, 409: { description: 'the email is taken' } },
      handle: async (ctx, { body }) => {
        assertMayManage(ctx.state.user!, { roles: [] }, body.roles);
        const user = await createUser(deps, body);
        await queries.audit.insert({ action: 'user.create', outcome: 'success', subjectId: user.id, ...actorOf(ctx), details: { roles: body.roles } });
        return userView(user);
      },
    }),
    operation({
      id: 'inviteUser',
      method: 'post',
      path: '/users/invitations',
      tag,
      summary: 'Invite a user by email: they set their own password through a single-use link (7 days)',
      roles: PEOPLE_ADMINS,
      body: inviteSchema,
      responses: { 201: { description: 'invited', schema: z.object({ user: userSchema, expires_at: z.iso.datetime() }) }, 409: { description: 'the email is taken' } },
      handle: async (ctx, { body }) => {
        assertMayManage(ctx.state.user!, { roles: [] }, body.roles);
        const { user, expiresAt } = await inviteUser(deps, body, actorOf(ctx));
        return { user: userView(user), expires_at: expiresAt.toISOString() };
      },
    }),
    operation({
      id: 'getUser',
      method: 'get',
      path: '/users/:id',
      tag,
      summary: "A user, with their second factors (never their secrets)",
      roles: READERS_OF_PEOPLE,
      params: idParams,
      responses: { 200: { description: 'the user', schema: userDetailSchema } },
      handle: async (_ctx, { params }) => userDetail(deps.mfa, queries, await find(params.id)),
    }),
    operation({
      id: 'updateUser',
      method: 'patch',
      path: '/users/:id',
      tag,
      summary: 'Change name or language, disable (signs them out everywhere) or enable',
      roles: PEOPLE_ADMINS,
      params: idParams,
      body: userPatchSchema,
      responses: { 200: { description: 'the user', schema: userSchema }, 409: { description: 'you cannot disable yourself' } },
      handle: async (ctx, { params, body }) => userView(await updateUser(deps, ctx.state.user!, await find(params.id), body, actorOf(ctx))),
    }),
    operation({
      id: 'setUserRoles',
      method: 'put',
      path: '/users/:id/roles',
      tag,
      summary: "Replace a user's roles",
      roles: ['super_admin'],
      params: idParams,
      body: rolesSchema,
      responses: { 200: { description: 'the user', schema: userSchema }, 409: { description: 'the last super admin keeps the role' } },
      handle: async (ctx, { params, body }) => userView(await setRoles(deps, await find(params.id), body.roles, actorOf(ctx))),
    }),
    operation({
      id: 'resetUserMfa',
      method: 'delete',
      path: '/users/:id/mfa',
      tag,
      summary: "Reset a user's MFA: every factor and recovery code goes, lockouts are lifted, the user is told",
      roles: ['super_admin'],
      params: idParams,
      responses: { 204: { description: 'reset (also when there was nothing to reset)' } },
      handle: async (ctx, { params }) => {
        await deps.mfa.reset(await find(params.id), actorOf(ctx));
      },
    }),
    operation({
      id: 'issueBypassCode',
      method: 'post',
      path: '/users/:id/bypass-code',
      tag,
      summary: 'Issue a one-time helpdesk code for a user who lost their second factor',
      description:
        'The code is in this answer only, valid for the `bypass-code` setting (at most an hour) and once; a new one replaces the last. ' +
        'With their password and this code the user must set up a new factor before the sign-in finishes; their factors stay. ' +
        'The reason and the issuer are audited and the user is told by email. A helpdesk may issue one only for users who hold no role, and nobody for themselves.',
      roles: ['super_admin', 'helpdesk'],
      params: idParams,
      body: bypassCodeRequestSchema,
      responses: {
        201: { description: 'issued', schema: z.object({ code: z.string(), expires_at: z.iso.datetime() }) },
        409: { description: 'the user is disabled, has no second factor, or is you' },
      },
      handle: async (ctx, { params, body }) => {
        const target = await find(params.id);
        assertMayManage(ctx.state.user!, target);
        const issued = await deps.bypassCodes.issue(target, body.reason, actorOf(ctx));
        return new Reply(201, { code: issued.code, expires_at: issued.expiresAt.toISOString() }, { 'cache-control': 'no-store' });
      },
    }),
    operation({
      id: 'revokeUserSessions',
      method: 'delete',
      path: '/users/:id/sessions',
      tag,
      summary: 'Sign a user out everywhere: sessions, grants, and the tokens issued under them',
      roles: ['super_admin'],
      params: idParams,
      responses: { 204: { description: 'revoked (also when there was nothing to revoke)' } },
      handle: async (ctx, { params }) => {
        await revokeSessions(deps, await find(params.id), actorOf(ctx));
      },
    }),
  ];
}
