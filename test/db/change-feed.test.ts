import { expect, test } from '@jest/globals';
import { type ChangeFeed, createLocalChangeFeed, invalidatedCache } from '../../src/db/change-feed.js';

/** A feed whose connection can be cut: while it is down, changes made elsewhere would not be heard. */
function cuttableFeed() {
  const feed = createLocalChangeFeed();
  let up = true;
  return { feed: { ...feed, live: () => up } satisfies ChangeFeed, cut: () => void (up = false), restore: () => void (up = true) };
}

test('a cached value is served from memory while the feed is up, and read again on every get while it is down', async () => {
  const { feed, cut, restore } = cuttableFeed();
  let stored = 'secret-1';
  let loads = 0;
  const cache = invalidatedCache(feed, 'client', async () => (loads++, stored), 60_000);
  expect(await cache.get('app')).toBe('secret-1');
  expect(await cache.get('app')).toBe('secret-1');
  expect(loads).toBe(1);

  // Rotated on another instance while this one cannot hear it: the very next read has the new value.
  cut();
  stored = 'secret-2';
  expect(await cache.get('app')).toBe('secret-2');
  stored = 'secret-3';
  expect(await cache.get('app')).toBe('secret-3');
  expect(loads).toBe(3);

  restore();
  await feed.publish('client', 'app');
  expect(await cache.get('app')).toBe('secret-3');
  expect(await cache.get('app')).toBe('secret-3');
  expect(loads).toBe(4);
});
