import { type Config, ConfigError, loadConfig } from './config/index.js';
import { connectDatabase, type Database, DatabaseInUseError, joinedServer } from './db/connect.js';
import { type EmbeddedShare, shareEmbedded } from './db/embedded-share.js';
import { migrateToLatest } from './db/migrate.js';
import { createLogger, type Logger } from './logger.js';
import { resolveMasterKey } from './security/master-key.js';

export interface Booted {
  config: Config;
  logger: Logger;
  db: Database;
  masterKey: Buffer;
  /** The server's share of its embedded database, for the CLI (see db/embedded-share.ts). */
  share?: EmbeddedShare;
}

/** A server still migrating holds the directory before it shares it: worth waiting for. */
const IN_USE_WAIT_MS = 5_000;

/**
 * Config → logger → master key → database (migrated unless disabled): shared by the server and the CLI. The server
 * shares its embedded database; the CLI joins a running server's.
 */
export async function boot(options: { migrate?: boolean; role: 'server' | 'cli' }): Promise<Booted> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = createLogger(config);
  const master = resolveMasterKey(config);
  if (master.generatedAt) logger.warn({ file: master.generatedAt }, 'generated a master key for development: back it up, or set LATCHKEY_MASTER_KEY');
  const connect = () =>
    connectDatabase({ url: config.database.url, poolMax: config.database.poolMax, dataDir: config.database.dataDir, joinRunningServer: options.role === 'cli' });
  let db: Database | undefined;
  for (const giveUpAt = Date.now() + IN_USE_WAIT_MS; !db; ) {
    try {
      db = connect();
    } catch (error) {
      if (!(error instanceof DatabaseInUseError)) throw error;
      if (Date.now() > giveUpAt) {
        process.stderr.write(`${error.message}\n`);
        process.exit(75); // EX_TEMPFAIL
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  // Beside a running server, the CLI speaks as that server: its issuer is the one in its links and console client.
  const server = joinedServer(db);
  if (server) config = { ...config, issuer: server.issuer };
  if (options.migrate ?? config.migrateOnStart) {
    const applied = await migrateToLatest(db);
    if (applied.length) logger.info({ applied }, 'migrations applied');
  }
  const share = options.role === 'server' && !config.database.url ? await shareEmbedded(db, config.database.dataDir, config.issuer) : undefined;
  return { config, logger, db, masterKey: master.key, share };
}
