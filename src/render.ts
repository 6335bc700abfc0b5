import { Eta } from 'eta';
import { createTranslate, loadCatalogues, type Locale, type Translate } from './i18n.js';
import { VIEWS_DIR } from './paths.js';

export interface PageRenderer {
  render(template: string, locale: Locale, data: Record<string, unknown>): string;
  translator(locale: Locale): Translate;
}

/** Eta escapes every `<%= %>` by default; raw output (`<%~ %>`) is used only for HTML we built ourselves. */
export function createPageRenderer(viewsDir = VIEWS_DIR): PageRenderer {
  const eta = new Eta({ views: viewsDir, autoEscape: true, cache: true });
  const catalogues = loadCatalogues(viewsDir);
  const translators = { en: createTranslate(catalogues, 'en'), ko: createTranslate(catalogues, 'ko') };
  return {
    render: (template, locale, data) => eta.render(template, { ...data, locale, t: translators[locale] }),
    translator: (locale) => translators[locale],
  };
}
