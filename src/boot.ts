import { type Config, ConfigError, loadConfig } from './config/index.js';
import { connectDatabase, type Database, DatabaseInUseError } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { createLogger, type Logger } from './logger.js';
import { resolveMasterKey } from './security/master-key.js';

export interface Booted {
  config: Config;
  logger: Logger;
  db: Database;
  masterKey: Buffer;
}

/** Config → logger → master key → database (migrated unless disabled): shared by the server and the CLI. */
export async function boot(options: { migrate?: boolean } = {}): Promise<Booted> {
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
  let db: Database;
  try {
    db = connectDatabase({ url: config.database.url, poolMax: config.database.poolMax, dataDir: config.database.dataDir });
  } catch (error) {
    if (!(error instanceof DatabaseInUseError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(75); // EX_TEMPFAIL: try again once the other process has stopped
  }
  if (options.migrate ?? config.migrateOnStart) {
    const applied = await migrateToLatest(db);
    if (applied.length) logger.info({ applied }, 'migrations applied');
  }
  return { config, logger, db, masterKey: master.key };
}
