import { parsePhoneNumberFromString } from 'libphonenumber-js';
import type { SmsSender } from '../../../notify/sms.js';
import type { PageRenderer } from '../../../render.js';
import type { Factor } from '../../factor.js';
import { createSentCodeFactor, type SentCodeDeps } from '../sent-code/index.js';

/** "+82 10-1234-5612" → "+82 ••• ••12": enough to recognise one's own phone, not to learn someone else's. */
export function maskPhone(e164: string): string {
  const parsed = parsePhoneNumberFromString(e164);
  const country = parsed ? `+${parsed.countryCallingCode}` : e164.slice(0, 3);
  return `${country} ••• ••${e164.slice(-2)}`;
}

/** Numbers are entered with their country code and stored as E.164. */
export function normalisePhone(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 32 || !input.trim().startsWith('+')) return undefined;
  const parsed = parsePhoneNumberFromString(input.trim());
  return parsed?.isValid() ? parsed.number : undefined;
}

export function createSmsFactor(deps: SentCodeDeps, sender: SmsSender, renderer: PageRenderer): Factor {
  return createSentCodeFactor(deps, {
    factor: 'sms',
    amr: 'sms',
    field: 'phone',
    normalise: normalisePhone,
    mask: maskPhone,
    send: (to, code, locale) => sender.send(to, renderer.translator(locale)('code.sms', { code, issuer: deps.issuerName })),
  });
}
