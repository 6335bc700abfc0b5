import crypto from 'node:crypto';
import { z } from 'zod';
import type { Queries } from '../db/index.js';
import type { PasswordHasher } from '../security/passwords.js';

export const ROLES = [
  'super_admin',
  'access_user_admin',
  'access_user_manager',
  'access_credential_manager',
  'access_site_admin',
  'auditor',
] as const;

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

export async function createUser(deps: { queries: Queries; hasher: PasswordHasher }, input: NewUserInput) {
  const user = newUserSchema.parse(input);
  if (await deps.queries.users.findByEmail(user.email)) {
    throw Object.assign(new Error('a user with this email exists'), { status: 409, expose: true, code: 'email_taken', field: 'email' });
  }
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
