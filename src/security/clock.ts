/** Time comes from here so that expiry, lockouts and TOTP windows can be tested with a controllable clock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
