import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { readShareFile, type ShareAddress } from './embedded-share.js';

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
  /** Where the directory is held by a running server that shares it, connect through it (the CLI) instead of failing. */
  joinRunningServer?: boolean;
}

/** The directory is held by a live process that does not share it: a CLI command, or a server still starting. */
export class DatabaseInUseError extends Error {
  constructor(dir: string, pid: number) {
    super(
      `the embedded database in ${dir} is in use by process ${pid}, which does not share it ` +
        '(another CLI command, or a server still starting): try again in a moment.',
    );
    this.name = 'DatabaseInUseError';
  }
}

const joined = new WeakMap<Database, ShareAddress>();

/** The server whose embedded database `db` reaches through its share (see embedded-share.ts), if it does. */
export const joinedServer = (db: Database): ShareAddress | undefined => joined.get(db);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

class HeldByServer {
  constructor(readonly address: ShareAddress) {}
}

/**
 * PGlite keeps the whole database in one process's memory: a second process on the same directory would neither see
 * the first one's writes nor keep its own safely. The directory is held with a PID lock file; a lock left by a
 * process that is gone is taken over. A live holder that shares the database (the server) is joined instead.
 */
function lockDataDir(dir: string, join: boolean): (() => void) | HeldByServer {
  const lock = path.join(dir, 'latchkey.lock');
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(lock, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
        const address = join ? readShareFile(dir, holder) : undefined;
        if (address) return new HeldByServer(address);
        throw new DatabaseInUseError(dir, holder);
      }
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
  const release = lockDataDir(dir, options.joinRunningServer ?? false);
  if (release instanceof HeldByServer) {
    const { port, password } = release.address;
    // One connection, as PGlite itself has: the CLI's code runs the same way beside the server as on its own.
    const db = knexFactory({ client: 'pg', connection: { host: '127.0.0.1', port, user: 'latchkey', password, database: 'latchkey' }, pool: { min: 0, max: 1 } });
    joined.set(db, release.address);
    return db;
  }
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

/**
 * A second, small pool on the same PostgreSQL whose commits return before their WAL is flushed (synchronous_commit
 * off): for counters whose every consequence is itself committed durably later, so that the later flush, which
 * covers all WAL before it, makes them durable before anything is acknowledged. On PGlite, the database itself.
 */
export function connectWithoutFlushWait(db: Database, poolMax: number): Database {
  const config = db.client.config as Knex.Config;
  if (config.client !== 'pg') return db;
  return knexFactory({
    ...config,
    pool: {
      ...config.pool,
      max: poolMax,
      afterCreate: (connection: pg.Client, done: (error: Error | null, connection: pg.Client) => void) => {
        connection.query('set synchronous_commit = off').then(() => done(null, connection), (error: Error) => done(error, connection));
      },
    },
  });
}
