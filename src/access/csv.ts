import crypto from 'node:crypto';
import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import type { Queries } from '../db/index.js';
import type { NotifiedUser, Notifier } from '../notify/notifier.js';
import { csvRows, fromCsvCell } from '../security/csv-cell.js';
import type { SecretBox } from '../security/secret-box.js';
import { accessCodeSchema, isTrivialCode } from './codes.js';
import type { CredentialKind } from '../db/access.js';
import { credentialSchema, withoutControlCharacters } from './service.js';

export const CSV_COLUMNS = ['email', 'name', 'kind', 'value'] as const;
/** An optional fifth column: `add` (the default when absent or empty) or `delete`. */
const ACTION_COLUMN = 'action';
const KINDS = ['card', 'nfc', 'ble', 'nearby', 'entry_code', 'mfa_code'] as const;
/** What the console offers to download: each kind once, and a delete row. */
export const CSV_TEMPLATE = csvRows([
  [...CSV_COLUMNS, ACTION_COLUMN],
  ['kim@example.com', 'Kim Jisoo', 'card', 'CARD-0001', 'add'],
  ['kim@example.com', 'Kim Jisoo', 'nfc', 'NFC-0001', 'add'],
  ['kim@example.com', 'Kim Jisoo', 'mfa_code', '730152', 'add'],
  ['kim@example.com', 'Kim Jisoo', 'entry_code', '550813', 'add'],
  ['lee@example.com', 'Lee Minho', 'card', 'CARD-0002', 'delete'],
]);
const MAX_ROWS = 50_000;
const NOTICES_AT_ONCE = 8;

const rowSchema = z.object({
  email: z.email({ message: 'expected an email address' }).max(320),
  name: withoutControlCharacters(z.string().max(200)).default(''),
  kind: z.enum(KINDS, { message: `expected one of ${KINDS.join(', ')}` }),
  value: z.string().max(64),
  action: z.preprocess((v) => (v === '' || v === undefined ? 'add' : v), z.enum(['add', 'delete'], { message: 'expected add or delete' })),
});

export interface RowProblem {
  line: number;
  field?: string;
  /** Stable: the console words it in the reader's language (`admin.import.reason.<code>`, with `vars`). */
  code: string;
  vars?: Record<string, string | number>;
  reason: string;
}

export interface ImportReport {
  ok: boolean;
  rows: number;
  problems: RowProblem[];
  created: { users: number; credentials: number; codes: number };
  deleted: { credentials: number; codes: number };
}

/** What the importing admin may do beyond managing codes and credentials: the same as through the API. */
export interface ImportRights {
  /** Create the users a file names who do not exist yet (POST /users's roles). */
  mayCreateUsers: boolean;
  /** Manage the codes and credentials of users who hold admin roles (a super admin only). */
  mayManageAdmins: boolean;
}

/**
 * Users and their cards, mobile credentials, entry codes and MFA codes from CSV (`email,name,kind,value`). Every
 * row is checked before anything is written, against the file and the database; with any bad row nothing is
 * written, and the report names each bad line (header = line 1).
 */
export async function importAccessCsv(
  deps: { queries: Queries; box: SecretBox; lookup: (code: string) => string; notifier: Notifier; changed?: (key: string) => Promise<void> },
  text: string,
  dryRun: boolean,
  rights: ImportRights,
): Promise<ImportReport> {
  const problems: RowProblem[] = [];
  let records: string[][];
  try {
    records = parse(text, { relax_column_count: true, skip_empty_lines: true, trim: true, bom: true }) as string[][];
  } catch (error) {
    const line = (error as { lines?: number }).lines ?? 1;
    return { ok: false, rows: 0, problems: [{ line, code: 'unreadable', reason: `unreadable CSV: ${(error as Error).message.split(':')[0]}` }], created: { users: 0, credentials: 0, codes: 0 }, deleted: { credentials: 0, codes: 0 } };
  }
  const [header, ...rows] = records;
  const columns: readonly string[] = header?.length === CSV_COLUMNS.length + 1 ? [...CSV_COLUMNS, ACTION_COLUMN] : CSV_COLUMNS;
  if (!header || header.join(',').toLowerCase() !== columns.join(',')) {
    return { ok: false, rows: 0, problems: [{ line: 1, code: 'header', vars: { columns: CSV_COLUMNS.join(','), optional: ACTION_COLUMN }, reason: `the first line must be ${CSV_COLUMNS.join(',')} (and optionally ,${ACTION_COLUMN})` }], created: { users: 0, credentials: 0, codes: 0 }, deleted: { credentials: 0, codes: 0 } };
  }
  if (rows.length > MAX_ROWS) return { ok: false, rows: rows.length, problems: [{ line: 1, code: 'too_many_rows', vars: { max: MAX_ROWS }, reason: `at most ${MAX_ROWS} rows per file` }], created: { users: 0, credentials: 0, codes: 0 }, deleted: { credentials: 0, codes: 0 } };

  const parsed: Array<{ line: number; row: z.infer<typeof rowSchema> }> = [];
  rows.forEach((cells, index) => {
    const line = index + 2;
    if (cells.length !== columns.length) return problems.push({ line, code: 'column_count', vars: { expected: columns.length, found: cells.length }, reason: `expected ${columns.length} columns, found ${cells.length}` });
    const result = rowSchema.safeParse(Object.fromEntries(columns.map((c, i) => [c, fromCsvCell(cells[i]!)])));
    if (!result.success) {
      const issue = result.error.issues[0]!;
      return problems.push({ line, field: String(issue.path[0]), code: `invalid_${String(issue.path[0])}`, vars: { kinds: KINDS.join(', ') }, reason: issue.message });
    }
    const { kind, value } = result.data;
    const check = kind.endsWith('_code') ? accessCodeSchema.safeParse(value) : credentialSchema.shape.identifier.safeParse(value);
    if (!check.success) return problems.push({ line, field: 'value', code: kind.endsWith('_code') ? 'invalid_code' : 'invalid_identifier', reason: check.error.issues[0]!.message });
    if (kind === 'entry_code' && result.data.action === 'add' && isTrivialCode(value)) return problems.push({ line, field: 'value', code: 'trivial_entry_code', reason: 'entry code too easy to guess (like 0000 or 1234)' });
    parsed.push({ line, row: result.data });
  });

  // Whose lines these are: users the importer may manage, or new ones they may create.
  const existingUsers = new Map<string, NotifiedUser & { roles: string[] }>();
  for (const email of new Set(parsed.map((p) => p.row.email.toLowerCase()))) {
    const user = await deps.queries.users.findByEmail(email);
    if (user) existingUsers.set(email, user);
  }
  const newUserIds = new Map<string, string>();
  const userIdOf = (email: string) => existingUsers.get(email.toLowerCase())?.id ?? newUserIds.get(email.toLowerCase())!;
  const owned = parsed.filter(({ line, row }) => {
    const user = existingUsers.get(row.email.toLowerCase());
    if (!user && row.action === 'delete') return !problems.push({ line, field: 'email', code: 'no_user', reason: 'no user with this email' });
    if (!user && !rights.mayCreateUsers) return !problems.push({ line, field: 'email', code: 'no_user_may_not_create', reason: 'no user with this email (only a user admin may create users)' });
    if (user && user.roles.length > 0 && !rights.mayManageAdmins) return !problems.push({ line, field: 'email', code: 'admin_holder', reason: 'only a super admin manages the codes and credentials of users who hold admin roles' });
    if (!user && !newUserIds.has(row.email.toLowerCase())) newUserIds.set(row.email.toLowerCase(), crypto.randomUUID());
    return true;
  });

  // Delete rows name something the user holds now; it is gone before the file's additions are checked and written.
  const removals = { credentials: [] as Array<{ user_id: string; identifier: string }>, codes: [] as Array<{ user_id: string; kind: 'mfa' | 'entry'; code_lookup: string }> };
  const storedCredentials = new Map((await deps.queries.access.credentialsByIdentifier(owned.filter((p) => !p.row.kind.endsWith('_code')).map((p) => p.row.value))).map((c) => [c.identifier, c.user_id]));
  const entryRows = owned.filter((p) => p.row.kind === 'entry_code');
  const storedEntries = new Map((await deps.queries.access.entryCodesByLookup(entryRows.map((p) => deps.lookup(p.row.value)))).map((c) => [c.code_lookup, c.user_id]));
  const additions: typeof owned = [];
  for (const item of owned) {
    const { line, row } = item;
    if (row.action === 'add') {
      additions.push(item);
      continue;
    }
    const userId = userIdOf(row.email);
    if (!row.kind.endsWith('_code')) {
      if (storedCredentials.get(row.value) !== userId) problems.push({ line, field: 'value', code: 'no_such_credential', reason: 'this user holds no such credential' });
      else if (!removals.credentials.some((c) => c.identifier === row.value)) {
        removals.credentials.push({ user_id: userId, identifier: row.value });
        storedCredentials.delete(row.value);
      }
      continue;
    }
    const kind = row.kind === 'entry_code' ? ('entry' as const) : ('mfa' as const);
    const code_lookup = deps.lookup(row.value);
    if (!(await deps.queries.access.findUserCode(userId, code_lookup, kind))) problems.push({ line, field: 'value', code: kind === 'entry' ? 'no_such_entry_code' : 'no_such_mfa_code', reason: `this user has no such ${kind === 'entry' ? 'entry' : 'MFA'} code` });
    else if (!removals.codes.some((c) => c.user_id === userId && c.kind === kind && c.code_lookup === code_lookup)) {
      removals.codes.push({ user_id: userId, kind, code_lookup });
      if (kind === 'entry') storedEntries.delete(code_lookup);
    }
  }

  // Uniqueness, within the file and against what is stored.
  const seenCredentials = new Map<string, number>();
  const seenEntries = new Map<string, string>();
  const entryPerUser = new Map<string, number>();
  const good = additions.filter(({ line, row }) => {
    const userId = userIdOf(row.email);
    if (!row.kind.endsWith('_code')) {
      if (seenCredentials.has(row.value)) return !problems.push({ line, field: 'value', code: 'duplicate_credential', vars: { line: seenCredentials.get(row.value)! }, reason: `the same credential is on line ${seenCredentials.get(row.value)}` });
      const owner = storedCredentials.get(row.value);
      if (owner && owner !== userId) return !problems.push({ line, field: 'value', code: 'credential_taken', reason: 'this credential belongs to another user' });
      seenCredentials.set(row.value, line);
    } else if (row.kind === 'entry_code') {
      const key = deps.lookup(row.value);
      const owner = storedEntries.get(key) ?? seenEntries.get(key);
      if (owner && owner !== userId) return !problems.push({ line, field: 'value', code: 'entry_code_taken', reason: 'another user has this entry code' });
      if (entryPerUser.has(userId)) return !problems.push({ line, field: 'kind', code: 'one_entry_code', vars: { line: entryPerUser.get(userId)! }, reason: `a user has one entry code (also on line ${entryPerUser.get(userId)})` });
      seenEntries.set(key, userId);
      entryPerUser.set(userId, line);
    }
    return true;
  });
  problems.sort((a, b) => a.line - b.line);

  const batch = {
    users: [...newUserIds].map(([email, id]) => ({ id, email, name: parsed.find((p) => p.row.email.toLowerCase() === email)!.row.name })),
    credentials: good.filter((p) => !p.row.kind.endsWith('_code') && storedCredentials.get(p.row.value) !== userIdOf(p.row.email)).map(({ row }) => ({ user_id: userIdOf(row.email), kind: row.kind as CredentialKind, identifier: row.value })),
    codes: good.filter((p) => p.row.kind.endsWith('_code')).map(({ row }) => {
      const id = crypto.randomUUID();
      const userId = userIdOf(row.email);
      return { id, user_id: userId, kind: row.kind === 'entry_code' ? ('entry' as const) : ('mfa' as const), code_sealed: deps.box.seal(row.value, `access-code:${userId}:${id}`), code_lookup: deps.lookup(row.value), length: row.value.length };
    }),
  };
  const report = {
    ok: problems.length === 0,
    rows: rows.length,
    problems,
    created: { users: batch.users.length, credentials: batch.credentials.length, codes: batch.codes.length },
    deleted: { credentials: removals.credentials.length, codes: removals.codes.length },
  };
  if (!dryRun && report.ok) {
    const removedCredentials = await deps.queries.access.importBatch({ ...batch, removals }).catch((error: { code?: string }) => {
      // Checked above, then taken by another import or admin before this one's transaction (a unique index: the
      // same user, card or entry code; a foreign key: a user deleted; a deadlock: two files adding the same users or
      // cards in different orders): rolled back whole, reported like a bad file.
      if (error.code === '23505' || error.code === '23503' || error.code === '40P01') return undefined;
      throw error;
    });
    if (!removedCredentials) {
      const changed = { line: 1, code: 'changed_meanwhile', reason: 'something in this file was changed by someone else while it was imported: nothing was written; try again' };
      return { ...report, ok: false, problems: [changed], created: { users: 0, credentials: 0, codes: 0 }, deleted: { credentials: 0, codes: 0 } };
    }
    // Every instance forgets what was removed or replaced, at once.
    for (const id of removedCredentials) await deps.changed?.(`credential:${id}`);
    for (const userId of new Set([...batch.codes, ...removals.codes].map((c) => c.user_id))) await deps.changed?.(`codes:${userId}`);
    const owners = new Set([...batch.codes.filter((c) => c.kind === 'mfa'), ...removals.codes.filter((c) => c.kind === 'mfa')].map((c) => c.user_id));
    const people = [...existingUsers.values(), ...batch.users.map((u) => ({ ...u, locale: null }))].filter((u) => owners.has(u.id));
    // Each owner hears of the PIN issued to them, a few mails at a time (a notice never throws: one that cannot be
    // delivered is logged).
    for (let i = 0; i < people.length; i += NOTICES_AT_ONCE) {
      await Promise.all(people.slice(i, i + NOTICES_AT_ONCE).map((user) => deps.notifier.notify(user, 'door_pin_issued')));
    }
  }
  return report;
}

/**
 * The same columns back out: what an import would recreate. Codes are decrypted: only code managers may export,
 * and those of users who hold admin roles only a super admin (`withAdmins`).
 */
export async function exportAccessCsv(deps: { queries: Queries; box: SecretBox }, options: { withAdmins: boolean }): Promise<string> {
  const rows = await deps.queries.access.exportRows(options.withAdmins);
  return csvRows([
    [...CSV_COLUMNS],
    ...rows.map((r) => [r.email, r.name, r.kind, r.code_sealed ? deps.box.open(r.code_sealed, `access-code:${r.user_id}:${r.code_id}`).toString('utf8') : r.value]),
  ]);
}
