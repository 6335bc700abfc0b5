import type { Latchkey } from '../../src/app.js';
import type { UserRow } from '../../src/db/users.js';
import type { NotifiedUser, Notifier, SecurityEvent } from '../../src/notify/notifier.js';
import { referenceTotp } from './reference-totp.js';

/** Real time plus an offset the test moves forward, so each sign-in gets a fresh TOTP time step. */
export function steppingClock() {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    nextStep() {
      offset += 30_000;
    },
  };
}

/** A notifier that remembers what it was asked to send. */
export function recordingNotifier() {
  const sent: { userId: string; event: SecurityEvent; details?: Record<string, string> }[] = [];
  const notifier: Notifier = {
    async notify(user: NotifiedUser, event, details) {
      sent.push({ userId: user.id, event, details });
    },
  };
  return { notifier, sent, eventsFor: (userId: string) => sent.filter((s) => s.userId === userId).map((s) => s.event) };
}

/** Enrols a TOTP authenticator as a user would, returning its secret and the recovery codes shown once. */
export async function enrolTotp(latchkey: Latchkey, user: { id: string }, clock: { now(): Date }) {
  const row = (await latchkey.queries.users.findById(user.id)) as UserRow;
  const started = await latchkey.mfa.startEnrolment(row, 'totp');
  const pending = await latchkey.mfa.pendingEnrolment(row, started!.pendingId);
  const secret = pending!.display.secret!;
  const result = await latchkey.mfa.confirmEnrolment(row, started!.pendingId, referenceTotp(secret, clock.now()), { actorId: user.id });
  if (!result.ok) throw new Error(`enrolment failed: ${result.reason}`);
  return { secret, recoveryCodes: result.recoveryCodes ?? [], methodId: result.method.id };
}

/** A clock the test moves by hand, by any number of seconds. */
export function manualClock(start = new Date('2026-06-01T08:00:00Z')) {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    advance(seconds: number) {
      now += seconds * 1000;
    },
  };
}
