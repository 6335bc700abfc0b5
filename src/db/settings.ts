import type { Database } from './connect.js';

export interface SettingRow {
  key: string;
  value: unknown;
  version: number;
  updated_at: Date;
}

export function createSettingQueries(db: Database) {
  const settings = () => db<SettingRow>('settings');
  return {
    get: (key: string) => settings().where({ key }).first(),
    /** Writes a setting; with `expectedVersion`, only if nobody changed it since (optimistic concurrency). */
    put: async (key: string, value: unknown, expectedVersion?: number): Promise<SettingRow | undefined> => {
      const json = JSON.stringify(value);
      if (expectedVersion === undefined) {
        const [row] = await settings()
          .insert({ key, value: json, version: 1 })
          .onConflict('key')
          .merge({ value: json, version: db.raw('settings.version + 1'), updated_at: db.fn.now() } as never)
          .returning('*');
        return row as SettingRow;
      }
      if (expectedVersion === 0) {
        // Version 0 is "never written": only the first writer may create it.
        const [created] = await settings().insert({ key, value: json, version: 1 }).onConflict('key').ignore().returning('*');
        return created as SettingRow | undefined;
      }
      const [row] = await settings()
        .where({ key, version: expectedVersion })
        .update({ value: json, version: expectedVersion + 1, updated_at: db.fn.now() } as never)
        .returning('*');
      return row as SettingRow | undefined;
    },
  };
}
