import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { UserRow } from '../../src/db/users.js';
import { aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startSmtpServer } from '../helpers/smtp.js';

const clock = steppingClock();
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let server: TestServer;
beforeAll(async () => {
  smtp = await startSmtpServer();
  server = await startTestServer({ clock, env: { LATCHKEY_SMTP_URL: smtp.url, LATCHKEY_MAIL_FROM: 'Latchkey <security@latchkey.test>' } });
});
afterAll(async () => {
  await server.close();
  await smtp.close();
});

test('an admin reset reaches the user by email, as text and HTML, in their language', async () => {
  const user = await aUser(server.latchkey, { locale: 'ko' });
  await enrolTotp(server.latchkey, user, clock);
  const added = await smtp.messageTo(user.email);
  expect(added.subject).toBe('계정에 로그인 방법이 추가되었습니다');

  await server.latchkey.mfa.reset((await server.latchkey.queries.users.findById(user.id)) as UserRow, { actorId: user.id });
  const deadline = Date.now() + 5000;
  while (!smtp.messages.some((m) => m.subject === '관리자가 2단계 인증을 초기화했습니다') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const reset = smtp.messages.find((m) => m.subject === '관리자가 2단계 인증을 초기화했습니다')!;
  expect(reset.from?.text).toContain('security@latchkey.test');
  expect(reset.text).toContain('관리자가 2단계 인증 방법과 복구 코드를 삭제했습니다');
  expect(reset.html).toContain('<html lang="ko">');
});

test('the text part is plain text: an apostrophe is an apostrophe, not an HTML entity', async () => {
  const user = await aUser(server.latchkey);
  await enrolTotp(server.latchkey, user, clock);
  const added = await smtp.messageTo(user.email);
  expect(added.text).toContain("If this wasn't you");
  expect(added.text).not.toMatch(/&#?\w+;/);
  expect(added.html).toContain('wasn&#39;t');
});

test('an English user gets English, and a failed delivery does not undo the action', async () => {
  const user = await aUser(server.latchkey);
  await enrolTotp(server.latchkey, user, clock);
  expect((await smtp.messageTo(user.email)).subject).toBe('A sign-in method was added to your account');

  await smtp.close();
  const row = (await server.latchkey.queries.users.findById(user.id)) as UserRow;
  await server.latchkey.mfa.reset(row, { actorId: user.id });
  expect(await server.database.db('user_factors').where({ user_id: user.id })).toHaveLength(0);
  smtp = await startSmtpServer();
});
