import { z } from 'zod';
import type { LocalMoment } from './time.js';

export const DOOR_MODES = ['locked', 'access', 'card_and_code', 'unlocked'] as const;
export type DoorMode = (typeof DOOR_MODES)[number];

const minute = z.number().int().min(0).max(1440);
export const windowSchema = z
  .object({
    days: z.array(z.number().int().min(0).max(6)).min(1).max(7).default([0, 1, 2, 3, 4, 5, 6]),
    start: minute,
    end: minute,
    mode: z.enum(DOOR_MODES),
  })
  .refine((w) => w.end > w.start, { message: 'a window ends after it starts', path: ['end'] });
export const windowsSchema = z.array(windowSchema).max(100);
export type Window = z.infer<typeof windowSchema>;

export interface DoorFacts {
  id: string;
  hasBadgeReader: boolean;
  hasKeypad: boolean;
  inOut: boolean;
  /** The door's schedule windows, if it has a schedule; without one the door is access controlled. */
  schedule?: Window[];
  /** Today's exception at this door, if any: it wins over the schedule. */
  exception?: Window[];
}

export type CredentialKind = 'card' | 'nfc' | 'ble' | 'nearby';
export type Direction = 'in' | 'out';

export type Decision =
  | { result: 'grant'; mode: DoorMode; reason: string }
  | { result: 'deny'; mode: DoorMode | null; reason: string }
  | { result: 'code_required'; mode: 'card_and_code'; reason: string };

const within = (w: Pick<Window, 'start' | 'end'>, at: LocalMoment) => at.minute >= w.start && at.minute < w.end;

/** Two-factor entry needs a reader and a keypad; a schedule or exception asking for it elsewhere is refused. */
export function twoFactorAllowed(door: Pick<DoorFacts, 'hasBadgeReader' | 'hasKeypad'>): boolean {
  return door.hasBadgeReader && door.hasKeypad;
}

/** The door's mode at this moment: an exception for the day wins over the schedule; outside every window, locked. */
export function doorModeAt(door: DoorFacts, at: LocalMoment): DoorMode {
  if (door.exception) return door.exception.find((w) => within(w, at))?.mode ?? 'locked';
  if (!door.schedule) return 'access';
  return door.schedule.find((w) => w.days.includes(at.weekday) && within(w, at))?.mode ?? 'locked';
}

/** Whether one of the user's access levels for this door is open now (a level without schedule always is). */
export function levelOpen(levelSchedules: Array<Window[] | null>, at: LocalMoment): boolean {
  return levelSchedules.some((windows) => windows === null || windows.some((w) => w.mode !== 'locked' && w.days.includes(at.weekday) && within(w, at)));
}

/**
 * What a controller should do when a credential is presented at a door's reader. Seed 002: NFC acts as a card;
 * a Bluetooth unlock opens doors on its own but cannot stand in for the card of card + code entry; Nearby Unlock
 * (and remote unlock) open even a two-factor door without a code.
 */
export function decideCredential(input: {
  door: DoorFacts;
  at: LocalMoment;
  credentialKind: CredentialKind;
  /** A suspended credential (a lost card) is kept but opens nothing. */
  suspended?: boolean;
  userActive: boolean;
  levelSchedules: Array<Window[] | null>;
  direction: Direction;
}): Decision {
  const mode = doorModeAt(input.door, input.at);
  if (input.suspended) return { result: 'deny', mode, reason: 'credential_suspended' };
  if (!input.userActive) return { result: 'deny', mode, reason: 'user_disabled' };
  if (mode === 'unlocked') return { result: 'grant', mode, reason: 'door_unlocked' };
  if (mode === 'locked') return { result: 'deny', mode, reason: 'door_locked' };
  if (!levelOpen(input.levelSchedules, input.at)) return { result: 'deny', mode, reason: 'no_access' };
  if (mode === 'card_and_code') {
    if (input.door.inOut && input.direction === 'out') return { result: 'grant', mode, reason: 'exit_without_code' };
    if (input.credentialKind === 'ble') return { result: 'deny', mode, reason: 'bluetooth_is_not_a_card' };
    if (input.credentialKind === 'nearby') return { result: 'grant', mode, reason: 'nearby_unlock' };
    if (!twoFactorAllowed(input.door)) return { result: 'deny', mode, reason: 'door_cannot_do_two_factor' };
    return { result: 'code_required', mode, reason: 'card_accepted' };
  }
  return { result: 'grant', mode, reason: input.credentialKind === 'nearby' ? 'nearby_unlock' : 'access_granted' };
}
