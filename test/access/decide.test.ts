import { describe, expect, test } from '@jest/globals';
import { decideCredential, type DoorFacts, doorModeAt, twoFactorAllowed, type Window } from '../../src/access/decide.js';
import { localMoment } from '../../src/access/time.js';

const allWeek = [0, 1, 2, 3, 4, 5, 6];
const officeHours: Window[] = [
  { days: [1, 2, 3, 4, 5], start: 8 * 60, end: 18 * 60, mode: 'card_and_code' },
  { days: [1, 2, 3, 4, 5], start: 18 * 60, end: 22 * 60, mode: 'access' },
];
const door = (overrides: Partial<DoorFacts> = {}): DoorFacts => ({ id: 'd', hasBadgeReader: true, hasKeypad: true, inOut: false, schedule: officeHours, ...overrides });
const at = (iso: string, zone = 'Asia/Seoul') => localMoment(new Date(iso), zone);
const card = (d: DoorFacts, when: ReturnType<typeof at>, extra: Partial<Parameters<typeof decideCredential>[0]> = {}) =>
  decideCredential({ door: d, at: when, credentialKind: 'card', userActive: true, levelSchedules: [null], direction: 'in', ...extra });

describe('door decisions', () => {
  test('the schedule sets the mode by local weekday and time', () => {
    // 2026-03-02 is a Monday; 09:00 in Seoul is 00:00 UTC.
    expect(doorModeAt(door(), at('2026-03-02T00:00:00Z'))).toBe('card_and_code');
    expect(doorModeAt(door(), at('2026-03-02T10:00:00Z'))).toBe('access');
    expect(doorModeAt(door(), at('2026-03-02T14:00:00Z'))).toBe('locked');
    expect(doorModeAt(door(), at('2026-03-01T01:00:00Z'))).toBe('locked');
    expect(doorModeAt(door({ schedule: undefined }), at('2026-03-01T01:00:00Z'))).toBe('access');
  });

  test('an exception for the day wins over the schedule', () => {
    const holiday = door({ exception: [{ days: allWeek, start: 0, end: 1440, mode: 'locked' }] });
    expect(doorModeAt(holiday, at('2026-03-02T00:00:00Z'))).toBe('locked');
    const event = door({ exception: [{ days: allWeek, start: 600, end: 900, mode: 'card_and_code' }] });
    expect(doorModeAt(event, at('2026-03-01T02:00:00Z'))).toBe('card_and_code');
    expect(card(event, at('2026-03-01T02:00:00Z')).result).toBe('code_required');
  });

  test('a window keeps its wall-clock hours across a daylight-saving change', () => {
    const berlin = door({ schedule: [{ days: allWeek, start: 8 * 60, end: 9 * 60, mode: 'access' }] });
    // Clocks go forward on 2026-03-29: 07:30 UTC is 08:30 in Berlin the day before (CET, UTC+1), 09:30 the day after
    // (CEST, UTC+2), when 08:30 local is 06:30 UTC.
    expect(doorModeAt(berlin, at('2026-03-28T07:30:00Z', 'Europe/Berlin'))).toBe('access');
    expect(doorModeAt(berlin, at('2026-03-30T07:30:00Z', 'Europe/Berlin'))).toBe('locked');
    expect(doorModeAt(berlin, at('2026-03-30T06:30:00Z', 'Europe/Berlin'))).toBe('access');
    // The night of the change itself: 02:00-03:00 does not exist; 01:30 and 03:30 local are one hour apart in UTC.
    const night = door({ schedule: [{ days: allWeek, start: 60, end: 4 * 60, mode: 'unlocked' }] });
    expect(localMoment(new Date('2026-03-29T00:30:00Z'), 'Europe/Berlin').minute).toBe(90);
    expect(localMoment(new Date('2026-03-29T01:30:00Z'), 'Europe/Berlin').minute).toBe(210);
    expect(doorModeAt(night, at('2026-03-29T01:30:00Z', 'Europe/Berlin'))).toBe('unlocked');
    expect(doorModeAt(night, at('2026-03-29T02:30:00Z', 'Europe/Berlin'))).toBe('locked');
  });

  test('card + code asks for a code when entering, not when leaving an in/out door', () => {
    const monday9 = at('2026-03-02T00:00:00Z');
    expect(card(door(), monday9)).toMatchObject({ result: 'code_required' });
    expect(card(door({ inOut: true }), monday9, { direction: 'out' })).toMatchObject({ result: 'grant', reason: 'exit_without_code' });
    expect(card(door({ inOut: true }), monday9, { direction: 'in' })).toMatchObject({ result: 'code_required' });
    expect(card(door({ inOut: false }), monday9, { direction: 'out' })).toMatchObject({ result: 'code_required' });
  });

  test('NFC acts as a card; a Bluetooth unlock does not', () => {
    const monday9 = at('2026-03-02T00:00:00Z');
    expect(card(door(), monday9, { credentialKind: 'nfc' })).toMatchObject({ result: 'code_required' });
    expect(card(door(), monday9, { credentialKind: 'ble' })).toMatchObject({ result: 'deny', reason: 'bluetooth_is_not_a_card' });
  });

  test('two-factor entry needs a badge reader and a keypad', () => {
    expect(twoFactorAllowed({ hasBadgeReader: true, hasKeypad: false })).toBe(false);
    expect(twoFactorAllowed({ hasBadgeReader: false, hasKeypad: true })).toBe(false);
    expect(card(door({ hasKeypad: false }), at('2026-03-02T00:00:00Z'))).toMatchObject({ result: 'deny', reason: 'door_cannot_do_two_factor' });
  });

  test('access levels, disabled users, locked and unlocked doors', () => {
    const evening = at('2026-03-02T10:00:00Z');
    expect(card(door(), evening)).toMatchObject({ result: 'grant', reason: 'access_granted' });
    expect(card(door(), evening, { levelSchedules: [] })).toMatchObject({ result: 'deny', reason: 'no_access' });
    expect(card(door(), evening, { levelSchedules: [[{ days: allWeek, start: 0, end: 60, mode: 'access' }]] })).toMatchObject({ result: 'deny', reason: 'no_access' });
    expect(card(door(), evening, { userActive: false })).toMatchObject({ result: 'deny', reason: 'user_disabled' });
    expect(card(door(), at('2026-03-02T14:00:00Z'))).toMatchObject({ result: 'deny', reason: 'door_locked' });
    expect(card(door({ schedule: [{ days: allWeek, start: 0, end: 1440, mode: 'unlocked' }] }), evening, { levelSchedules: [] })).toMatchObject({ result: 'grant', reason: 'door_unlocked' });
  });
});
