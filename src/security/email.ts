import { z } from 'zod';

/**
 * The one form of an email address that is stored, looked up and used in throttle keys. Every comparison is exact
 * on this form, so the account a password is checked against and the counter it is charged to are always the same:
 * when the throttle key lowercased in JavaScript and the lookup in PostgreSQL, `admİn@` (U+0130) found the account
 * `admin@` under a fresh counter. NFKC folds compatibility forms (full-width letters, the Kelvin sign) into plain
 * ones before the case mapping; what is left unequal after that (`i̇` from U+0130) is simply another address.
 */
export function canonicalEmail(email: string): string {
  return email.trim().normalize('NFKC').toLowerCase();
}

/** An email address as given in a form, an API body or a file: validated as typed, then made canonical. */
export const emailSchema = z.email({ message: 'expected an email address' }).max(320).transform(canonicalEmail);
