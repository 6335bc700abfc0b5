import { z } from 'zod';
import type { EmailSender } from '../../../notify/email.js';
import { DeliveryError } from '../../../notify/sms.js';
import type { PageRenderer } from '../../../render.js';
import type { Factor } from '../../factor.js';
import { createSentCodeFactor, type SentCodeDeps } from '../sent-code/index.js';

/** "ada.lovelace@example.com" → "a•••e@example.com". */
export function maskEmail(email: string): string {
  const [local = '', domain = ''] = email.split('@');
  return `${local.slice(0, 1)}•••${local.length > 2 ? local.slice(-1) : ''}@${domain}`;
}

const emailSchema = z.email().max(320);

export function createEmailFactor(deps: SentCodeDeps, sender: EmailSender, renderer: PageRenderer): Factor {
  return createSentCodeFactor(deps, {
    factor: 'email',
    // RFC 8176 has no value for an emailed code; it is a one-time password.
    amr: 'otp',
    field: 'email',
    normalise: (input) => {
      const parsed = emailSchema.safeParse(typeof input === 'string' ? input.trim() : input);
      return parsed.success ? parsed.data.toLowerCase() : undefined;
    },
    mask: maskEmail,
    send: async (to, code, locale) => {
      const t = renderer.translator(locale);
      const data = { code, issuer: deps.issuerName, minutes: Math.round(deps.limits.ttlSeconds / 60) };
      try {
        await sender.send({
          to,
          subject: t('code.email.subject', data),
          text: renderer.render('email/code-text', locale, data),
          html: renderer.render('email/code-html', locale, data),
        });
      } catch (error) {
        throw new DeliveryError(`the email could not be sent (${(error as Error).message})`, 'provider');
      }
    },
  });
}
