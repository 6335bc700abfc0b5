import fs from 'node:fs';
import path from 'node:path';

export const LOCALES = ['en', 'ko'] as const;
export type Locale = (typeof LOCALES)[number];
export type Translate = (key: string, vars?: Record<string, string | number>) => string;

type Catalogue = Record<string, string>;

/** One catalogue per language under views/locales; a key missing in Korean falls back to English. */
export function loadCatalogues(viewsDir: string): Record<Locale, Catalogue> {
  const read = (locale: Locale) =>
    JSON.parse(fs.readFileSync(path.join(viewsDir, 'locales', `${locale}.json`), 'utf8')) as Catalogue;
  return { en: read('en'), ko: read('ko') };
}

export function createTranslate(catalogues: Record<Locale, Catalogue>, locale: Locale): Translate {
  return (key, vars) => {
    const template = catalogues[locale][key] ?? catalogues.en[key] ?? key;
    return vars ? template.replace(/\{(\w+)\}/g, (all, name: string) => String(vars[name] ?? all)) : template;
  };
}

function isLocale(value: string | undefined | null): value is Locale {
  return !!value && (LOCALES as readonly string[]).includes(value);
}

/** ui_locales (the app's request) wins, then the account's language, then the browser's Accept-Language. */
export function pickLocale(input: {
  uiLocales?: unknown;
  accountLocale?: string | null;
  acceptsLanguages: (...langs: string[]) => string | false;
  fallback: Locale;
}): Locale {
  if (typeof input.uiLocales === 'string') {
    const requested = input.uiLocales.split(/\s+/).map((tag) => tag.split('-')[0]?.toLowerCase());
    const match = requested.find(isLocale);
    if (match) return match;
  }
  if (isLocale(input.accountLocale)) return input.accountLocale;
  const accepted = input.acceptsLanguages(...LOCALES);
  return isLocale(accepted || undefined) ? (accepted as Locale) : input.fallback;
}
