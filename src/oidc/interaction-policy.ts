import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { hasSecondFactor, isPhishingResistant, requestsPhishingResistant } from '../mfa/policy.js';

/** Whether this request needs more of the session's user than the sign-in that made the session (its `amr`) did. */
export type StepUpCheck = (input: {
  accountId: string;
  clientRequiresMfa: boolean;
  clientRequiresPhishingResistant: boolean;
  acrValues?: string;
  amr?: string[];
}) => Promise<boolean>;

export function clientRequiresMfa(ctx: KoaContextWithOIDC): boolean {
  return ctx.oidc.client?.metadata().require_mfa === true;
}
const clientRequiresPhishingResistant = (ctx: KoaContextWithOIDC) => ctx.oidc.client?.metadata().require_phishing_resistant === true;

/**
 * oidc-provider's default prompts, with one more check on `login`: a session that signed in with a password only
 * is sent back to the login interaction (for its second step alone) when this request needs more than it did.
 */
export function createInteractionPolicy(needsSecondFactor: StepUpCheck) {
  const policy = interactionPolicy.base();
  const login = policy.get('login')!;
  login.checks.add(
    new interactionPolicy.Check('mfa_required', 'multi-factor authentication is required', async (ctx) => {
      const session = ctx.oidc.session;
      const acrValues = typeof ctx.oidc.params?.acr_values === 'string' ? ctx.oidc.params.acr_values : undefined;
      const phishingResistant = clientRequiresPhishingResistant(ctx) || requestsPhishingResistant(acrValues);
      // A multi-factor session answers everything but a demand for phishing resistance, which only a passkey answers.
      if (!session?.accountId || isPhishingResistant(session.amr) || (hasSecondFactor(session.amr) && !phishingResistant)) {
        return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      }
      // The sign-in that just finished in this very request's interaction already weighed this client and these
      // acr_values when it decided no second factor was needed.
      if (ctx.oidc.result?.login) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      return needsSecondFactor({ accountId: session.accountId, clientRequiresMfa: clientRequiresMfa(ctx), clientRequiresPhishingResistant: clientRequiresPhishingResistant(ctx), acrValues, amr: session.amr });
    }),
  );
  return policy;
}
