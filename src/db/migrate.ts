import type { Knex } from 'knex';
import { migrations } from '../../migrations/index.js';
import type { Database } from './connect.js';

const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => migrations.map(([name]) => name),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const found = migrations.find(([candidate]) => candidate === name);
    if (!found) throw new Error(`unknown migration ${name}`);
    return found[1];
  },
};

export async function migrateToLatest(db: Database): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource })) as [number, string[]];
  return applied;
}

export async function rollbackMigrations(db: Database, all = false): Promise<string[]> {
  const [, reverted] = (await db.migrate.rollback({ migrationSource }, all)) as [number, string[]];
  return reverted;
}
