import { z } from 'zod';
import type { PasswordResets } from '../../account/password-reset.js';
import { newPasswordSchema } from '../../security/password-policy.js';
import { assertMayManage, type PeopleDeps, resetPassword } from '../users.js';
import { actorOf, idParams, PEOPLE_ADMINS } from './common.js';
import { operation } from './operation.js';
import { userFinder } from './users.js';

export interface PasswordResetOperationDeps extends PeopleDeps {
  passwordResets: PasswordResets;
}

const temporaryPasswordSchema = z
  .object({ password: newPasswordSchema.optional().describe('the temporary password; left out, one is generated and returned once') })
  .strict();

/** An admin helping someone who forgot their password: the user's own reset by email, or a temporary password. */
export function passwordResetOperations(deps: PasswordResetOperationDeps) {
  const find = userFinder(deps.queries);
  const tag = 'users';
  return [
    operation({
      id: 'sendPasswordReset',
      method: 'post',
      path: '/users/:id/password-reset',
      tag,
      summary: 'Mail the user a single-use code (10 minutes) to choose a new password at /password-reset',
      description: 'The same code a user gets by asking on the sign-in page, under the same limits. Second factors stay.',
      roles: PEOPLE_ADMINS,
      params: idParams,
      responses: {
        202: { description: 'sent', schema: z.object({ expires_at: z.iso.datetime() }) },
        409: { description: 'no mail transport is configured, or the account is disabled' },
        429: { description: 'too many codes sent to this address lately' },
      },
      handle: async (ctx, { params }) => {
        const user = await find(params.id);
        assertMayManage(ctx.state.user!, user);
        const { expiresAt } = await deps.passwordResets.sendByAdmin(user, actorOf(ctx));
        return { expires_at: expiresAt.toISOString() };
      },
    }),
    operation({
      id: 'setTemporaryPassword',
      method: 'put',
      path: '/users/:id/password',
      tag,
      summary: 'Set a temporary password the user must change at their next sign-in to the console',
      description: 'Signs the user out everywhere and lifts their sign-in lockout; second factors stay. The user is told by mail.',
      roles: PEOPLE_ADMINS,
      params: idParams,
      body: temporaryPasswordSchema,
      responses: { 200: { description: 'set', schema: z.object({ generated_password: z.string().optional().describe('only when none was given: shown this once') }) } },
      handle: async (ctx, { params, body }) => {
        const user = await find(params.id);
        assertMayManage(ctx.state.user!, user);
        const { generatedPassword } = await resetPassword(deps, user, body.password, actorOf(ctx));
        return generatedPassword ? { generated_password: generatedPassword } : {};
      },
    }),
  ];
}
