import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { decodeMasterKey } from '../config/index.js';

/**
 * The master key comes from LATCHKEY_MASTER_KEY. Outside production a newcomer gets one generated into the data
 * directory (mode 0600), so that `npm start` needs no setup; production refuses to start without one (config).
 */
export function resolveMasterKey(config: Config): { key: Buffer; generatedAt?: string } {
  if (config.masterKey) return { key: config.masterKey };
  const file = path.resolve(config.database.dataDir, 'master.key');
  if (fs.existsSync(file)) return { key: decodeMasterKey(fs.readFileSync(file, 'utf8').trim()) };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const key = crypto.randomBytes(32);
  fs.writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  return { key, generatedAt: file };
}
