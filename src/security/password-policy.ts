import { z } from 'zod';
import type { SettingsStore } from '../config/settings.js';
import { AppError } from '../errors.js';
import { canonicalEmail } from './email.js';
import { commonPasswords, comparablePassword } from './password-blocklist.js';

/** SP 800-63B-4 3.1.1.2: a password that may be the only factor has at least 15 characters. */
export const SINGLE_FACTOR_MIN_LENGTH = 15;
/** At least 64 must be accepted; more than this is no longer a password but an attempt to make argon2 work. */
export const MAX_PASSWORD_LENGTH = 1024;
/** A new password as a form or an API body gives it; its rules are `assertPasswordAllowed`, which knows the settings. */
export const newPasswordSchema = z
  .string()
  .max(MAX_PASSWORD_LENGTH)
  .describe(`at least ${SINGLE_FACTOR_MIN_LENGTH} characters (the password policy's minimum when MFA is enforced), not a commonly used password, not the email or the service's name`);

export interface PasswordPolicyDeps {
  settings: SettingsStore;
  /** LATCHKEY_ISSUER_NAME: the first word anyone guesses for a service's password. */
  issuerName: string;
}

/** Whose password it is: their email and its parts are context words (SP 800-63B-4 3.1.1.2). */
export interface PasswordOwner {
  email: string;
}

/**
 * The minimum length in force: the admin's `password-policy.min_length` when every user must have a second factor
 * (SP 800-63B-4 allows 8 then), and never less than 15 otherwise, since then a password may be all there is.
 */
export async function minimumPasswordLength(settings: SettingsStore): Promise<number> {
  const { min_length } = (await settings.read('password-policy')).value;
  const mfaEnforced = (await settings.read('enforce-mfa')).value.enabled;
  return mfaEnforced ? min_length : Math.max(SINGLE_FACTOR_MIN_LENGTH, min_length);
}

/** The word in a password: digits and symbols around it and spaces inside it dropped (`Pass word 2024!` is `password`). */
const core = (comparable: string) => comparable.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '').replace(/\s+/gu, '');

function contextWords(issuerName: string, owner: PasswordOwner): Set<string> {
  const email = canonicalEmail(owner.email);
  const [local = '', domain = ''] = email.split('@');
  const labels = domain.split('.').slice(0, -1);
  const words = [email, local, ...local.split(/[._+-]/), ...labels, 'latchkey', issuerName, ...issuerName.split(/\s+/)];
  return new Set(words.map((word) => core(comparablePassword(word))).filter((word) => [...word].length >= 3));
}

const refuse = (field: string, code: string, reason: string) => new AppError(400, code, reason, field, `${field}: ${reason}`);

/**
 * Every new password, wherever it is set: long enough, not among the most common passwords, not made of the
 * service's name or the user's email. No composition rules (SP 800-63B-4 3.1.1.2). Length counts characters of the
 * NFKC form, which is what is hashed.
 */
export async function assertPasswordAllowed(deps: PasswordPolicyDeps, password: string, owner: PasswordOwner, field = 'password') {
  const comparable = comparablePassword(password);
  const length = [...password.normalize('NFKC')].length;
  const minimum = await minimumPasswordLength(deps.settings);
  if (length < minimum) throw refuse(field, 'password_too_short', `expected at least ${minimum} characters`);
  const common = await commonPasswords();
  if (common.has(comparable) || common.has(core(comparable))) throw refuse(field, 'password_common', 'this password is among the most commonly used');
  const context = contextWords(deps.issuerName, owner);
  if (context.has(core(comparable))) {
    throw refuse(field, 'password_context', 'this password is made from your email address or the name of this service');
  }
}
