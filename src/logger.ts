import { pino, type Logger } from 'pino';
import type { Config } from './config/index.js';

export type { Logger };

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    redact: { paths: ['password', '*.password', 'secret', '*.secret', 'req.headers.cookie', 'req.headers.authorization'], remove: true },
  });
}
