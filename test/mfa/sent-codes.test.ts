import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import type { Factor, Method } from '../../src/mfa/factor.js';
import { createSentCodeFactor } from '../../src/mfa/factors/sent-code/index.js';
import { createThrottle } from '../../src/security/throttle.js';
import { aUser } from '../helpers/factories.js';
import { manualClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const clock = manualClock();
let server: TestServer;
let factor: Factor;
// Only the delivery is replaced: the codes, their storage and their limits are the real ones.
const outbox: { to: string; code: string }[] = [];
const limits = { ttlSeconds: 300, cooldownSeconds: 30, perHourPerUser: 4, perHourPerDestination: 3 };

beforeAll(async () => {
  server = await startTestServer({ clock });
  const { queries, box } = server.latchkey;
  factor = createSentCodeFactor(
    { queries, box, clock, issuerName: 'Latchkey', throttle: createThrottle(queries, clock), limits, hashKey: crypto.randomBytes(32) },
    {
      factor: 'email',
      amr: 'otp',
      field: 'email',
      normalise: (v) => (typeof v === 'string' ? v.toLowerCase() : undefined),
      mask: (v) => v,
      send: async (to, code) => {
        outbox.push({ to, code });
      },
    },
  );
});
afterAll(() => server.close());
beforeEach(() => clock.advance(3600));

async function enrolled(destination = `${crypto.randomUUID()}@example.test`): Promise<Method> {
  const user = await aUser(server.latchkey);
  const enrolling = { id: user.id, email: user.email, locale: 'en' as const };
  const { pendingId } = await factor.enrol!.start(enrolling, { email: destination });
  clock.advance(31);
  const confirmed = await factor.enrol!.confirm(enrolling, pendingId, outbox.at(-1)!.code);
  if (!confirmed.ok) throw new Error(confirmed.reason);
  clock.advance(31);
  return confirmed.method;
}

const ctx = (interactionUid = 'interaction-a') => ({ interactionUid, locale: 'en' as const });
const lastCode = () => outbox.at(-1)!.code;
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, '0');

describe('sent codes', () => {
  test('work once, for the sign-in they were sent for', async () => {
    const method = await enrolled();
    expect(await factor.challenge!(method, ctx('a'))).toMatchObject({ sent: true });
    expect(await factor.verify(method, lastCode(), ctx('b'))).toEqual({ ok: false, reason: 'no_code_sent' });
    expect(await factor.verify(method, lastCode(), ctx('a'))).toEqual({ ok: true });
    expect(await factor.verify(method, lastCode(), ctx('a'))).toEqual({ ok: false, reason: 'no_code_sent' });
  });

  test('expire after five minutes', async () => {
    const method = await enrolled();
    await factor.challenge!(method, ctx());
    clock.advance(301);
    expect(await factor.verify(method, lastCode(), ctx())).toEqual({ ok: false, reason: 'expired' });
  });

  test('allow five tries, after which even the right code is refused', async () => {
    const method = await enrolled();
    await factor.challenge!(method, ctx());
    const code = lastCode();
    for (let i = 0; i < 5; i++) expect(await factor.verify(method, wrong(code), ctx())).toEqual({ ok: false, reason: 'wrong_code' });
    expect(await factor.verify(method, code, ctx())).toEqual({ ok: false, reason: 'too_many_attempts' });
  });

  test('a new code replaces the last one', async () => {
    const method = await enrolled();
    await factor.challenge!(method, ctx());
    const first = lastCode();
    clock.advance(31);
    await factor.challenge!(method, ctx());
    const second = lastCode();
    if (first !== second) expect(await factor.verify(method, first, ctx())).toEqual({ ok: false, reason: 'wrong_code' });
    expect(await factor.verify(method, second, ctx())).toEqual({ ok: true });
  });

  test('resending waits for the cooldown', async () => {
    const method = await enrolled();
    expect(await factor.challenge!(method, ctx())).toEqual({ sent: true, retryAfterSeconds: 30 });
    clock.advance(10);
    expect(await factor.challenge!(method, ctx())).toEqual({ sent: false, reason: 'cooldown', retryAfterSeconds: 20 });
    clock.advance(20);
    expect(await factor.challenge!(method, ctx())).toMatchObject({ sent: true });
  });

  test('a destination gets at most so many codes an hour, whoever asks', async () => {
    const shared = `shared-${crypto.randomUUID()}@example.test`;
    const method = await enrolled(shared);
    // Enrolment sent one already; the cap is 3 an hour.
    expect(await factor.challenge!(method, ctx())).toMatchObject({ sent: true });
    clock.advance(31);
    expect(await factor.challenge!(method, ctx())).toMatchObject({ sent: true });
    clock.advance(31);
    const refused = await factor.challenge!(method, ctx());
    expect(refused).toMatchObject({ sent: false, reason: 'rate_limited' });
    const other = await aUser(server.latchkey);
    await expect(factor.enrol!.start({ id: other.id, email: other.email, locale: 'en' }, { email: shared })).rejects.toMatchObject({ status: 429 });
    expect(await server.database.db('user_factors').where({ user_id: other.id })).toHaveLength(0);
    clock.advance(3601);
    expect(await factor.challenge!(method, ctx())).toMatchObject({ sent: true });
  });

  test('a user gets at most so many codes an hour across destinations', async () => {
    const user = await aUser(server.latchkey);
    const enrolling = { id: user.id, email: user.email, locale: 'en' as const };
    const methods: Method[] = [];
    for (let i = 0; i < 2; i++) {
      const { pendingId } = await factor.enrol!.start(enrolling, { email: `${i}-${crypto.randomUUID()}@example.test` });
      const confirmed = await factor.enrol!.confirm(enrolling, pendingId, lastCode());
      if (confirmed.ok) methods.push(confirmed.method);
      clock.advance(31);
    }
    expect(await factor.challenge!(methods[0]!, ctx())).toMatchObject({ sent: true });
    clock.advance(31);
    expect(await factor.challenge!(methods[1]!, ctx())).toMatchObject({ sent: true });
    clock.advance(31);
    expect(await factor.challenge!(methods[0]!, ctx())).toMatchObject({ sent: false, reason: 'rate_limited' });
  });

  test('codes are stored only as keyed hashes', async () => {
    const method = await enrolled();
    await factor.challenge!(method, ctx());
    const rows = await server.database.db('sent_codes').where({ factor_id: method.id });
    expect(rows.map((r) => r.code_hash)).not.toContain(lastCode());
    expect(JSON.stringify(rows)).not.toContain(`"${lastCode()}"`);
  });
  test('40 wrong codes at once take at most the code’s five tries, and the right code after them is refused', async () => {
    const method = await enrolled();
    expect(await factor.challenge!(method, ctx('burst'))).toMatchObject({ sent: true });
    const code = lastCode();
    const results = await Promise.all(Array.from({ length: 40 }, () => factor.verify(method, wrong(code), ctx('burst'))));
    expect(results.filter((r) => !r.ok && r.reason === 'wrong_code').length).toBeLessThanOrEqual(5);
    expect(await factor.verify(method, code, ctx('burst'))).toEqual({ ok: false, reason: 'too_many_attempts' });
  });

  test('40 sends at once spend at most the hourly quota', async () => {
    const method = await enrolled();
    const before = outbox.length;
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => factor.challenge!(method, ctx(`send-${i}`))));
    expect(results.filter((r) => r.sent).length).toBeLessThanOrEqual(limits.perHourPerDestination);
    expect(outbox.length - before).toBeLessThanOrEqual(limits.perHourPerDestination);
  });
});
