import Router from '@koa/router';
import type { Context } from 'koa';
import type { InteractionResults } from 'oidc-provider';
import { AppError } from '../errors.js';
import { pickLocale, type Locale } from '../i18n.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { PageRenderer } from '../render.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import { authenticateWithPassword, loginFormSchema, type PasswordLoginDeps } from './password-login.js';

export interface InteractionDeps {
  providers: ProviderHolder;
  renderer: PageRenderer;
  passwordLogin: PasswordLoginDeps;
  defaultLocale: Locale;
}

/**
 * The sign-in pages oidc-provider sends users to. Every POST re-reads the interaction and checks that it is at the
 * prompt the form belongs to, so a stale or replayed form cannot skip a step.
 */
export function createInteractionRouter(deps: InteractionDeps) {
  const router = new Router({ prefix: '/interaction/:uid' });
  const provider = () => deps.providers.provider;

  const details = async (ctx: Context, expectedPrompt?: string) => {
    const interaction = await provider().interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== ctx.params.uid) throw new AppError(400, 'interaction_mismatch');
    if (expectedPrompt && interaction.prompt.name !== expectedPrompt) throw new AppError(400, 'interaction_step');
    const locale = pickLocale({
      uiLocales: interaction.params.ui_locales,
      acceptsLanguages: (...langs) => ctx.acceptsLanguages(...langs),
      fallback: deps.defaultLocale,
    });
    ctx.state.locale = locale;
    const client = await provider().Client.find(String(interaction.params.client_id));
    return { interaction, locale, clientName: client?.clientName ?? String(interaction.params.client_id) };
  };

  const page = (ctx: Context, template: string, locale: Locale, data: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = deps.renderer.render(template, locale, { ...data, csrf: ctx.state.csrf, uid: ctx.params.uid });
  };

  const finish = async (ctx: Context, result: InteractionResults, merge: boolean) => {
    const returnTo = await provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    ctx.status = 303;
    ctx.redirect(returnTo);
  };

  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });
  router.use(parseBody(), csrf());

  router.get('/', async (ctx) => {
    const { interaction, locale, clientName } = await details(ctx);
    switch (interaction.prompt.name) {
      case 'login':
        return page(ctx, 'login', locale, { clientName, email: interaction.params.login_hint ?? '' });
      case 'consent':
        return page(ctx, 'consent', locale, {
          clientName,
          scopes: [...(interaction.prompt.details.missingOIDCScope as string[] | undefined ?? [])],
        });
      default:
        throw new AppError(400, 'interaction_step');
    }
  });

  router.post('/login', async (ctx) => {
    const { interaction, locale, clientName } = await details(ctx, 'login');
    const form = loginFormSchema.safeParse(ctx.request.body);
    const email = typeof (ctx.request.body as { email?: unknown })?.email === 'string' ? (ctx.request.body as { email: string }).email : '';
    if (!form.success) {
      return page(ctx, 'login', locale, { clientName, email, error: 'login.error.missing' }, 400);
    }
    const outcome = await authenticateWithPassword(deps.passwordLogin, {
      ...form.data,
      ip: ctx.ip,
      userAgent: ctx.get('user-agent'),
      clientId: String(interaction.params.client_id),
    });
    if (!outcome.ok) {
      if (outcome.reason === 'throttled') ctx.set('retry-after', String(outcome.retryAfterSeconds));
      return page(ctx, 'login', locale, {
        clientName,
        email: form.data.email,
        error: outcome.reason === 'throttled' ? 'login.error.throttled' : 'login.error.invalid',
      }, outcome.reason === 'throttled' ? 429 : 401);
    }
    await finish(ctx, { login: { accountId: outcome.user.id, amr: ['pwd'], remember: true } }, false);
  });

  router.post('/confirm', async (ctx) => {
    const { interaction } = await details(ctx, 'consent');
    const { params, prompt, session } = interaction;
    if (!session?.accountId) throw new AppError(400, 'interaction_step');
    const Grant = provider().Grant;
    const grant = interaction.grantId
      ? await Grant.find(interaction.grantId)
      : new Grant({ accountId: session.accountId, clientId: String(params.client_id) });
    if (!grant) throw new AppError(400, 'interaction_step');
    const missingScope = prompt.details.missingOIDCScope as string[] | undefined;
    const missingClaims = prompt.details.missingOIDCClaims as string[] | undefined;
    if (missingScope) grant.addOIDCScope(missingScope.join(' '));
    if (missingClaims) grant.addOIDCClaims(missingClaims);
    const grantId = await grant.save();
    await finish(ctx, { consent: interaction.grantId ? {} : { grantId } }, true);
  });

  router.post('/abort', async (ctx) => {
    await details(ctx);
    await finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
  });

  return router;
}
