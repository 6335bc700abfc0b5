import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { loadCatalogues } from '../../src/i18n.js';
import { VIEWS_DIR } from '../../src/paths.js';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { onRealPostgres } from '../helpers/database.js';
import { aUser } from '../helpers/factories.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
let api: ReturnType<typeof apiClient>;
let manager: string;
beforeAll(async () => {
  server = await startTestServer();
  api = apiClient(server.url);
  manager = (await anAdmin(server.latchkey, server.url, ['access_user_admin'])).token;
});
afterAll(() => server.close());

const upload = (csv: string, dryRun: boolean) =>
  api('POST', `/api/admin/access/import?dry_run=${dryRun}`, manager, csv, { 'content-type': 'text/csv' });
const counts = async () => ({
  users: Number((await server.database.db('users').count({ n: '*' }).first())!.n),
  credentials: Number((await server.database.db('access_credentials').count({ n: '*' }).first())!.n),
  codes: Number((await server.database.db('access_codes').count({ n: '*' }).first())!.n),
});

test('a file mixing good and bad rows: the dry run names each bad line, and the commit changes nothing', async () => {
  const existing = await aUser(server.latchkey, { email: 'taken@example.test' });
  await api('POST', `/api/admin/access/users/${existing.id}/credentials`, manager, { kind: 'card', identifier: 'CARD-TAKEN' });
  const csv = [
    'email,name,kind,value',
    'ann@example.test,Ann,card,CARD-1001', // 2 good
    'ann@example.test,Ann,mfa_code,5829', // 3 good
    'bob@example.test,Bob,mfa_code,123', // 4 too short
    'not-an-email,Cy,card,CARD-1002', // 5 bad email
    'dee@example.test,Dee,badge,CARD-1003', // 6 unknown kind
    'eve@example.test,Eve,card,CARD-TAKEN', // 7 someone else's card
    'fay@example.test,Fay,card,CARD-1001', // 8 same card as line 2
    'gus@example.test,Gus,entry_code,1234', // 9 trivial entry code
    'hal@example.test,Hal,mfa_code,12ab', // 10 not digits
    'ivy@example.test,Ivy,card', // 11 missing column
    'ann@example.test,Ann,entry_code,846203', // 12 good
    'joe@example.test,Joe,entry_code,846203', // 13 entry code of line 12
  ].join('\n');
  const before = await counts();
  const dry = await upload(csv, true);
  expect(dry.status).toBe(422);
  const problems = dry.json.problems as Array<{ line: number; field?: string; code: string; reason: string }>;
  expect(problems.map((p) => p.line)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 13]);
  expect(problems.find((p) => p.line === 4)).toMatchObject({ field: 'value', reason: 'a code has at least 4 digits' });
  expect(problems.find((p) => p.line === 5)).toMatchObject({ field: 'email' });
  expect(problems.find((p) => p.line === 8)!.reason).toContain('line 2');
  expect(problems.find((p) => p.line === 11)!.reason).toContain('expected 4 columns');
  // The console words each reason in the reader's language (the API keeps its English `reason`).
  const catalogues = loadCatalogues(VIEWS_DIR);
  expect(problems.filter((p) => !catalogues.en[`admin.import.reason.${p.code}`] || !catalogues.ko[`admin.import.reason.${p.code}`])).toEqual([]);

  const commit = await upload(csv, false);
  expect(commit.status).toBe(422);
  expect(await counts()).toEqual(before);
});

test('a clean file imports everything, and the export gives it back', async () => {
  const csv = 'email,name,kind,value\r\nkim@example.test,"Kim, Jisoo",card,CARD-2001\r\nkim@example.test,"Kim, Jisoo",nfc,NFC-2001\r\nkim@example.test,"Kim, Jisoo",mfa_code,730152\r\nlee@example.test,Lee,mfa_code,730152\r\nlee@example.test,Lee,entry_code,550813\r\n';
  const before = await counts();
  const dry = await upload(csv, true);
  expect(dry.json).toMatchObject({ ok: true, dry_run: true, created: { users: 2, credentials: 2, codes: 3 } });
  expect(await counts()).toEqual(before);
  const commit = await upload(csv, false);
  expect(commit.status).toBe(200);
  expect(await counts()).toEqual({ users: before.users + 2, credentials: before.credentials + 2, codes: before.codes + 3 });
  const kim = await server.latchkey.queries.users.findByEmail('kim@example.test');
  expect(kim?.name).toBe('Kim, Jisoo');

  const exported = await api('GET', '/api/admin/access/export.csv', manager);
  expect(exported.headers.get('content-type')).toContain('text/csv');
  expect(exported.text).toContain('kim@example.test,"Kim, Jisoo",mfa_code,730152');
  expect(exported.text).toContain('lee@example.test,Lee,entry_code,550813');
});

test('garbage is refused with a reason, never a 500', async () => {
  expect((await upload('"unterminated,quote\n', true)).status).toBe(422);
  expect((await upload('name,email\nx,y\n', true)).json).toMatchObject({ ok: false, problems: [{ line: 1 }] });
  expect((await api('POST', '/api/admin/access/import', manager, '{"a":1}')).status).toBe(415);
});

test('the export escapes cells a spreadsheet would run as formulas, and reads its own escaping back', async () => {
  const sly = await aUser(server.latchkey, { name: '=HYPERLINK("http://evil.test","x")' });
  await api('POST', `/api/admin/access/users/${sly.id}/credentials`, manager, { kind: 'card', identifier: '-CARD-7' });
  const exported = (await api('GET', '/api/admin/access/export.csv', manager)).text;
  const line = exported.split(/\r?\n/).find((l) => l.startsWith(sly.email))!;
  expect(line).toBe(`${sly.email},"'=HYPERLINK(""http://evil.test"",""x"")",card,'-CARD-7`);
  // Exported, then imported again: the same card of the same user, nothing to change.
  const again = await upload(['email,name,kind,value', line].join('\n'), true);
  expect(again.json).toMatchObject({ ok: true, created: { users: 0, credentials: 0, codes: 0 } });
});

test('a credential manager may not create users through the import: the lines are reported, nothing is written', async () => {
  const credentialManager = (await anAdmin(server.latchkey, server.url, ['access_credential_manager'])).token;
  const known = await aUser(server.latchkey);
  const csv = `email,name,kind,value\n${known.email},K,card,CM-1\nnew-${known.id.slice(0, 8)}@example.test,N,card,CM-2\n`;
  const before = await counts();
  const report = await api('POST', '/api/admin/access/import?dry_run=false', credentialManager, csv, { 'content-type': 'text/csv' });
  expect(report.status).toBe(422);
  expect(report.json.problems).toEqual([{ line: 3, field: 'email', code: 'no_user_may_not_create', reason: expect.stringContaining('no user with this email') }]);
  expect(await counts()).toEqual(before);
  // Without the new user's line the file goes in.
  const known2 = await api('POST', '/api/admin/access/import?dry_run=false', credentialManager, `email,name,kind,value\n${known.email},K,card,CM-1\n`, { 'content-type': 'text/csv' });
  expect(known2.json).toMatchObject({ ok: true, created: { users: 0, credentials: 1 } });
});

test('delete rows (the optional action column) remove a lost card and a code; a delete of nothing names its line', async () => {
  const csv = (rows: string[]) => ['email,name,kind,value,action', ...rows].join('\n');
  expect((await upload(csv(['del@example.test,Del,card,CARD-DEL-1,add', 'del@example.test,Del,mfa_code,604182,', 'del@example.test,Del,entry_code,771935,add']), false)).status).toBe(200);
  const user = (await server.latchkey.queries.users.findByEmail('del@example.test'))!;
  expect(await server.latchkey.access.listCredentials(user.id)).toHaveLength(1);

  const wrong = await upload(csv(['del@example.test,Del,card,CARD-NOBODY,delete', 'del@example.test,Del,mfa_code,999999,delete', 'nobody@example.test,No,card,CARD-DEL-1,delete']), true);
  expect(wrong.status).toBe(422);
  expect((wrong.json.problems as Array<{ line: number; field: string }>).map((p) => [p.line, p.field])).toEqual([[2, 'value'], [3, 'value'], [4, 'email']]);

  // The lost card goes and a new one comes in the same file; the MFA code and the entry code go.
  const done = await upload(csv(['del@example.test,Del,card,CARD-DEL-1,delete', 'del@example.test,Del,card,CARD-DEL-2,add', 'del@example.test,Del,mfa_code,604182,delete', 'del@example.test,Del,entry_code,771935,delete']), false);
  expect(done.json).toMatchObject({ ok: true, created: { credentials: 1, codes: 0 }, deleted: { credentials: 1, codes: 2 } });
  expect((await server.latchkey.access.listCredentials(user.id)).map((c) => c.identifier)).toEqual(['CARD-DEL-2']);
  expect(await server.latchkey.access.listCodes(user.id)).toEqual([]);
});

test('files imported at once that add the same user, card or entry code: never a 500; a file refused writes nothing', async () => {
  const before = await counts();
  const upAtOnce = (file: (i: number) => string) => Promise.all(Array.from({ length: 8 }, (_, i) => upload(file(i), false)));
  const refusedAsReports = (replies: Awaited<ReturnType<typeof upAtOnce>>) => {
    for (const refused of replies.filter((r) => r.status !== 200)) {
      expect(refused.status).toBe(422);
      // Told by the checks when the winner had committed before them, by the database when after.
      expect(refused.json).toMatchObject({ ok: false, problems: [expect.objectContaining({ code: expect.stringMatching(/^(changed_meanwhile|credential_taken|entry_code_taken)$/) })] });
    }
    return replies.filter((r) => r.status === 200).length;
  };
  // One new user named by every file, each with a card of its own: the user is created once.
  const cards = refusedAsReports(await upAtOnce((i) => `email,name,kind,value\nrace-user@example.test,Race,card,RACE-CARD-${i}\n`));
  expect(cards).toBeGreaterThan(0);
  // One card, or one entry code, for a new user in each file: one file wins.
  expect(refusedAsReports(await upAtOnce((i) => `email,name,kind,value\nrace-card-${i}@example.test,Race,card,RACE-SAME-CARD\n`))).toBe(1);
  expect(refusedAsReports(await upAtOnce((i) => `email,name,kind,value\nrace-entry-${i}@example.test,Race,entry_code,8264019\n`))).toBe(1);
  expect(await counts()).toEqual({ users: before.users + 3, credentials: before.credentials + cards + 1, codes: before.codes + 1 });
});

test('a name with a control character (a NUL the database cannot store) is a bad line of the report, not a failed request', async () => {
  const answer = await upload('email,name,kind,value\nnul-name@example.test,Nul\u0000Name,card,NUL-CARD-1\n', false);
  expect(answer.status).toBe(422);
  expect(answer.json).toMatchObject({ ok: false, problems: [expect.objectContaining({ line: 2, field: 'name', code: 'invalid_name' })] });
});

(onRealPostgres ? test : test.skip)('an import that deadlocks with another writer adding the same users in the other order: a report, never a 500', async () => {
  // Another transaction holds the second user of the file, and then asks for its first: PostgreSQL breaks the cycle.
  const other = await server.database.db.transaction();
  try {
    await other('users').insert({ id: crypto.randomUUID(), email: 'deadlock-b@example.test', name: 'B' });
    const reply = upload('email,name,kind,value\ndeadlock-a@example.test,A,card,DEADLOCK-A\ndeadlock-b@example.test,B,card,DEADLOCK-B\n', false);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const blocked = other('users').insert({ id: crypto.randomUUID(), email: 'deadlock-a@example.test', name: 'A' }).catch((error: { code?: string }) => error.code);
    const answer = await reply;
    await blocked;
    expect(answer.status).toBe(422);
    expect(answer.json).toMatchObject({ ok: false, problems: [expect.objectContaining({ code: 'changed_meanwhile' })] });
  } finally {
    await other.rollback().catch(() => undefined);
  }
});
