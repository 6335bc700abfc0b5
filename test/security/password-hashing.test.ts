import { expect, test } from '@jest/globals';
import { createPasswordHasher, limitConcurrency } from '../../src/security/passwords.js';

test('no more hashing tasks run at once than there are slots; a failing one frees its slot', async () => {
  const inTurn = limitConcurrency(2);
  let running = 0;
  let most = 0;
  const order: number[] = [];
  const task = (i: number) =>
    inTurn(async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      order.push(i);
      if (i === 1) throw new Error('boom');
      return i;
    });
  const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map(task));
  expect(most).toBe(2);
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
  expect(order.slice(2).sort()).toEqual([2, 3, 4, 5]);
});

test('argon2id through the limited pool still verifies right and wrong passwords', async () => {
  const hasher = createPasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }, 1);
  const stored = await hasher.hash('correct horse');
  const checks = await Promise.all(['correct horse', 'wrong', 'correct horse'].map((p) => hasher.verify(stored, p)));
  expect(checks.map((c) => c.valid)).toEqual([true, false, true]);
  expect((await hasher.verify(null, 'anything')).valid).toBe(false);
});
