import type { FactorRow } from '../../../db/factors.js';
import type { Factor, Method } from '../../factor.js';

/** The door side's answers about web PINs; which codes qualify (opted in, long, not trivial, not shared) is its rule. */
export interface DoorPins {
  /** When the user opted in their usable web PIN, or undefined without one. */
  webPinSince(userId: string): Promise<Date | undefined>;
  findWebPin(userId: string, code: string): Promise<unknown>;
}

export const PIN_METHOD_ID = 'pin';

/**
 * The door PIN (an MFA code issued by access admins) as a web second factor, for users who opted in to use it so
 * from their account page. PINs are static like passwords: the sign-in's attempt limits are what guard them.
 */
export function createPinFactor(pins: DoorPins): Factor {
  const describe = (record: FactorRow): Method => ({ id: PIN_METHOD_ID, factor: 'pin', label: record.label, record });
  // Added: when its owner opted it in for sign-in (not the epoch). Its uses are not recorded per PIN.
  const recordFor = (userId: string, since: Date): FactorRow => ({
    id: PIN_METHOD_ID, user_id: userId, factor: 'pin', label: '', secret_sealed: null, destination: null,
    last_used_step: null, created_at: since, confirmed_at: since, last_used_at: null, pending_expires_at: null,
  });
  return {
    id: 'pin',
    amr: 'pin',
    category: 'knowledge',
    describe,
    listOwnMethods: async (userId, known) => {
      const since = known?.webPinSince === undefined ? await pins.webPinSince(userId) : (known.webPinSince ?? undefined);
      return since ? [describe(recordFor(userId, since))] : [];
    },
    async verify(method, code) {
      const digits = code.replace(/\s/g, '');
      if (!/^\d{4,16}$/.test(digits)) return { ok: false, reason: 'malformed' };
      return (await pins.findWebPin(method.record.user_id, digits)) ? { ok: true } : { ok: false, reason: 'wrong_code' };
    },
  };
}
