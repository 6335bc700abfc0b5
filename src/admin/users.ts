import crypto from 'node:crypto';
import { z } from 'zod';
import type { SettingsStore } from '../config/settings.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import type { Notifier } from '../notify/notifier.js';
import type { Clock } from '../security/clock.js';
import type { PasswordHasher } from '../security/passwords.js';

export const ROLES = [
  'super_admin',
  'access_user_admin',
  'access_user_manager',
  'access_credential_manager',
  'access_site_admin',
  'auditor',
] as const;
export type Role = (typeof ROLES)[number];

// NIST SP 800-63B 5.1.1.2: at least 8 characters, accept long passphrases, no composition rules.
export const passwordSchema = z.string().min(8, { message: 'expected at least 8 characters' }).max(1024);

export const newUserSchema = z.object({
  email: z.email({ message: 'expected an email address' }).max(320),
  name: z.string().trim().max(200).default(''),
  password: passwordSchema,
  roles: z.array(z.enum(ROLES)).default([]),
  locale: z.enum(['en', 'ko']).optional(),
});

export type NewUserInput = z.input<typeof newUserSchema>;

export const inviteSchema = newUserSchema.omit({ password: true });

export const userPatchSchema = z
  .object({
    name: z.string().trim().max(200).optional(),
    status: z.enum(['active', 'disabled']).optional(),
    locale: z.enum(['en', 'ko']).nullable().optional(),
  })
  .strict();

export const rolesSchema = z.object({ roles: z.array(z.enum(ROLES)).max(ROLES.length) }).strict();

const INVITATION_DAYS = 7;
const emailTaken = () => new AppError(409, 'email_taken', 'a user with this email exists', 'email');

/** An admin's own roles bound what they may hand out and whom they may change: only a super admin touches admins. */
export function assertMayManage(actor: UserRow, target: { roles: readonly string[] }, newRoles: readonly string[] = []) {
  if (actor.roles.includes('super_admin')) return;
  if (target.roles.length > 0 || newRoles.length > 0) throw new AppError(403, 'forbidden', 'only a super admin may manage users who hold roles', 'roles');
}

/** Password rules come from the admin's password policy; NIST SP 800-63B: length, no composition rules. */
export async function assertPasswordPolicy(settings: SettingsStore, password: string, field = 'password') {
  const { min_length } = (await settings.read('password-policy')).value;
  if ([...password].length < min_length) throw new AppError(400, 'invalid_request', `expected at least ${min_length} characters`, field, `${field}: expected at least ${min_length} characters`);
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

export async function createUser(deps: { queries: Queries; hasher: PasswordHasher; settings?: SettingsStore }, input: NewUserInput) {
  const user = newUserSchema.parse(input);
  if (deps.settings) await assertPasswordPolicy(deps.settings, user.password);
  if (await deps.queries.users.findByEmail(user.email)) throw emailTaken();
  return deps.queries.users.insert({
    email: user.email,
    name: user.name,
    passwordHash: await deps.hasher.hash(user.password),
    roles: user.roles,
    locale: user.locale ?? null,
    emailVerified: false,
  });
}

/**
 * First start: with no user at all, create a super admin from LATCHKEY_ADMIN_EMAIL/PASSWORD, or with a generated
 * password that is printed once and never stored in clear.
 */
export async function ensureSuperAdmin(
  deps: { queries: Queries; hasher: PasswordHasher },
  given: { email: string; password: string } | undefined,
): Promise<{ email: string; generatedPassword?: string } | undefined> {
  if ((await deps.queries.users.count()) > 0) return undefined;
  const email = given?.email ?? 'admin@latchkey.local';
  const generatedPassword = given ? undefined : crypto.randomBytes(15).toString('base64url');
  await createUser(deps, { email, name: 'Administrator', password: given?.password ?? generatedPassword!, roles: ['super_admin'] });
  return { email, generatedPassword };
}

export interface PeopleDeps {
  queries: Queries;
  hasher: PasswordHasher;
  settings: SettingsStore;
  notifier: Notifier;
  clock: Clock;
  issuer: string;
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
  if (await deps.queries.users.findByEmail(input.email)) throw emailTaken();
  const user = await deps.queries.users.insert({ email: input.email, name: input.name, passwordHash: null, roles: input.roles, locale: input.locale ?? null });
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
  await assertPasswordPolicy(deps.settings, password);
  if (!(await deps.queries.invitations.use(hashToken(token), deps.clock.now()))) return undefined;
  await deps.queries.users.setPasswordHash(user.id, await deps.hasher.hash(password));
  await deps.queries.users.markEmailVerified(user.id);
  await audit(deps, 'user.invitation_accepted', user.id, { ...by, actorId: user.id });
  return user;
}

export async function updateUser(deps: PeopleDeps, actor: UserRow, target: UserRow, change: z.output<typeof userPatchSchema>, by: Acting) {
  assertMayManage(actor, target);
  if (change.status === 'disabled' && target.id === actor.id) throw new AppError(409, 'cannot_disable_self', 'you cannot disable your own account', 'status');
  const updated = await deps.queries.users.update(target.id, change);
  // A disabled account is signed out everywhere at once, not when its sessions happen to expire.
  if (change.status === 'disabled' && target.status !== 'disabled') await deps.queries.oidcModels.revokeAccount(target.id);
  await audit(deps, 'user.update', target.id, by, { changed: Object.keys(change), ...(change.status ? { status: change.status } : {}) });
  return updated!;
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

export async function revokeSessions(deps: PeopleDeps, target: UserRow, by: Acting, keepSessionId?: string) {
  const sessions = await deps.queries.oidcModels.revokeAccount(target.id, keepSessionId);
  await audit(deps, keepSessionId ? 'user.sign_out_others' : 'user.revoke_sessions', target.id, by, { sessions });
  await deps.notifier.notify(target, 'signed_out_elsewhere');
  return sessions;
}

/** The user's own change: the current password first (ASVS 2.1.5), then the policy, then a notice. */
export async function changePassword(deps: PeopleDeps, user: UserRow, current: string, next: string, by: Acting) {
  const ok = user.password_hash !== null && (await deps.hasher.verify(user.password_hash, current)).valid;
  if (!ok) {
    await audit(deps, 'user.password_change', user.id, by, { reason: 'wrong_password' }, 'failure');
    throw new AppError(400, 'wrong_password', 'the current password is wrong', 'current_password');
  }
  await assertPasswordPolicy(deps.settings, next, 'new_password');
  await deps.queries.users.setPasswordHash(user.id, await deps.hasher.hash(next));
  await audit(deps, 'user.password_change', user.id, by);
  await deps.notifier.notify(user, 'password_changed');
}
