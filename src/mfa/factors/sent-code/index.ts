import crypto from 'node:crypto';
import type { Config } from '../../../config/index.js';
import type { FactorRow } from '../../../db/factors.js';
import { AppError } from '../../../errors.js';
import type { Locale } from '../../../i18n.js';
import { DeliveryError } from '../../../notify/sms.js';
import type { Throttle } from '../../../security/throttle.js';
import type { FactorDeps } from '../../deps.js';
import type { ChallengeOutcome, Factor, FactorId, Method, VerifyOutcome } from '../../factor.js';

/** How one channel reaches a person: SMS to a phone, a message to an inbox. */
export interface CodeChannel {
  factor: Extract<FactorId, 'sms' | 'email'>;
  amr: string;
  /** The destination as stored (E.164, lower-cased email), or undefined when the input is not one. */
  normalise(input: unknown): string | undefined;
  /** The field the enrolment form asks for, named in the error when it is wrong. */
  field: string;
  mask(destination: string): string;
  send(destination: string, code: string, locale: Locale): Promise<void>;
}

export interface SentCodeDeps extends FactorDeps {
  throttle: Throttle;
  limits: Config['sentCodes'];
  hashKey: Buffer;
  /** Where a provider's failure (not a wrong number) is reported to the operator. */
  onProviderFailure?: (error: DeliveryError | Error, factor: string) => void;
}

const MAX_ATTEMPTS = 5;
const PENDING_SECONDS = 15 * 60;

function sixDigits(): string {
  return crypto.randomInt(0, 1_000_000).toString().padStart(6, '0');
}

/**
 * A second factor that sends a 6-digit code: valid a few minutes, stored as a keyed hash, bound to the sign-in it
 * was sent for, single use, five tries. Sending is held back by a cooldown and hourly caps per user and per
 * destination, so the provider cannot be used to flood a phone or an inbox (or to pump paid SMS).
 */
export function createSentCodeFactor(deps: SentCodeDeps, channel: CodeChannel): Factor {
  const { queries, clock, throttle, limits } = deps;
  const hash = (id: string, code: string) => crypto.createHmac('sha256', deps.hashKey).update(`${id}:${code}`).digest();

  const describe = (record: FactorRow): Method => ({
    id: record.id,
    factor: channel.factor,
    label: record.label,
    hint: record.destination ? channel.mask(record.destination) : undefined,
    record,
  });

  async function send(record: FactorRow, interactionUid: string | null, locale: Locale): Promise<ChallengeOutcome> {
    const now = clock.now();
    const last = await queries.sentCodes.lastSentAt(record.id, interactionUid);
    const wait = last ? Math.ceil((last.getTime() + limits.cooldownSeconds * 1000 - now.getTime()) / 1000) : 0;
    if (wait > 0) return { sent: false, reason: 'cooldown', retryAfterSeconds: wait };
    const hour = { windowSeconds: 3600, baseLockSeconds: 3600, onSuccess: 'release' as const };
    const quota = await throttle.reserve([
      { key: `send:user:${record.user_id}`, limit: limits.perHourPerUser, ...hour },
      { key: `send:destination:${record.destination}`, limit: limits.perHourPerDestination, ...hour },
    ]);
    if (!quota.allowed) return { sent: false, reason: 'rate_limited', retryAfterSeconds: quota.retryAfterSeconds };

    const id = crypto.randomUUID();
    const code = sixDigits();
    await queries.sentCodes.issue({
      id,
      user_id: record.user_id,
      factor_id: record.id,
      interaction_uid: interactionUid,
      code_hash: hash(id, code).toString('base64url'),
      created_at: now,
      expires_at: new Date(now.getTime() + limits.ttlSeconds * 1000),
    });
    try {
      await channel.send(record.destination!, code, locale);
    } catch (error) {
      await queries.sentCodes.remove(id);
      // A message that never left does not use up the hourly quota.
      await quota.succeeded();
      const refusedDestination = error instanceof DeliveryError && error.kind === 'destination';
      if (!refusedDestination) deps.onProviderFailure?.(error as Error, channel.factor);
      return { sent: false, reason: refusedDestination ? 'destination_rejected' : 'delivery_failed', detail: error instanceof DeliveryError ? error.detail : undefined };
    }
    return { sent: true, retryAfterSeconds: limits.cooldownSeconds };
  }

  async function check(record: FactorRow, interactionUid: string | null, code: string): Promise<VerifyOutcome> {
    const now = clock.now();
    const sent = await queries.sentCodes.latest(record.id, interactionUid);
    if (!sent) return { ok: false, reason: 'no_code_sent' };
    if (sent.expires_at <= now) return { ok: false, reason: 'expired' };
    const given = code.replace(/\s/g, '');
    if (!/^\d{6}$/.test(given)) return { ok: false, reason: 'malformed' };
    if (!(await queries.sentCodes.reserveAttempt(sent.id, MAX_ATTEMPTS))) return { ok: false, reason: 'too_many_attempts' };
    if (!crypto.timingSafeEqual(hash(sent.id, given), Buffer.from(sent.code_hash, 'base64url'))) return { ok: false, reason: 'wrong_code' };
    return (await queries.sentCodes.consume(sent.id, now)) ? { ok: true } : { ok: false, reason: 'replayed' };
  }

  return {
    id: channel.factor,
    amr: channel.amr,
    category: 'possession',
    describe,
    enrol: {
      async start(user, input) {
        const destination = channel.normalise(input[channel.field]);
        if (!destination) throw new AppError(400, `invalid_${channel.field}`, `invalid ${channel.field}`, channel.field);
        const row = await queries.factors.insertPending({
          id: crypto.randomUUID(),
          user_id: user.id,
          factor: channel.factor,
          label: channel.mask(destination),
          secret_sealed: null,
          destination,
          pending_expires_at: new Date(clock.now().getTime() + PENDING_SECONDS * 1000),
        });
        const outcome = await send(row, null, user.locale);
        if (!outcome.sent) {
          // Nothing is half-enrolled: a destination we could not reach is not kept.
          await queries.factors.remove(user.id, row.id);
          if (outcome.reason === 'destination_rejected') throw new AppError(400, `${channel.field}_rejected`, 'the provider refused this destination', channel.field, outcome.detail);
          if (outcome.reason === 'delivery_failed') throw new AppError(503, 'delivery_failed', 'delivery failed', undefined, outcome.detail);
          throw new AppError(429, 'send_rate_limited', 'too many codes sent', channel.field);
        }
        return { pendingId: row.id };
      },
      display: (_user, pending) => ({ sentTo: pending.destination ? channel.mask(pending.destination) : undefined }),
      async confirm(user, pendingId, code) {
        const pending = await queries.factors.findPending(user.id, pendingId, clock.now());
        if (!pending) return { ok: false, reason: 'not_found' };
        const outcome = await check(pending, null, code);
        if (!outcome.ok) return outcome;
        if (!(await queries.factors.confirm(pending.id, clock.now(), null))) return { ok: false, reason: 'not_found' };
        return { ok: true, method: describe((await queries.factors.findConfirmed(user.id, pending.id))!) };
      },
    },
    challenge: (method, context) => send(method.record, context.interactionUid, context.locale),
    verify: (method, code, context) => check(method.record, context.interactionUid, code),
  };
}
