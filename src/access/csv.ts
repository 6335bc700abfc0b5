import crypto from 'node:crypto';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { z } from 'zod';
import type { Queries } from '../db/index.js';
import type { SecretBox } from '../security/secret-box.js';
import { accessCodeSchema, isTrivialCode } from './codes.js';
import { credentialSchema } from './service.js';

export const CSV_COLUMNS = ['email', 'name', 'kind', 'value'] as const;
const KINDS = ['card', 'nfc', 'ble', 'entry_code', 'mfa_code'] as const;
const MAX_ROWS = 50_000;

const rowSchema = z.object({
  email: z.email({ message: 'expected an email address' }).max(320),
  name: z.string().max(200).default(''),
  kind: z.enum(KINDS, { message: `expected one of ${KINDS.join(', ')}` }),
  value: z.string().max(64),
});

export interface RowProblem {
  line: number;
  field?: string;
  reason: string;
}

export interface ImportReport {
  ok: boolean;
  rows: number;
  problems: RowProblem[];
  created: { users: number; credentials: number; codes: number };
}

/**
 * Users and their cards, mobile credentials, entry codes and MFA codes from CSV (`email,name,kind,value`). Every
 * row is checked before anything is written, against the file and the database; with any bad row nothing is
 * written, and the report names each bad line (header = line 1).
 */
export async function importAccessCsv(deps: { queries: Queries; box: SecretBox; lookup: (code: string) => string }, text: string, dryRun: boolean): Promise<ImportReport> {
  const problems: RowProblem[] = [];
  let records: string[][];
  try {
    records = parse(text, { relax_column_count: true, skip_empty_lines: true, trim: true, bom: true }) as string[][];
  } catch (error) {
    const line = (error as { lines?: number }).lines ?? 1;
    return { ok: false, rows: 0, problems: [{ line, reason: `unreadable CSV: ${(error as Error).message.split(':')[0]}` }], created: { users: 0, credentials: 0, codes: 0 } };
  }
  const [header, ...rows] = records;
  if (!header || header.join(',').toLowerCase() !== CSV_COLUMNS.join(',')) {
    return { ok: false, rows: 0, problems: [{ line: 1, reason: `the first line must be ${CSV_COLUMNS.join(',')}` }], created: { users: 0, credentials: 0, codes: 0 } };
  }
  if (rows.length > MAX_ROWS) return { ok: false, rows: rows.length, problems: [{ line: 1, reason: `at most ${MAX_ROWS} rows per file` }], created: { users: 0, credentials: 0, codes: 0 } };

  const parsed: Array<{ line: number; row: z.infer<typeof rowSchema> }> = [];
  rows.forEach((cells, index) => {
    const line = index + 2;
    if (cells.length !== CSV_COLUMNS.length) return problems.push({ line, reason: `expected ${CSV_COLUMNS.length} columns, found ${cells.length}` });
    const result = rowSchema.safeParse(Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, cells[i]])));
    if (!result.success) {
      const issue = result.error.issues[0]!;
      return problems.push({ line, field: String(issue.path[0]), reason: issue.message });
    }
    const { kind, value } = result.data;
    const check = kind.endsWith('_code') ? accessCodeSchema.safeParse(value) : credentialSchema.shape.identifier.safeParse(value);
    if (!check.success) return problems.push({ line, field: 'value', reason: check.error.issues[0]!.message });
    if (kind === 'entry_code' && isTrivialCode(value)) return problems.push({ line, field: 'value', reason: 'entry code too easy to guess (like 0000 or 1234)' });
    parsed.push({ line, row: result.data });
  });

  // Uniqueness, within the file and against what is stored.
  const existingUsers = new Map<string, string>();
  for (const email of new Set(parsed.map((p) => p.row.email.toLowerCase()))) {
    const user = await deps.queries.users.findByEmail(email);
    if (user) existingUsers.set(email, user.id);
  }
  const newUserIds = new Map<string, string>();
  const userIdOf = (email: string) => existingUsers.get(email.toLowerCase()) ?? newUserIds.get(email.toLowerCase())!;
  for (const { row } of parsed) if (!existingUsers.has(row.email.toLowerCase()) && !newUserIds.has(row.email.toLowerCase())) newUserIds.set(row.email.toLowerCase(), crypto.randomUUID());

  const credentialRows = parsed.filter((p) => !p.row.kind.endsWith('_code'));
  const storedCredentials = new Map((await deps.queries.access.credentialsByIdentifier(credentialRows.map((p) => p.row.value))).map((c) => [c.identifier, c.user_id]));
  const entryRows = parsed.filter((p) => p.row.kind === 'entry_code');
  const storedEntries = new Map((await deps.queries.access.entryCodesByLookup(entryRows.map((p) => deps.lookup(p.row.value)))).map((c) => [c.code_lookup, c.user_id]));
  const seenCredentials = new Map<string, number>();
  const seenEntries = new Map<string, string>();
  const entryPerUser = new Map<string, number>();
  const good = parsed.filter(({ line, row }) => {
    const userId = userIdOf(row.email);
    if (!row.kind.endsWith('_code')) {
      if (seenCredentials.has(row.value)) return !problems.push({ line, field: 'value', reason: `the same credential is on line ${seenCredentials.get(row.value)}` });
      const owner = storedCredentials.get(row.value);
      if (owner && owner !== userId) return !problems.push({ line, field: 'value', reason: 'this credential belongs to another user' });
      seenCredentials.set(row.value, line);
    } else if (row.kind === 'entry_code') {
      const key = deps.lookup(row.value);
      const owner = storedEntries.get(key) ?? seenEntries.get(key);
      if (owner && owner !== userId) return !problems.push({ line, field: 'value', reason: 'another user has this entry code' });
      if (entryPerUser.has(userId)) return !problems.push({ line, field: 'kind', reason: `a user has one entry code (also on line ${entryPerUser.get(userId)})` });
      seenEntries.set(key, userId);
      entryPerUser.set(userId, line);
    }
    return true;
  });
  problems.sort((a, b) => a.line - b.line);

  const batch = {
    users: [...newUserIds].map(([email, id]) => ({ id, email, name: parsed.find((p) => p.row.email.toLowerCase() === email)!.row.name })),
    credentials: good.filter((p) => !p.row.kind.endsWith('_code') && storedCredentials.get(p.row.value) !== userIdOf(p.row.email)).map(({ row }) => ({ user_id: userIdOf(row.email), kind: row.kind as 'card' | 'nfc' | 'ble', identifier: row.value })),
    codes: good.filter((p) => p.row.kind.endsWith('_code')).map(({ row }) => {
      const id = crypto.randomUUID();
      const userId = userIdOf(row.email);
      return { id, user_id: userId, kind: row.kind === 'entry_code' ? ('entry' as const) : ('mfa' as const), code_sealed: deps.box.seal(row.value, `access-code:${userId}:${id}`), code_lookup: deps.lookup(row.value), length: row.value.length };
    }),
  };
  const report = { ok: problems.length === 0, rows: rows.length, problems, created: { users: batch.users.length, credentials: batch.credentials.length, codes: batch.codes.length } };
  if (!dryRun && report.ok) await deps.queries.access.importBatch(batch);
  return report;
}

/** The same columns back out: what an import would recreate. Codes are decrypted: only code managers may export. */
export async function exportAccessCsv(deps: { queries: Queries; box: SecretBox }): Promise<string> {
  const rows = await deps.queries.access.exportRows();
  return stringify([
    [...CSV_COLUMNS],
    ...rows.map((r) => [r.email, r.name, r.kind, r.code_sealed ? deps.box.open(r.code_sealed, `access-code:${r.user_id}:${r.code_id}`).toString('utf8') : r.value]),
  ]);
}
