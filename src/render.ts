import { Eta } from 'eta';
import { createTranslate, loadCatalogues, type Locale, type Translate } from './i18n.js';
import { VIEWS_DIR } from './paths.js';

export interface PageRenderer {
  render(template: string, locale: Locale, data: Record<string, unknown>): string;
  translator(locale: Locale): Translate;
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/**
 * Dates and times as the viewer reads them: their language, their time zone (named, so there is no doubt), on a
 * 24-hour clock: ICU's ko-KR pattern in Node writes "PM" where a Korean reader expects 오후, and 19:05 reads the same
 * in both languages.
 */
export function dateFormatter(locale: Locale, timeZone: string) {
  return (value: Date | string | number | null | undefined) => {
    if (value === null || value === undefined || value === '') return '—';
    const key = `${locale}|${timeZone}`;
    let format = dateFormats.get(key);
    if (!format) {
      format = new Intl.DateTimeFormat(locale === 'ko' ? 'ko-KR' : 'en-GB', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone, timeZoneName: 'short' });
      dateFormats.set(key, format);
    }
    return format.format(new Date(value));
  };
}

type Catalogues = ReturnType<typeof loadCatalogues>;

/**
 * Words for what Latchkey stored in English: a sign-in method's name (a label that only repeats its type's English
 * name, as the built-in defaults do, is left out) and an audit action's code (shown as is when it has no words yet).
 */
export function storedWords(catalogues: Catalogues, t: Translate) {
  return {
    methodName: (factor: string, label?: string | null) => {
      const type = t(`factor.${factor}`);
      const builtIn = !label || label === catalogues.en[`factor.${factor}`] || label === catalogues.ko[`factor.${factor}`];
      return builtIn ? type : `${type}: ${label}`;
    },
    auditAction: (code: string) => (catalogues.en[`audit.action.${code}`] === undefined ? code : t(`audit.action.${code}`)),
  };
}

/** Eta escapes every `<%= %>` by default; raw output (`<%~ %>`) is used only for HTML we built ourselves. */
export function createPageRenderer(viewsDir = VIEWS_DIR): PageRenderer {
  const eta = new Eta({ views: viewsDir, autoEscape: true, cache: true });
  const catalogues = loadCatalogues(viewsDir);
  const translators = { en: createTranslate(catalogues, 'en'), ko: createTranslate(catalogues, 'ko') };
  const words = { en: storedWords(catalogues, translators.en), ko: storedWords(catalogues, translators.ko) };
  return {
    render: (template, locale, data) => {
      const timeZone = typeof data.timeZone === 'string' ? data.timeZone : 'UTC';
      return eta.render(template, { ...data, locale, t: translators[locale], fmt: dateFormatter(locale, timeZone), ...words[locale] });
    },
    translator: (locale) => translators[locale],
  };
}
