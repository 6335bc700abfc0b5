import crypto from 'node:crypto';
import type { FactorRow } from '../../../db/factors.js';
import type { FactorDeps } from '../../deps.js';
import type { Factor, Method } from '../../factor.js';
import { generateTotpSecret, otpauthUri, toBase32, type TotpParameters, verifyTotp } from './totp.js';

const PENDING_SECONDS = 15 * 60;

/** Time-based one-time passwords (RFC 6238) from an authenticator app. */
export function createTotpFactor(deps: FactorDeps, params: TotpParameters): Factor {
  const { queries, box, clock } = deps;
  // The seal is bound to its row: a sealed seed copied to another user's row does not open.
  const context = (record: Pick<FactorRow, 'id' | 'user_id'>) => `totp:${record.user_id}:${record.id}`;
  const secretOf = (record: FactorRow) => box.open(record.secret_sealed!, context(record));

  const describe = (record: FactorRow): Method => ({
    id: record.id,
    factor: 'totp',
    label: record.label || 'Authenticator app',
    record,
  });

  return {
    id: 'totp',
    amr: 'otp',
    category: 'possession',
    describe,
    enrol: {
      async start(user, input) {
        const label = typeof input.label === 'string' && input.label.trim() ? input.label.trim().slice(0, 60) : '';
        const id = crypto.randomUUID();
        const row = await queries.factors.insertPending({
          id,
          user_id: user.id,
          factor: 'totp',
          label,
          secret_sealed: box.seal(generateTotpSecret(), context({ id, user_id: user.id })),
          destination: null,
          pending_expires_at: new Date(clock.now().getTime() + PENDING_SECONDS * 1000),
        });
        return { pendingId: row.id };
      },
      display(user, pending) {
        const secret = secretOf(pending);
        return { secret: toBase32(secret), otpauthUri: otpauthUri(secret, user.email, deps.issuerName, params), digits: params.digits };
      },
      async confirm(user, pendingId, code) {
        const now = clock.now();
        const pending = await queries.factors.findPending(user.id, pendingId, now);
        if (!pending) return { ok: false, reason: 'not_found' };
        const check = await verifyTotp(secretOf(pending), code, { ...params, now });
        if (!check.ok) return check;
        // The confirming code's step is remembered, so that code cannot also sign in.
        if (!(await queries.factors.confirm(pending.id, now, check.step))) return { ok: false, reason: 'not_found' };
        const confirmed = await queries.factors.findConfirmed(user.id, pending.id);
        return { ok: true, method: describe(confirmed!) };
      },
    },
    async verify(method, code, context) {
      const now = clock.now();
      const check = await verifyTotp(secretOf(method.record), code, { ...params, now, afterStep: method.record.last_used_step });
      if (!check.ok) return check;
      // Two requests with the same code both pass the check above; only one moves the step forward.
      if (context.joinUse) return { ok: true, use: queries.factors.advanceStepPart(method.id, check.step, now) };
      return (await queries.factors.advanceStep(method.id, check.step, now)) ? { ok: true } : { ok: false, reason: 'replayed' };
    },
  };
}
