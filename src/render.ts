import { Eta } from 'eta';
import { createTranslate, loadCatalogues, type Locale, type Translate } from './i18n.js';
import { VIEWS_DIR } from './paths.js';

export interface PageRenderer {
  render(template: string, locale: Locale, data: Record<string, unknown>): string;
  translator(locale: Locale): Translate;
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** Dates and times as the viewer reads them: their language, their time zone (named, so there is no doubt). */
export function dateFormatter(locale: Locale, timeZone: string) {
  return (value: Date | string | number | null | undefined) => {
    if (value === null || value === undefined || value === '') return '—';
    const key = `${locale}|${timeZone}`;
    let format = dateFormats.get(key);
    if (!format) {
      format = new Intl.DateTimeFormat(locale === 'ko' ? 'ko-KR' : 'en-GB', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone, timeZoneName: 'short' });
      dateFormats.set(key, format);
    }
    return format.format(new Date(value));
  };
}

/** Eta escapes every `<%= %>` by default; raw output (`<%~ %>`) is used only for HTML we built ourselves. */
export function createPageRenderer(viewsDir = VIEWS_DIR): PageRenderer {
  const eta = new Eta({ views: viewsDir, autoEscape: true, cache: true });
  const catalogues = loadCatalogues(viewsDir);
  const translators = { en: createTranslate(catalogues, 'en'), ko: createTranslate(catalogues, 'ko') };
  return {
    render: (template, locale, data) => {
      const timeZone = typeof data.timeZone === 'string' ? data.timeZone : 'UTC';
      return eta.render(template, { ...data, locale, t: translators[locale], fmt: dateFormatter(locale, timeZone) });
    },
    translator: (locale) => translators[locale],
  };
}
