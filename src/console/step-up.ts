import type { UserRow } from '../db/users.js';
import { ACR, hasSecondFactor, isPhishingResistant, satisfies } from '../mfa/policy.js';
import type { MfaService } from '../mfa/service.js';

/** What a signed-in user is reaching: their own account, or admin rights (admin pages and the admin API). */
export type ConsoleArea = 'account' | 'admin';

/**
 * Whether a sign-in made earlier (the `amr` of a console session or of an access token) still satisfies the MFA
 * policy in force now, and if not, the `acr_values` a step-up must ask for (mfa; phr where the client or the super
 * admin's "admins must use a phishing-resistant factor" asks for a passkey). A session or token outlives the sign-in that made it; enforcement switched on since must
 * reach it too, not only the next sign-in.
 *
 * - Account pages follow the global switch and the client, as a sign-in would. A factor the user enrolled since does
 *   not send their own session back: every change to sign-in methods needs the password again (and the user just
 *   proved the new factor while enrolling it in this very session).
 * - Admin rights ask more: a second factor whenever the policy would ask one of this user at sign-in, including
 *   because they enrolled a factor since (so an admin's password-only session from before is not kept alive).
 *   An admin who has no factor while enforcement is off still works with a password, as before, unless the
 *   phishing-resistant setting is on.
 */
export async function stepUpFor(
  mfa: Pick<MfaService, 'decide'>,
  user: UserRow,
  amr: readonly string[] | undefined,
  area: ConsoleArea,
  client: { requireMfa: boolean; requirePhishingResistant?: boolean } = { requireMfa: false },
): Promise<string | undefined> {
  if (isPhishingResistant(amr)) return undefined;
  // Only a client or the admin-role setting can ask a multi-factor session for more: others need no lookup.
  if (hasSecondFactor(amr) && !client.requirePhishingResistant && !(area === 'admin' && user.roles.length > 0)) return undefined;
  const decision = await mfa.decide(user, client, undefined, { adminRights: area === 'admin' });
  if (decision.phishingResistant) return ACR.phr;
  if (hasSecondFactor(amr)) return undefined;
  // A door PIN never carries admin rights: they ask for a second factor the user holds, not a second thing they know.
  if (area === 'admin') return decision.required ? ACR.mfa : undefined;
  // The enrolment grace lets a password-only session into apps, not into the account console: there the password
  // alone would bind a first factor of the holder's choosing, which under enforcement goes through the sign-in's own
  // enrolment (and its inbox check where mail is configured).
  const enough = satisfies({ ...decision, grace: undefined }, amr);
  return enough || !decision.reasons.some((reason) => reason === 'enforced' || reason === 'client') ? undefined : ACR.mfa;
}
