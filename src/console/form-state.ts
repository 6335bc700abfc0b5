import type { Context, Middleware } from 'koa';
import { type z, ZodError } from 'zod';
import { AppError } from '../errors.js';
import type { Translate } from '../i18n.js';

/**
 * A console form that failed: its page is rendered again with what was typed and the error on its field
 * (views/admin-field.eta and views/admin-form-error.eta read it), never the generic error page.
 */
export interface FailedForm {
  id: string;
  values: Record<string, unknown>;
  error: {
    field?: string;
    /** Words to show as they are (the admin API's own, English). */
    message?: string;
    /** Or a message key, shown in the viewer's language. */
    key?: string;
    params?: Record<string, string | number>;
    /** An operation's machine code: its message in the viewer's language where there is one (`error.<code>`). */
    code?: string;
    /** Shown above the form rather than on a field. */
    general?: boolean;
    /** What the page shows, in the viewer's language where possible (set by `describeFailure`). */
    text?: string;
  };
}

/** A form refused for a reason the user can fix, said in their language on the field at fault. */
export class FormRefusal extends AppError {
  constructor(
    status: number,
    field: string | undefined,
    readonly key: string,
    readonly params: Record<string, string | number> = {},
  ) {
    super(status, key, key, field);
    this.name = 'FormRefusal';
  }
}

// Typed secrets are never sent back into the page: the user types them again.
const SECRET_FIELD = /password|^_csrf$|^code$/;

/** What was typed, minus secrets. */
export function keptValues(values: Record<string, unknown>, keepCodes = false): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([name]) => !SECRET_FIELD.test(name) || (keepCodes && name === 'code')));
}

/** The error a failed form shows; undefined for errors that are not the user's to fix (those go to the error page). */
export function formError(error: unknown, values: Record<string, unknown>): FailedForm['error'] | undefined {
  if (error instanceof ZodError) {
    const issue = error.issues[0]!;
    return { field: issue.path.join('.') || undefined, message: issue.message };
  }
  if (error instanceof FormRefusal) return { field: error.field, key: error.key, params: error.params, general: !error.field };
  if (!(error instanceof AppError) || error.status < 400 || error.status >= 500 || [401, 403].includes(error.status)) return undefined;
  return { field: error.field, message: error.detail ?? error.message, code: error.detail ? undefined : error.code, general: !error.field || !(error.field.split('.')[0]! in values) };
}

/** The failed form with the words its page shows: the refusal's key, else the operation's code, translated; else as given. */
export function describeFailure(form: FailedForm, t: Translate): FailedForm {
  const { key, params, code, message } = form.error;
  const known = code && t(`error.${code}`) !== `error.${code}` ? t(`error.${code}`) : undefined;
  return { ...form, error: { ...form.error, text: key ? t(key, params) : (known ?? message ?? t('form.error.invalid')) } };
}

/**
 * Runs a form's action (which answers with a redirect on success: POST → 303 → GET, so Back never posts again); on
 * an error the user can fix, `again` renders the form's page with it, with the error's 4xx status.
 */
export async function submitForm(
  ctx: Context,
  id: string,
  values: Record<string, unknown>,
  act: () => Promise<void>,
  again: (form: FailedForm) => Promise<void> | void,
  options: { keepCodes?: boolean } = {},
) {
  try {
    await act();
  } catch (error) {
    const failed = formError(error, values);
    if (!failed) throw error;
    const status = (error as { status?: number }).status ?? 400;
    if (status === 429 && error instanceof FormRefusal && typeof error.params.seconds === 'number') ctx.set('retry-after', String(error.params.seconds));
    await again({ id, values: keptValues(values, options.keepCodes), error: failed });
    ctx.status = status;
  }
}

/** A console form that worked answers 303 See Other: the browser GETs the next page, and Back never posts again. */
export const seeOtherAfterPost: Middleware = async (ctx, next) => {
  await next();
  if (ctx.method === 'POST' && ctx.status === 302) ctx.status = 303;
};

/** What a destructive action asks before it runs: a question and its button, in the viewer's language. */
export interface Confirmation {
  title: string;
  question: string;
  params?: Record<string, unknown>;
  button: string;
  /** Where "Cancel" goes: the page the action started from. */
  back: string;
}

/**
 * Destructive actions ask first, and without script: a POST that does not carry `confirm=yes` answers with a page
 * asking, whose form posts the same fields again with it. Returns true when the action may run.
 */
export function confirmedOrAsk(ctx: Context, render: (template: string, data: Record<string, unknown>) => void, confirmation: Confirmation): boolean {
  const body = (ctx.request.body ?? {}) as Record<string, unknown>;
  if (body.confirm === 'yes') return true;
  const fields = Object.entries(body).filter((entry): entry is [string, string] => entry[0] !== '_csrf' && entry[0] !== 'confirm' && typeof entry[1] === 'string');
  render('confirm', { ...confirmation, action: ctx.path, fields });
  return false;
}

/** Parses a console form; a refusal names the field and says why in the user's language (the schema's messages are keys). */
export function parseOrRefuse<T>(schema: z.ZodType<T>, values: unknown): T {
  const parsed = schema.safeParse(values);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new FormRefusal(400, issue.path.join('.') || undefined, /^[a-z_]+(\.[a-z_]+)+$/.test(issue.message) ? issue.message : 'form.error.invalid');
}
