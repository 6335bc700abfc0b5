import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { UserRow } from '../../src/db/users.js';
import { createBypassCodes } from '../../src/mfa/bypass-codes.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, manualClock, recordingNotifier } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The code itself, on the real database: issue, single use under concurrency, expiry, binding to its user. */
let server: TestServer;
const clock = manualClock(new Date());
const notices = recordingNotifier();
let codes: ReturnType<typeof createBypassCodes>;

beforeAll(async () => {
  server = await startTestServer({ clock });
  const { queries, settings, mfa } = server.latchkey;
  codes = createBypassCodes({ queries, clock, notifier: notices.notifier, settings, hashKey: crypto.randomBytes(32), reserveAttempt: mfa.reserveAttempt });
});
afterAll(() => server.close());

const helpdesk = { actorId: '' };
async function userWithFactor() {
  const user = await aUser(server.latchkey);
  await enrolTotp(server.latchkey, user, clock);
  return (await server.latchkey.queries.users.findById(user.id)) as UserRow;
}
async function anIssuer() {
  return { ...helpdesk, actorId: (await aUser(server.latchkey, { roles: ['helpdesk'] })).id };
}

describe('helpdesk bypass codes', () => {
  test('are shown once, stored as a keyed hash with who issued them and why, and the user is told', async () => {
    const user = await userWithFactor();
    const by = await anIssuer();
    const { code, expiresAt } = await codes.issue(user, 'lost phone, identity checked by video call', by);
    expect(code).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    expect(expiresAt.getTime() - clock.now().getTime()).toBe(60 * 60_000);
    const row = await server.database.db('bypass_codes').where({ user_id: user.id }).first();
    expect(JSON.stringify(row)).not.toContain(code.replace(/-/g, ''));
    expect(row).toMatchObject({ issued_by: by.actorId, reason: 'lost phone, identity checked by video call' });
    const [audit] = await server.latchkey.queries.audit.list({ subjectId: user.id, action: 'mfa.bypass_code_issued' });
    expect(audit).toMatchObject({ actor_id: by.actorId, outcome: 'success' });
    expect(audit!.details.reason).toBe('lost phone, identity checked by video call');
    expect(notices.eventsFor(user.id)).toContain('bypass_code_issued');
  });

  test('work once: of 40 concurrent uses exactly one succeeds', async () => {
    const user = await userWithFactor();
    const { code } = await codes.issue(user, 'lost phone', await anIssuer());
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => codes.consume(user.id, code)));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    expect((await codes.consume(user.id, code)).ok).toBe(false);
  });

  test("a helpdesk's code stops working once its user is given a role; a super admin's keeps working", async () => {
    const user = await userWithFactor();
    const { code } = await codes.issue(user, 'lost phone', await anIssuer());
    await server.latchkey.queries.users.update(user.id, { roles: ['access_admin'] });
    expect(await codes.consume(user.id, code)).toEqual({ ok: false, reason: 'issuer_may_not' });
    const superAdmin = { actorId: (await aUser(server.latchkey, { roles: ['super_admin'] })).id };
    const fromSuper = await codes.issue((await server.latchkey.queries.users.findById(user.id))!, 'lost phone', superAdmin);
    expect((await codes.consume(user.id, fromSuper.code)).ok).toBe(true);
  });

  test("are worth nothing for another user, after expiry, or once a newer code replaced them; typing is forgiving", async () => {
    const [user, other] = [await userWithFactor(), await userWithFactor()];
    const by = await anIssuer();
    const first = await codes.issue(user, 'lost phone', by);
    await codes.issue(other, 'lost phone', by);
    expect(await codes.consume(other.id, first.code)).toEqual({ ok: false, reason: 'wrong_code' });

    const second = await codes.issue(user, 'the first one was misheard', by);
    expect((await codes.consume(user.id, first.code)).ok).toBe(false);
    expect((await codes.consume(user.id, second.code.toLowerCase().replace(/-/g, ' '))).ok).toBe(true);

    const late = await codes.issue(user, 'lost phone', by);
    clock.advance(3600);
    expect(await codes.consume(user.id, late.code)).toEqual({ ok: false, reason: 'no_live_code' });
  });

  test('the validity follows the setting', async () => {
    await server.latchkey.settings.write('bypass-code', { ttl_minutes: 10 });
    try {
      const { expiresAt } = await codes.issue(await userWithFactor(), 'lost phone', await anIssuer());
      expect(expiresAt.getTime() - clock.now().getTime()).toBe(10 * 60_000);
    } finally {
      await server.latchkey.settings.write('bypass-code', { ttl_minutes: 60 });
    }
  });

  test('are not issued for oneself, for a disabled account, or for a user with no factor to get past', async () => {
    const user = await userWithFactor();
    await expect(codes.issue(user, 'me', { actorId: user.id })).rejects.toMatchObject({ status: 409, code: 'own_account' });
    const bare = (await server.latchkey.queries.users.findById((await aUser(server.latchkey)).id)) as UserRow;
    await expect(codes.issue(bare, 'lost phone', await anIssuer())).rejects.toMatchObject({ status: 409, code: 'no_second_factor' });
    await expect(codes.issue({ ...user, status: 'disabled' }, 'lost phone', await anIssuer())).rejects.toMatchObject({ status: 409, code: 'user_disabled' });
  });
});
