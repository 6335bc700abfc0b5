import { describe, expect, test } from '@jest/globals';
import { loadConfig } from '../../src/config/index.js';
import { createSettingsStore, settingDefaults } from '../../src/config/settings.js';
import { createLocalChangeFeed } from '../../src/db/change-feed.js';
import type { Queries } from '../../src/db/index.js';

/** A settings table of `rows`, counting the reads that reach it. */
function settingsTable(rows: Record<string, { value: unknown; version: number }> = {}) {
  const reads: string[] = [];
  const queries = {
    settings: {
      get: async (key: string) => {
        reads.push(key);
        return rows[key] && { key, ...rows[key], updated_at: new Date() };
      },
      put: async () => undefined,
    },
  } as unknown as Queries;
  return { queries, reads };
}

describe('settings, as the hot paths read them', () => {
  // The second-factor page reads settings no admin ever wrote (no row): their defaults are kept like stored values.
  test('a setting with no row is read once and its default kept, until the change feed names it', async () => {
    const { queries, reads } = settingsTable();
    const feed = createLocalChangeFeed();
    const settings = createSettingsStore(queries, settingDefaults(loadConfig({}), ['totp']), feed);
    for (let i = 0; i < 3; i++) expect(await settings.read('remember-device')).toEqual({ value: { days: 0 }, version: 0 });
    expect(reads).toEqual(['remember_device']);
    await feed.publish('setting', 'remember-device');
    await settings.read('remember-device');
    expect(reads).toEqual(['remember_device', 'remember_device']);
  });

  test('a stored setting is kept the same way, and dropped whole when the feed says anything may have changed', async () => {
    const { queries, reads } = settingsTable({ 'remember_device': { value: { days: 7 }, version: 3 } });
    const feed = createLocalChangeFeed();
    let handler: ((key: string | undefined) => void) | undefined;
    const spied = { ...feed, subscribe: (topic: Parameters<typeof feed.subscribe>[0], h: (key: string | undefined) => void) => ((handler = h), feed.subscribe(topic, h)) };
    const settings = createSettingsStore(queries, settingDefaults(loadConfig({}), ['totp']), spied);
    expect(await settings.read('remember-device')).toEqual({ value: { days: 7 }, version: 3 });
    await settings.read('remember-device');
    expect(reads).toHaveLength(1);
    handler!(undefined);
    await settings.read('remember-device');
    expect(reads).toHaveLength(2);
  });
});
