import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { hasSecondFactor } from '../mfa/policy.js';

export type StepUpCheck = (input: { accountId: string; clientRequiresMfa: boolean; acrValues?: string }) => Promise<boolean>;

export function clientRequiresMfa(ctx: KoaContextWithOIDC): boolean {
  return ctx.oidc.client?.metadata().require_mfa === true;
}

/**
 * oidc-provider's default prompts, with one more check on `login`: a session that signed in with a password only
 * is sent back to the login interaction (for its second factor alone) when this request needs MFA.
 */
export function createInteractionPolicy(needsSecondFactor: StepUpCheck) {
  const policy = interactionPolicy.base();
  const login = policy.get('login')!;
  login.checks.add(
    new interactionPolicy.Check('mfa_required', 'multi-factor authentication is required', async (ctx) => {
      const session = ctx.oidc.session;
      if (!session?.accountId || hasSecondFactor(session.amr)) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      // The sign-in that just finished in this very request's interaction already weighed this client and these
      // acr_values when it decided no second factor was needed.
      if (ctx.oidc.result?.login) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const acrValues = typeof ctx.oidc.params?.acr_values === 'string' ? ctx.oidc.params.acr_values : undefined;
      return needsSecondFactor({ accountId: session.accountId, clientRequiresMfa: clientRequiresMfa(ctx), acrValues });
    }),
  );
  return policy;
}
