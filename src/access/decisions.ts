import { z } from 'zod';
import type { ChangeFeed } from '../db/change-feed.js';
import type { OfflineDecisionRow, PendingChange } from '../db/access.js';
import type { Queries } from '../db/index.js';
import { AppError } from '../errors.js';
import type { Clock } from '../security/clock.js';
import { createThrottle, type Throttle, type ThrottleRule } from '../security/throttle.js';
import { accessCodeSchema, codeLookup } from './codes.js';
import { type Decision, decideCredential, DOOR_MODES, doorModeAt } from './decide.js';
import { createSnapshotHolder, databaseFacts, type DecisionFacts, lockNotice } from './snapshot.js';

/** How long after a card its code may be entered on the keypad. */
export const CODE_WINDOW_SECONDS = 20;
const MAX_KEYPAD_TRIES = 3;

// A card gets 3 tries per scan, and scans are free: without this a stolen card could guess its code at leisure.
const WRONG_CODES_PER_CREDENTIAL = 10;
const CREDENTIAL_LOCK_SECONDS = 3600;
const CREDENTIAL_KEY_PREFIX = 'door:credential:';
export const credentialThrottleKey = (credentialId: string) => `${CREDENTIAL_KEY_PREFIX}${credentialId}`;
/** A card's wrong codes, counted with the entry's try (src/db/access.ts takeCodeTry) and reset by a right one. */
const credentialGuesses = {
  keyPrefix: CREDENTIAL_KEY_PREFIX,
  limits: { limit: WRONG_CODES_PER_CREDENTIAL, windowSeconds: CREDENTIAL_LOCK_SECONDS, baseLockSeconds: CREDENTIAL_LOCK_SECONDS },
};

/**
 * A code alone identifies its user, so a keypad is where entry codes are guessed: wrong codes are limited per door
 * and per controller (which guesses for all its doors). A right code is released, not reset: one's own code must
 * not wipe the count of a stranger's guesses. The doubling lock keeps a patient guesser to a few tries an hour.
 */
const keypadRules = (doorId: string, controllerId: string): ThrottleRule[] => [
  { key: `door:keypad:${doorId}`, limit: 10, windowSeconds: 3600, baseLockSeconds: 300, onSuccess: 'release' },
  { key: `door:controller:${controllerId}`, limit: 50, windowSeconds: 3600, baseLockSeconds: 300, onSuccess: 'release' },
];

/** Offline decisions are accepted this far back (a controller cut off over a long weekend) and ahead (clock skew). */
export const OFFLINE_PAST_DAYS = 7;
export const OFFLINE_SKEW_SECONDS = 300;

/** Who is asking at a door: the controller authenticated by the controller API. */
export interface AtDoor {
  controllerId: string;
  /** The controller's site: a door of another site is refused (403) by the decision itself. */
  siteId?: string;
}

/** Door ids as the snapshot and the database both know them (PostgreSQL reads a uuid in any case; a map does not). */
const doorId = z.uuid().transform((id) => id.toLowerCase());

export const scanSchema = z.object({
  door_id: doorId,
  credential: z.string().trim().min(1).max(64),
  direction: z.enum(['in', 'out']).default('in'),
});
export const keypadSchema = z.object({ door_id: doorId, code: z.string().max(32) });
/** Decisions a controller took while it could not reach us, each named by the controller's own id for it. */
export const offlineEventsSchema = z
  .object({
    events: z
      .array(
        z
          .object({
            id: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/, { message: 'expected 1–64 letters, digits, : _ or -' }),
            door_id: doorId,
            occurred_at: z.iso.datetime({ offset: true, message: 'expected an ISO 8601 time such as 2026-03-02T09:00:00Z' }),
            result: z.enum(['grant', 'deny']),
            reason: z.string().regex(/^[a-z_]{1,64}$/, { message: 'expected a reason such as access_granted' }),
            mode: z.enum(DOOR_MODES).nullable().default(null),
            entry: z.enum(['reader', 'keypad']).default('reader'),
            credential: z.string().trim().min(1).max(64).optional(),
            direction: z.enum(['in', 'out']).default('in'),
          })
          .strict(),
      )
      .min(1)
      .max(500),
  })
  .strict();

export interface DecisionDeps {
  queries: Queries;
  /**
   * The queries for what a keypad entry counts before its code is looked at (its try, the guess limits), on a pool
   * that does not wait for each commit's flush. Safe because no answer is given before the decision record's own
   * commit, which is flushed and so flushes every earlier write with it: a count can be lost in a crash only for a
   * guess whose answer was never sent. Defaults to `queries`.
   */
  counters?: Queries;
  clock: Clock;
  lookupKey: Buffer;
  throttle: Throttle;
  /** Without a feed (or with `fromDatabase`) every decision reads the database. */
  feed?: ChangeFeed;
  fromDatabase?: boolean;
  logger?: { warn(obj: object, msg: string): void };
}

/**
 * The access decision for door controllers. The facts come from this instance's snapshot when it has a current one
 * (src/access/snapshot.ts), from the database otherwise; what must hold across instances stays in the database:
 * the card waiting for its code, and every limit on guesses (reserved before the code is looked at).
 */
export function createDoorDecisions(deps: DecisionDeps) {
  const { queries, clock } = deps;
  const access = queries.access;
  const counters = deps.counters ?? queries;
  const throttle = deps.counters ? createThrottle(deps.counters, clock) : deps.throttle;
  const fromDatabase = databaseFacts(queries);
  const snapshots = deps.feed && !deps.fromDatabase ? createSnapshotHolder({ queries, feed: deps.feed, now: () => clock.now(), logger: deps.logger }) : undefined;
  const facts = (): DecisionFacts => snapshots?.facts() ?? fromDatabase;
  const lookup = (code: string) => codeLookup(deps.lookupKey, code);

  const record = (doorId: string, decision: Decision, details: Record<string, unknown>, userId: string | null, pending: PendingChange = null, resets: readonly string[] = []) =>
    access.recordDecision(
      { subject_id: userId, outcome: decision.result === 'deny' ? 'denied' : 'success', details: { door_id: doorId, result: decision.result, reason: decision.reason, mode: decision.mode, ...details } },
      pending,
      resets,
    );

  /** Every instance hears of a card's lock at once, so its reader refuses the card before any code is typed. */
  const announceLock = async (credentialId: string, until: Date) => deps.feed?.publish('access', lockNotice(credentialId, until));
  /** The door as of now, checked in the same read as the decision: of the controller's site. */
  async function doorAt(source: DecisionFacts, doorId: string, now: Date, at: AtDoor) {
    const door = await source.door(doorId, now);
    if (!door) throw new AppError(404, 'door_not_found', 'no such door', 'door_id');
    if (at.siteId !== undefined && door.siteId !== at.siteId) throw new AppError(403, 'forbidden', "this door is not on the controller's site", 'door_id');
    return door;
  }

  return {
    /** Reads this instance's snapshot now rather than on the first decision (no-op when deciding from the database). */
    warm: async () => void (await snapshots?.warm()),

    /** A card (or NFC phone, or Bluetooth unlock) at a door's reader: no read I/O when the snapshot is current. */
    async presentCredential(input: z.infer<typeof scanSchema>, at: AtDoor): Promise<Decision> {
      const source = facts();
      const now = clock.now();
      const { door, at: moment } = await doorAt(source, input.door_id, now, at);
      const seen = { direction: input.direction, controller_id: at.controllerId };
      const holder = await source.holder(input.credential, input.door_id);
      if (!holder) {
        const decision: Decision = { result: 'deny', mode: null, reason: 'unknown_credential' };
        await record(input.door_id, decision, { credential: input.credential.slice(0, 64), ...seen }, null);
        return decision;
      }
      const locked = holder.lockedUntil !== null && holder.lockedUntil > now;
      const decision: Decision = locked
        ? { result: 'deny', mode: null, reason: 'credential_locked' }
        : decideCredential({ door, at: moment, credentialKind: holder.kind, userActive: holder.active, suspended: holder.suspended, levelSchedules: holder.levelSchedules, direction: input.direction });
      const waiting = decision.result === 'code_required'
        ? { put: { door_id: input.door_id, user_id: holder.userId, credential_id: holder.credentialId, expires_at: new Date(now.getTime() + CODE_WINDOW_SECONDS * 1000) } }
        : null;
      await record(input.door_id, decision, { credential_id: holder.credentialId, credential_kind: holder.kind, ...seen }, holder.userId, waiting);
      return decision;
    },

    /**
     * A code on the keypad. After a card at a two-factor door it must be one of that user's codes, within the window;
     * on its own it must be an entry code, which identifies its user, at a door that accepts a code alone. Every
     * guess is reserved before its code is looked at (the card's try, the card's count, the door's and the
     * controller's counts), so concurrent guesses cannot outrun a limit.
     */
    async enterCode(input: z.infer<typeof keypadSchema>, at: AtDoor): Promise<Decision> {
      const source = facts();
      const now = clock.now();
      const { door, at: moment } = await doorAt(source, input.door_id, now, at);
      // A door configured without a keypad takes no code, whatever a controller sends (no card waits there either:
      // card + code entry needs a keypad).
      if (!door.hasKeypad) {
        const decision: Decision = { result: 'deny', mode: null, reason: 'no_keypad' };
        await record(input.door_id, decision, { entry: 'keypad', controller_id: at.controllerId }, null);
        return decision;
      }
      const code = accessCodeSchema.safeParse(input.code);
      const waiting = await counters.access.takeCodeTry(input.door_id, MAX_KEYPAD_TRIES, now, credentialGuesses);
      const deny = async (reason: string, userId: string | null, extra: Record<string, unknown> = {}, change: PendingChange = null) => {
        const decision: Decision = { result: 'deny', mode: waiting ? 'card_and_code' : null, reason };
        await record(input.door_id, decision, { entry: 'keypad', controller_id: at.controllerId, ...extra }, userId, change);
        return decision;
      };
      if (waiting) {
        const card = { credential_id: waiting.credential_id };
        const clear = { clear: { door_id: input.door_id, expires_at: waiting.expires_at } };
        if (waiting.expires_at <= now) return deny('code_too_late', waiting.user_id, card, clear);
        // Tries used up by entries before this one, or concurrent with it: this one is not looked at.
        if (waiting.try_no === null) return deny('no_tries_left', waiting.user_id, card);
        const lockedUntil = waiting.locked_until && waiting.locked_until > now ? waiting.locked_until : undefined;
        if (waiting.guess_count === null) {
          const [decision] = await Promise.all([deny('credential_locked', waiting.user_id, card, clear), lockedUntil && announceLock(waiting.credential_id, lockedUntil)]);
          return decision;
        }
        // The card as it is now: suspended, its user disabled, its access or the door closed since the scan, it
        // opens nothing, whatever code follows (and the code is not looked at).
        const holder = await source.holderById(waiting.credential_id, input.door_id);
        const cardNow = holder && decideCredential({ door, at: moment, credentialKind: holder.kind, userActive: holder.active, suspended: holder.suspended, levelSchedules: holder.levelSchedules, direction: 'in' });
        if (!cardNow || cardNow.result === 'deny') return deny(cardNow?.reason ?? 'unknown_credential', waiting.user_id, card, clear);
        const kind = code.success ? await source.userCode(waiting.user_id, lookup(code.data)) : undefined;
        if (!kind) {
          // This guess may have been the one that locked the card.
          const [decision] = await Promise.all([
            deny('wrong_code', waiting.user_id, card, waiting.try_no >= MAX_KEYPAD_TRIES ? clear : null),
            lockedUntil && announceLock(waiting.credential_id, lockedUntil),
          ]);
          return decision;
        }
        const decision: Decision = { result: 'grant', mode: 'card_and_code', reason: 'card_and_code_accepted' };
        await record(input.door_id, decision, { entry: 'keypad', controller_id: at.controllerId, ...card, code_kind: kind }, waiting.user_id, clear, [credentialThrottleKey(waiting.credential_id)]);
        return decision;
      }
      if (doorModeAt(door, moment) === 'card_and_code') return deny('card_first', null);
      const guess = await throttle.reserve(keypadRules(input.door_id, at.controllerId));
      if (!guess.allowed) return deny('keypad_locked', null, { retry_after_seconds: guess.retryAfterSeconds });
      const entry = code.success ? await source.entryHolder(lookup(code.data), input.door_id) : undefined;
      if (!entry) return deny('unknown_code', null);
      const decision = decideCredential({ door, at: moment, credentialKind: 'card', userActive: entry.active, levelSchedules: entry.levelSchedules, direction: 'in' });
      await Promise.all([guess.succeeded(), record(input.door_id, decision, { entry: 'keypad', controller_id: at.controllerId, code_kind: 'entry' }, entry.userId)]);
      return decision;
    },

    /**
     * Decisions a controller took offline, into the same decision log at the time they were taken. Each is stored
     * once (a replayed batch stores nothing new); the whole batch is refused, naming the field, if any event is out
     * of bounds or about another site's door.
     */
    async recordOfflineEvents(input: z.infer<typeof offlineEventsSchema>, controller: { id: string; site_id: string }) {
      const source = facts();
      const now = clock.now();
      const earliest = now.getTime() - OFFLINE_PAST_DAYS * 86_400_000;
      const latest = now.getTime() + OFFLINE_SKEW_SECONDS * 1000;
      const rows: OfflineDecisionRow[] = [];
      const timeOf = new Map<string, number>();
      for (const [i, event] of input.events.entries()) {
        const occurredAt = new Date(event.occurred_at);
        // One id names one event: sent twice in a batch, it is sent at one time (a replay), not two.
        const sameId = timeOf.get(event.id);
        if (sameId !== undefined && sameId !== occurredAt.getTime()) throw new AppError(400, 'invalid_request', `event ${event.id} is also in this batch at another time`, `events.${i}.occurred_at`);
        timeOf.set(event.id, occurredAt.getTime());
        if (occurredAt.getTime() < earliest) throw new AppError(400, 'invalid_request', `older than ${OFFLINE_PAST_DAYS} days`, `events.${i}.occurred_at`);
        if (occurredAt.getTime() > latest) throw new AppError(400, 'invalid_request', 'in the future', `events.${i}.occurred_at`);
        if ((await source.door(event.door_id, now))?.siteId !== controller.site_id) {
          throw new AppError(400, 'invalid_request', 'no such door at this controller\'s site', `events.${i}.door_id`);
        }
        const holder = event.credential === undefined ? undefined : await source.holder(event.credential, event.door_id);
        rows.push({
          occurred_at: occurredAt,
          outcome: event.result === 'deny' ? 'denied' : 'success',
          subject_id: holder?.userId ?? null,
          details: {
            door_id: event.door_id,
            result: event.result,
            reason: event.reason,
            mode: event.mode,
            entry: event.entry,
            direction: event.direction,
            ...(holder ? { credential_id: holder.credentialId, credential_kind: holder.kind } : event.credential !== undefined ? { credential: event.credential } : {}),
            controller_id: controller.id,
            event_id: event.id,
            offline: true,
            received_at: now.toISOString(),
          },
        });
      }
      // An event stored before, resent at another time (the controller's clock set meanwhile), is not stored again.
      // Its first time was at most OFFLINE_PAST_DAYS before it reached us, so before this batch's earliest bound.
      const stored = new Set(await access.storeOfflineDecisions(controller.id, rows, new Date(earliest - OFFLINE_PAST_DAYS * 86_400_000)));
      return { stored: [...stored], already_stored: [...new Set(input.events.map((e) => e.id).filter((id) => !stored.has(id)))] };
    },
  };
}

export type DoorDecisions = ReturnType<typeof createDoorDecisions>;
