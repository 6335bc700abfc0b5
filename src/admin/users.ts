import crypto from 'node:crypto';
import { z } from 'zod';
import { signOutEverywhere } from '../account/sessions.js';
import { ConfigError } from '../config/index.js';
import type { SettingsStore } from '../config/settings.js';
import type { ChangeFeed } from '../db/change-feed.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import type { Notifier } from '../notify/notifier.js';
import type { Clock } from '../security/clock.js';
import { emailSchema } from '../security/email.js';
import { accountGuessKey, accountGuessRule, TooManyGuesses } from '../security/password-guesses.js';
import { forgetAllDevices } from '../mfa/remembered-device/index.js';
import { assertPasswordAllowed, newPasswordSchema, type PasswordPolicyDeps } from '../security/password-policy.js';
import type { PasswordHasher } from '../security/passwords.js';
import { createThrottle } from '../security/throttle.js';

export const ROLES = [
  'super_admin',
  'access_user_admin',
  'access_user_manager',
  'access_credential_manager',
  'access_site_admin',
  'auditor',
  // Finds users and issues bypass codes for those who hold no role: never an admin's, never a role.
  'helpdesk',
] as const;
export type Role = (typeof ROLES)[number];

export const newUserSchema = z.object({
  email: emailSchema,
  name: z.string().trim().max(200).default(''),
  password: newPasswordSchema,
  roles: z.array(z.enum(ROLES)).default([]),
  locale: z.enum(['en', 'ko']).optional(),
});

export type NewUserInput = z.input<typeof newUserSchema>;

export const inviteSchema = newUserSchema.omit({ password: true });

export const userPatchSchema = z
  .object({
    name: z.string().trim().max(200).optional(),
    email: emailSchema.optional(),
    status: z.enum(['active', 'disabled']).optional(),
    locale: z.enum(['en', 'ko']).nullable().optional(),
  })
  .strict();

export const rolesSchema = z.object({ roles: z.array(z.enum(ROLES)).max(ROLES.length) }).strict();

const INVITATION_DAYS = 7;
const emailTaken = () => new AppError(409, 'email_taken', 'a user with this email exists', 'email');
/** The lookup before an insert answers the common case; the unique index answers two requests racing for one email. */
async function insertUser(queries: Queries, user: Parameters<Queries['users']['insert']>[0]) {
  if (await queries.users.findByEmail(user.email)) throw emailTaken();
  try {
    return await queries.users.insert(user);
  } catch (error) {
    if ((error as { code?: string }).code === '23505') throw emailTaken();
    throw error;
  }
}

/** An admin's own roles bound what they may hand out and whom they may change: only a super admin touches admins. */
export function assertMayManage(actor: UserRow, target: { roles: readonly string[] }, newRoles: readonly string[] = []) {
  if (actor.roles.includes('super_admin')) return;
  if (target.roles.length > 0 || newRoles.length > 0) throw new AppError(403, 'forbidden', 'only a super admin may manage users who hold roles', 'roles');
}

export const userView = (user: UserRow) => ({
  id: user.id,
  email: user.email,
  name: user.name,
  status: user.status,
  roles: user.roles,
  locale: user.locale,
  has_password: user.password_hash !== null,
  created_at: user.created_at.toISOString(),
  updated_at: user.updated_at.toISOString(),
});

export type NewUserDeps = PasswordPolicyDeps & { queries: Queries; hasher: PasswordHasher };

export async function createUser(deps: NewUserDeps, input: NewUserInput, options: { mustChangePassword?: boolean } = {}) {
  const user = newUserSchema.parse(input);
  await assertPasswordAllowed(deps, user.password, user);
  return insertUser(deps.queries, {
    email: user.email,
    name: user.name,
    passwordHash: await deps.hasher.hash(user.password),
    roles: user.roles,
    locale: user.locale ?? null,
    emailVerified: false,
    mustChangePassword: options.mustChangePassword,
  });
}

/**
 * First start: with no user at all, create a super admin from LATCHKEY_ADMIN_EMAIL/PASSWORD, or with a generated
 * password that is printed once and never stored in clear. A given password meets the same policy as any other:
 * the first admin's account is the one most worth guessing.
 */
export async function ensureSuperAdmin(
  deps: NewUserDeps,
  given: { email: string; password: string } | undefined,
): Promise<{ email: string; generatedPassword?: string } | undefined> {
  if ((await deps.queries.users.count()) > 0) return undefined;
  const email = given?.email ?? 'admin@latchkey.local';
  const generatedPassword = given ? undefined : crypto.randomBytes(15).toString('base64url');
  try {
    // A generated password has been on a screen and maybe in a terminal's scrollback: it opens the console once.
    await createUser(deps, { email, name: 'Administrator', password: given?.password ?? generatedPassword!, roles: ['super_admin'] }, { mustChangePassword: !given });
  } catch (error) {
    if (given && error instanceof AppError && error.field === 'password') throw new ConfigError([`LATCHKEY_ADMIN_PASSWORD: ${error.message}`]);
    throw error;
  }
  return { email, generatedPassword };
}

export interface PeopleDeps extends NewUserDeps {
  notifier: Notifier;
  clock: Clock;
  issuer: string;
  /** Door decisions hold users' status in memory: a disabled user's card stops at once, on every instance. */
  changes?: ChangeFeed;
}

export interface Acting {
  actorId: string | null;
  ip?: string;
  userAgent?: string;
}

const audit = (deps: PeopleDeps, action: string, subjectId: string, by: Acting, details: Record<string, unknown> = {}, outcome: 'success' | 'failure' = 'success') =>
  deps.queries.audit.insert({ action, outcome, subjectId, actorId: by.actorId, ip: by.ip, userAgent: by.userAgent, details });

const hashToken = (token: string) => crypto.createHash('sha256').update(token).digest('base64url');

/** A new user without a password, who sets one through a single-use link sent to their email (valid 7 days). */
export async function inviteUser(deps: PeopleDeps, input: z.output<typeof inviteSchema>, by: Acting) {
  const user = await insertUser(deps.queries, { email: input.email, name: input.name, passwordHash: null, roles: input.roles, locale: input.locale ?? null });
  const token = crypto.randomBytes(32).toString('base64url');
  const expiresAt = new Date(deps.clock.now().getTime() + INVITATION_DAYS * 86400_000);
  await deps.queries.invitations.insert({ token_hash: hashToken(token), user_id: user.id, invited_by: by.actorId, expires_at: expiresAt });
  await audit(deps, 'user.invite', user.id, by, { roles: input.roles });
  await deps.notifier.notify(user, 'invited', { link: `${deps.issuer}/invitation/${token}`, days: String(INVITATION_DAYS) });
  return { user, expiresAt };
}

export async function findInvitation(deps: PeopleDeps, token: string) {
  const invitation = await deps.queries.invitations.findLive(hashToken(token), deps.clock.now());
  const user = invitation && (await deps.queries.users.findById(invitation.user_id));
  return user?.status === 'active' ? user : undefined;
}

/** Opening the link proves the inbox: the password is set and the email counts as verified. */
export async function acceptInvitation(deps: PeopleDeps, token: string, password: string, by: Acting) {
  const user = await findInvitation(deps, token);
  if (!user) return undefined;
  await assertPasswordAllowed(deps, password, user);
  if (!(await deps.queries.invitations.use(hashToken(token), deps.clock.now()))) return undefined;
  await deps.queries.users.setPasswordHash(user.id, await deps.hasher.hash(password));
  await deps.queries.users.markEmailVerified(user.id);
  await audit(deps, 'user.invitation_accepted', user.id, { ...by, actorId: user.id });
  return user;
}

export async function updateUser(deps: PeopleDeps, actor: UserRow, target: UserRow, change: z.output<typeof userPatchSchema>, by: Acting) {
  assertMayManage(actor, target);
  if (change.status === 'disabled' && target.id === actor.id) throw new AppError(409, 'cannot_disable_self', 'you cannot disable your own account', 'status');
  const { email, ...rest } = change;
  if (email !== undefined && email !== target.email) await changeEmail(deps, target, email);
  const updated = await deps.queries.users.update(target.id, rest);
  // A disabled account is signed out everywhere at once, not when its sessions happen to expire.
  if (change.status === 'disabled' && target.status !== 'disabled') await signOutEverywhere(deps, target.id);
  if (change.status && change.status !== target.status) await deps.changes?.publish('access', 'user');
  await audit(deps, 'user.update', target.id, by, {
    changed: Object.keys(change),
    ...(change.status ? { status: change.status } : {}),
    ...(email !== undefined && email !== target.email ? { email_from: target.email, email_to: email } : {}),
  });
  return updated!;
}

/**
 * A new address, unique in its canonical form (a duplicate is the email field's error, also when two requests race
 * for it). Codes mailed to the old address stop working, and its owner is told there: if the change was not theirs
 * to want, the old inbox is where they will see it.
 */
async function changeEmail(deps: PeopleDeps, target: UserRow, email: string) {
  const holder = await deps.queries.users.findByEmail(email);
  if (holder && holder.id !== target.id) throw emailTaken();
  try {
    await deps.queries.users.setEmail(target.id, email);
  } catch (error) {
    if ((error as { code?: string }).code === '23505') throw emailTaken();
    throw error;
  }
  await deps.queries.passwordResets.voidAll(target.id, deps.clock.now());
  await deps.notifier.notify(target, 'email_changed', { new_email: email });
}

export async function setRoles(deps: PeopleDeps, target: UserRow, roles: readonly Role[], by: Acting) {
  const unique = [...new Set(roles)].sort();
  const losesSuperAdmin = target.roles.includes('super_admin') && !unique.includes('super_admin');
  if (losesSuperAdmin && target.status === 'active' && (await deps.queries.users.countActiveWithRole('super_admin')) <= 1) {
    throw new AppError(409, 'last_super_admin', 'the last super admin keeps the role', 'roles');
  }
  const updated = await deps.queries.users.update(target.id, { roles: unique });
  await audit(deps, 'user.roles', target.id, by, { from: target.roles, to: unique });
  return updated!;
}

/**
 * Signs the user out everywhere, or everywhere but the session (and the remembered browser) the request comes from.
 * The others are forgotten as remembered browsers too: none of them skips the second factor at its next sign-in.
 */
export async function revokeSessions(deps: PeopleDeps, target: UserRow, by: Acting, keep?: { sessionId: string; deviceIds: readonly string[] }) {
  const sessions = keep ? await deps.queries.oidcModels.revokeAccount(target.id, keep.sessionId) : await signOutEverywhere(deps, target.id);
  await forgetAllDevices(deps, target.id, by, keep ? 'signed_out_others' : 'signed_out_everywhere', keep?.deviceIds);
  await audit(deps, keep ? 'user.sign_out_others' : 'user.revoke_sessions', target.id, by, { sessions });
  await deps.notifier.notify(target, 'signed_out_elsewhere');
  return sessions;
}

/**
 * The user's own change: the current password first (ASVS 2.1.5), then the policy, then a notice. A wrong current
 * password counts against the account like a wrong sign-in (reserved before it is checked), so that a stolen
 * session cannot be used to guess the password without limit.
 */
export async function changePassword(deps: PeopleDeps, user: UserRow, current: string, next: string, by: Acting, keepSessionId?: string) {
  const lockout = (await deps.settings.read('lockout')).value;
  const reservation = await createThrottle(deps.queries, deps.clock).reserve([accountGuessRule(lockout, user.email)]);
  if (!reservation.allowed) {
    await audit(deps, 'user.password_change', user.id, by, { reason: 'throttled' }, 'failure');
    throw new TooManyGuesses(reservation.retryAfterSeconds, 'current_password');
  }
  const ok = user.password_hash !== null && (await deps.hasher.verify(user.password_hash, current)).valid;
  if (!ok) {
    await audit(deps, 'user.password_change', user.id, by, { reason: 'wrong_password' }, 'failure');
    throw new AppError(400, 'wrong_password', 'the current password is wrong', 'current_password');
  }
  await reservation.succeeded();
  await storeChosenPassword(deps, user, next, by);
  // A password changed after a compromise must also shut out whoever held the old one: every other session ends,
  // with its tokens, and so do sign-ins already past the old password.
  await deps.queries.oidcModels.revokeAccount(user.id, keepSessionId);
  await deps.queries.signIns.endAllOf(user.id);
}

/**
 * A temporary password (an admin's, or the one generated at first start) replaced during a sign-in into any app:
 * the temporary one was verified in that same request, so only the policy stands between the user and the new one.
 */
export async function replaceTemporaryPassword(deps: PeopleDeps, user: UserRow, next: string, by: Acting) {
  if (!user.must_change_password) throw new AppError(409, 'no_temporary_password', 'this account has no temporary password');
  await storeChosenPassword(deps, user, next, by, { temporary: true });
}

/** A password the user chose: the policy, then stored, remembered browsers forgotten, audited and told. */
async function storeChosenPassword(deps: PeopleDeps, user: UserRow, next: string, by: Acting, details: Record<string, unknown> = {}) {
  await assertPasswordAllowed(deps, next, user, 'new_password');
  await deps.queries.users.setPasswordHash(user.id, await deps.hasher.hash(next), { mustChange: false });
  await forgetAllDevices(deps, user.id, by, 'password_change');
  await audit(deps, 'user.password_change', user.id, by, details);
  await deps.notifier.notify(user, 'password_changed');
}

/**
 * The operator's way back in (`latchkey user reset-password`): a new password, generated unless given, that must be
 * changed at the next sign-in; the account's sign-in lockout is lifted and its sessions end, since whoever held the
 * old password may hold them. Second factors stay: a reset never removes or bypasses MFA.
 */
export async function resetPassword(deps: PeopleDeps, user: UserRow, given: string | undefined, by: Acting) {
  if (given !== undefined) await assertPasswordAllowed(deps, given, user);
  const password = given ?? crypto.randomBytes(15).toString('base64url');
  await deps.queries.users.setPasswordHash(user.id, await deps.hasher.hash(password), { mustChange: true });
  await deps.queries.passwordResets.voidAll(user.id, deps.clock.now());
  await deps.queries.throttle.clear(accountGuessKey(user.email));
  const sessions = await signOutEverywhere(deps, user.id);
  await deps.queries.signIns.endAllOf(user.id);
  await forgetAllDevices(deps, user.id, by, 'password_reset');
  await audit(deps, 'user.password_reset', user.id, by, { generated: given === undefined, sessions });
  await deps.notifier.notify(user, 'password_changed');
  return { generatedPassword: given === undefined ? password : undefined };
}
