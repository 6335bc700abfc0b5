import type { AuditEvent } from '../db/audit.js';

/** Things a user is told about because someone may be acting on their account. */
export const SECURITY_EVENTS = [
  'mfa_failed_after_password',
  'factor_added',
  'factor_removed',
  'recovery_code_used',
  'recovery_codes_regenerated',
  'mfa_disabled',
  'mfa_reset_by_admin',
  'password_changed',
  'signed_out_elsewhere',
  'invited',
  'door_pin_issued',
  'door_pin_changed',
  'email_changed',
  'bypass_code_issued',
] as const;
export type SecurityEvent = (typeof SECURITY_EVENTS)[number];

export interface NotifiedUser {
  id: string;
  email: string;
  locale: string | null;
}

export interface Notifier {
  /** Never throws: a notice that cannot be delivered is logged, it does not undo the action it reports. */
  notify(user: NotifiedUser, event: SecurityEvent, details?: Record<string, string>): Promise<void>;
}

export type { AuditEvent };
