import { expect, test } from '@jest/globals';
import { createTranslate, loadCatalogues } from '../src/i18n.js';
import { VIEWS_DIR } from '../src/paths.js';
import { createPageRenderer, dateFormatter, storedWords } from '../src/render.js';

const catalogues = loadCatalogues(VIEWS_DIR);
const words = (locale: 'en' | 'ko') => storedWords(catalogues, createTranslate(catalogues, locale));
const evening = new Date('2026-01-06T10:05:00Z');

test('dates read on a 24-hour clock in both languages: no "PM" on a Korean page', () => {
  expect(dateFormatter('ko', 'Asia/Seoul')(evening)).toMatch(/^2026년 1월 6일 19:05 /);
  expect(dateFormatter('ko', 'Asia/Seoul')(evening)).not.toMatch(/AM|PM/);
  expect(dateFormatter('en', 'Asia/Seoul')(evening)).toMatch(/^6 Jan 2026, 19:05 /);
  expect(dateFormatter('ko', 'UTC')(null)).toBe('—');
});

test('a method is named by its type in the reader\'s language; a built-in English label is not repeated after it', () => {
  expect(words('ko').methodName('totp', 'Authenticator app')).toBe('인증 앱');
  expect(words('ko').methodName('pin', 'Door PIN')).toBe('출입문 PIN');
  expect(words('en').methodName('passkey', 'Passkey')).toBe('Passkey');
  expect(words('ko').methodName('totp', 'Work phone')).toBe('인증 앱: Work phone');
  expect(words('en').methodName('sms', null)).toBe('Text message');
});

test('audit actions are words in the reader\'s language; a code without words yet is shown as it is', () => {
  expect(words('ko').auditAction('mfa.reset')).toBe('2단계 인증 초기화');
  expect(words('en').auditAction('mfa.reset')).toBe('Two-step verification reset');
  expect(words('ko').auditAction('something.new')).toBe('something.new');
  const english = Object.keys(catalogues.en).filter((key) => key.startsWith('audit.action.') || key.startsWith('admin.import.reason.'));
  expect(english.filter((key) => !catalogues.ko[key])).toEqual([]);
});

test('every page carries a skip link to its main content, and a favicon', () => {
  const html = createPageRenderer().render('logged-out', 'ko', {});
  expect(html).toContain('<a class="skip-link" href="#content">본문으로 건너뛰기</a>');
  expect(html).toContain('<main id="content" tabindex="-1">');
  expect(html).toContain('<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">');
});
