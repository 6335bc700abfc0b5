import { AppError } from '../errors.js';
import { TooManyGuesses } from '../security/password-guesses.js';

const MESSAGES: Record<string, string> = {
  wrong_password: 'account.error.wrong_password',
  password_too_short: 'account.error.password_short',
  password_common: 'account.error.password_common',
  password_context: 'account.error.password_context',
  throttled: 'login.error.throttled',
};

/** The form error for a refused password (the message key, its detail, and when to retry), or undefined for any other error. */
export function passwordFormError(error: unknown): { message: string; detail?: string; retryAfterSeconds?: number } | undefined {
  if (!(error instanceof AppError) || !MESSAGES[error.code]) return undefined;
  return { message: MESSAGES[error.code]!, detail: error.detail, retryAfterSeconds: error instanceof TooManyGuesses ? error.retryAfterSeconds : undefined };
}
