import fs from 'node:fs';

export default async function globalTeardown() {
  if (process.env.LATCHKEY_TEST_SNAPSHOT) fs.rmSync(process.env.LATCHKEY_TEST_SNAPSHOT, { force: true });
}
