import type { SettingValue } from '../config/settings.js';
import { AppError } from '../errors.js';
import { canonicalEmail } from './email.js';
import type { ThrottleRule } from './throttle.js';

/**
 * One counter of wrong passwords per account, whichever page they are typed on (sign-in, re-authentication,
 * password change): a separate budget per page would multiply the guesses an attacker gets.
 */
export const accountGuessKey = (email: string) => `login:account:${canonicalEmail(email)}`;

export const accountGuessRule = (lockout: SettingValue<'lockout'>, email: string): ThrottleRule => ({
  key: accountGuessKey(email),
  limit: lockout.login_account_failures,
  windowSeconds: lockout.login_window_seconds,
  baseLockSeconds: 30,
  onSuccess: 'reset',
});

/** Refused before the password was even checked: the answer carries when to try again. */
export class TooManyGuesses extends AppError {
  constructor(readonly retryAfterSeconds: number, field: string) {
    super(429, 'throttled', 'too many wrong passwords: wait a little and try again', field);
  }
}
