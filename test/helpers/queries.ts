import type { Database } from '../../src/db/connect.js';

/** The SQL of every query knex sends while `work` runs (its `query` events): the database round trips it cost. */
export async function queriesDuring(db: Database, work: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (query: { sql: string }) => seen.push(query.sql);
  db.on('query', listener);
  try {
    await work();
  } finally {
    db.removeListener('query', listener);
  }
  return seen;
}
