import crypto from 'node:crypto';
import type { Locale } from '../i18n.js';
import type { EmailSender } from '../notify/email.js';
import type { PageRenderer } from '../render.js';
import type { Clock } from '../security/clock.js';
import { constantTimeEqual } from '../security/secret-box.js';

export interface EmailConfirmationDeps {
  sender: EmailSender;
  renderer: PageRenderer;
  clock: Clock;
  /** Keyed hashing: the stored value alone does not let anyone test codes offline. */
  hashKey: Buffer;
  issuerName: string;
  ttlSeconds: number;
}

/**
 * A code sent to the account's own inbox before a first second factor is bound during a sign-in, so that knowing
 * the password alone is not enough to attach one's own authenticator to someone else's account.
 */
export function createEmailConfirmation(deps: EmailConfirmationDeps) {
  const hash = (uid: string, code: string) => crypto.createHmac('sha256', deps.hashKey).update(`enrol:${uid}:${code}`).digest('base64url');
  return {
    /** Sends a fresh code; what is kept is its hash and expiry. */
    async send(interactionUid: string, to: { email: string; locale: Locale }) {
      const code = crypto.randomInt(0, 1_000_000).toString().padStart(6, '0');
      const t = deps.renderer.translator(to.locale);
      const data = { code, issuer: deps.issuerName, minutes: Math.round(deps.ttlSeconds / 60) };
      await deps.sender.send({
        to: to.email,
        subject: t('code.email.subject', data),
        text: deps.renderer.render('email/code-text', to.locale, data),
        html: deps.renderer.render('email/code-html', to.locale, data),
      });
      return { email_code_hash: hash(interactionUid, code), email_code_expires_at: new Date(deps.clock.now().getTime() + deps.ttlSeconds * 1000) };
    },
    matches(interactionUid: string, stored: { email_code_hash: string | null; email_code_expires_at: Date | null }, given: string) {
      const code = given.replace(/\s/g, '');
      if (!stored.email_code_hash || !stored.email_code_expires_at || stored.email_code_expires_at <= deps.clock.now()) return false;
      if (!/^\d{6}$/.test(code)) return false;
      const typed = hash(interactionUid, code);
      // Every code mailed for this sign-in is compared, each in constant time (see addEmailCode).
      return stored.email_code_hash.split(' ').map((one) => constantTimeEqual(typed, one)).includes(true);
    },
  };
}

export type EmailConfirmation = ReturnType<typeof createEmailConfirmation>;
