import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import { anAdmin, apiClient } from '../helpers/admin-api.js';
import { BrowserAgent } from '../helpers/browser-agent.js';
import { APP_ORIGIN } from '../helpers/factories.js';
import { recordingNotifier } from '../helpers/mfa.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const notices = recordingNotifier();
const logLines: string[] = [];
let server: TestServer;
let api: ReturnType<typeof apiClient>;
let superAdmin: Awaited<ReturnType<typeof anAdmin>>;

beforeAll(async () => {
  const sink = new Writable({ write: (chunk, _encoding, done) => done(void logLines.push(String(chunk))) });
  server = await startTestServer({ notifier: notices.notifier, logger: pino({ level: 'info' }, sink) });
  api = apiClient(server.url);
  superAdmin = await anAdmin(server.latchkey, server.url, ['super_admin']);
});
afterAll(() => server.close());

async function invite(email: string) {
  const invited = await api('POST', '/api/admin/users/invitations', superAdmin.token, { email });
  const userId = (invited.json.user as { id: string }).id;
  const link = notices.sent.find((n) => n.userId === userId && n.event === 'invited')!.details!.link!;
  return { userId, link, token: link.split('/').at(-1)! };
}

describe('an invitation link', () => {
  test('its token reaches neither the request log nor a Referer header', async () => {
    const { link, token } = await invite('logged@example.test');
    const agent = new BrowserAgent(APP_ORIGIN);
    const page = await agent.visit(link);
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    await agent.visit(link, { form: { _csrf: 'forged', password: 'x', password_again: 'x' } });
    await agent.submit(page, '', { password: 'short', password_again: 'short' });
    await agent.submit(page, '', { password: 'a passphrase of my own', password_again: 'a passphrase of my own' });
    const requests = logLines.filter((line) => line.includes('"msg":"request"') && line.includes('/invitation'));
    expect(requests.length).toBeGreaterThanOrEqual(4);
    expect(logLines.join('')).not.toContain(token);
    expect(requests.filter((line) => line.includes('"path":"/invitation/:token"')).length).toBeGreaterThanOrEqual(4);
  });
});
