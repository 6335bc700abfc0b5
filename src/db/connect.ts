import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';

export type Database = Knex;

// count(*) and bigserial come back as strings from `pg` and as numbers from PGlite: make both numbers, here only.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

interface PGliteQuery {
  method?: string;
  returning?: unknown;
  response: { affectedRows?: number };
}

/**
 * knex-pglite reports a delete as command "DEL", which knex's PostgreSQL code does not count as a DELETE: a delete
 * would answer with a result object instead of the number of rows removed. Answer as `pg` does.
 */
class PGliteClient extends (ClientPgLite as unknown as new (config: Knex.Config) => { processResponse(obj: PGliteQuery, runner: unknown): unknown }) {
  override processResponse(obj: PGliteQuery, runner: unknown) {
    const result = super.processResponse(obj, runner);
    return obj.method === 'del' && !obj.returning ? (obj.response.affectedRows ?? 0) : result;
  }
}

export interface DatabaseOptions {
  /** postgres:// URL; without it the embedded PGlite is used. */
  url?: string;
  poolMax?: number;
  /** Where PGlite keeps its files; omitted means in memory. */
  dataDir?: string;
  /** An already running PGlite instance (tests start one from a migrated snapshot). */
  pglite?: PGlite;
  searchPath?: string;
}

export class DatabaseInUseError extends Error {
  constructor(dir: string, pid: number) {
    super(
      `the embedded database in ${dir} is in use by process ${pid} (is \`npm start\` running?). ` +
        'PGlite serves one process at a time: stop that process first, or use PostgreSQL (DATABASE_URL).',
    );
    this.name = 'DatabaseInUseError';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite keeps the whole database in one process's memory: a second process on the same directory would neither see
 * the first one's writes nor keep its own safely. The directory is held with a PID lock file; a lock left by a
 * process that is gone is taken over.
 */
function lockDataDir(dir: string): () => void {
  const lock = path.join(dir, 'latchkey.lock');
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(lock, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) throw new DatabaseInUseError(dir, holder);
      fs.rmSync(lock, { force: true });
    }
  }
  let held = true;
  const release = () => {
    if (held && fs.existsSync(lock) && fs.readFileSync(lock, 'utf8') === String(process.pid)) fs.rmSync(lock, { force: true });
    held = false;
  };
  process.once('exit', release);
  return release;
}

export function connectDatabase(options: DatabaseOptions): Database {
  if (options.url) {
    return knexFactory({
      client: 'pg',
      connection: options.url,
      searchPath: options.searchPath ? [options.searchPath] : undefined,
      pool: {
        min: 0,
        max: options.poolMax ?? 10,
        // A dead database must fail requests fast rather than queue them until the client gives up.
        acquireTimeoutMillis: 3000,
      },
      acquireConnectionTimeout: 3000,
    });
  }
  if (options.pglite) {
    const instance = options.pglite;
    return knexFactory({ client: PGliteClient as never, dialect: 'postgres', connection: () => ({ pglite: instance }) as object });
  }
  if (!options.dataDir) return knexFactory({ client: PGliteClient as never, dialect: 'postgres', connection: {} });
  const dir = path.resolve(options.dataDir);
  fs.mkdirSync(dir, { recursive: true });
  const release = lockDataDir(dir);
  const pglite = new PGlite(path.join(dir, 'pgdata'));
  const close = pglite.close.bind(pglite);
  // The lock goes with the database: released when knex closes it (or when the process exits).
  pglite.close = async () => {
    try {
      await close();
    } finally {
      release();
    }
  };
  return connectDatabase({ pglite });
}
