import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from '@jest/globals';
import { connectDatabase, DatabaseInUseError } from '../../src/db/connect.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-lock-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('the embedded database serves one process at a time, and a stale lock is taken over', async () => {
  const first = connectDatabase({ dataDir: dir });
  await first.raw('select 1');
  expect(() => connectDatabase({ dataDir: dir })).toThrow(DatabaseInUseError);
  expect(() => connectDatabase({ dataDir: dir })).toThrow(/in use by process \d+, which does not share it/);
  // Nor does the CLI join a holder that does not share it.
  expect(() => connectDatabase({ dataDir: dir, joinRunningServer: true })).toThrow(DatabaseInUseError);
  await first.destroy();
  expect(fs.existsSync(path.join(dir, 'latchkey.lock'))).toBe(false);

  // A lock left by a process that no longer exists (kill -9, power cut) does not block the next start.
  fs.writeFileSync(path.join(dir, 'latchkey.lock'), '2147483646');
  const second = connectDatabase({ dataDir: dir });
  expect(fs.readFileSync(path.join(dir, 'latchkey.lock'), 'utf8')).toBe(String(process.pid));
  await second.raw('select 1');
  await second.destroy();
});
