import type { SettingValue } from '../config/settings.js';
import type { EnrolmentGraceRow } from '../db/enrolment-grace.js';
import type { MfaDecision } from './policy.js';

/** What is left of a user's enrolment grace; a limit the admin did not set is absent. */
export interface GraceLeft {
  days?: number;
  signIns?: number;
}

/**
 * Whether "later" could answer this decision at all: the global switch is its only demand and the user has nothing
 * enrolled. An app's `require_mfa`, `acr_values` asking for MFA, a phishing-resistant demand or a factor the user
 * holds are never postponed.
 */
export const postponable = (decision: MfaDecision) =>
  decision.mustEnrol && !decision.phishingResistant && !decision.pinAccepted && decision.reasons.length === 1 && decision.reasons[0] === 'enforced';

/** What remains of the grace for a user (their row, if they chose "later" before), or undefined when none does. */
export function graceLeft(limits: SettingValue<'enrolment-grace'>, row: EnrolmentGraceRow | undefined, now: Date): GraceLeft | undefined {
  if (limits.days === 0 && limits.sign_ins === 0) return undefined;
  const left: GraceLeft = {};
  if (limits.sign_ins > 0) left.signIns = limits.sign_ins - (row?.sign_ins ?? 0);
  // Days count from the first "later"; before it, the whole period is ahead.
  if (limits.days > 0) left.days = Math.ceil(((row?.started_at.getTime() ?? now.getTime()) + limits.days * 86_400_000 - now.getTime()) / 86_400_000);
  return (left.signIns ?? 1) > 0 && (left.days ?? 1) > 0 ? left : undefined;
}
