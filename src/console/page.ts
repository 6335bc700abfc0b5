import type { Context } from 'koa';
import { type Locale, pickLocale } from '../i18n.js';
import type { PageRenderer } from '../render.js';
import { isTimeZone } from '../access/time.js';
import { describeFailure, type FailedForm } from './form-state.js';

export const TIME_ZONE_COOKIE = 'lk_tz';

/**
 * A page of the account or admin console, for its signed-in user: in the language they asked for (`ui_locales`),
 * their account's, or their browser's, with the form token and who they are.
 */
export function createConsolePage(renderer: PageRenderer, defaultLocale: Locale) {
  return (ctx: Context, template: string, data: Record<string, unknown>, status = 200) => {
    const user = ctx.state.user!;
    const locale = pickLocale({ uiLocales: ctx.query.ui_locales, accountLocale: user.locale, acceptsLanguages: (...l) => ctx.acceptsLanguages(...l), fallback: defaultLocale });
    ctx.state.locale = locale;
    ctx.status = status;
    ctx.type = 'html';
    // The account's time zone, else the browser's (a cookie our script sets), else UTC.
    let browserZone = ctx.cookies.get(TIME_ZONE_COOKIE);
    try {
      browserZone = browserZone && decodeURIComponent(browserZone);
    } catch {
      browserZone = undefined;
    }
    const timeZone = user.time_zone ?? (browserZone && isTimeZone(browserZone) ? browserZone : 'UTC');
    ctx.body = renderer.render(template, locale, {
      ...data,
      form: data.form && describeFailure(data.form as FailedForm, renderer.translator(locale)),
      csrf: ctx.state.csrf,
      timeZone,
      path: ctx.path,
      me: { email: user.email, name: user.name, roles: user.roles, isAdmin: user.roles.length > 0 },
    });
  };
}
