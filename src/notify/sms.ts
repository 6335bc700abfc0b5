import type { Twilio } from 'twilio';
import type { Config } from '../config/index.js';
import type { Logger } from '../logger.js';

/**
 * A message could not be delivered. `destination`: the provider refused the number or address itself (the user can
 * fix it); `provider`: the provider failed us (credentials, outage, network), which is the operator's to fix.
 * `detail` is the provider's own words, for the operator's log.
 */
export class DeliveryError extends Error {
  constructor(
    readonly detail: string,
    readonly kind: 'destination' | 'provider',
    readonly providerCode?: number,
  ) {
    super(detail);
    this.name = 'DeliveryError';
  }
}

/**
 * Twilio errors that say the 'To' number is wrong, not that Twilio or our account is: 21211 invalid 'To' number,
 * 21614 not a mobile number, 21217 the number does not appear valid, 21612 the number cannot be reached from ours.
 */
const TWILIO_BAD_DESTINATION = new Set([21211, 21217, 21612, 21614]);

export interface SmsSender {
  send(to: string, body: string): Promise<void>;
}

/**
 * Twilio's SDK has no base-URL setting, so requests go through a RequestClient that swaps the origin for the
 * configured one: api.twilio.com by default, a Twilio-compatible gateway, or a local endpoint in tests.
 */
async function connectTwilio(config: NonNullable<Config['twilio']>): Promise<Twilio> {
  const { default: twilio } = await import('twilio');
  const base = new twilio.RequestClient();
  const httpClient = Object.assign(Object.create(base) as typeof base, {
    request: (opts: Parameters<typeof base.request>[0]) => {
      const url = new URL(opts.uri);
      return base.request({ ...opts, uri: `${config.apiOrigin}${url.pathname}${url.search}` });
    },
  });
  return twilio(config.accountSid, config.authToken, { httpClient });
}

/** The SDK (some 20 MB once loaded) is loaded at the first message, not at start: most servers send none for hours. */
export function createTwilioSender(config: NonNullable<Config['twilio']>): SmsSender {
  let connected: Promise<Twilio> | undefined;
  return {
    async send(to, body) {
      const client = await (connected ??= connectTwilio(config));
      try {
        await client.messages.create({
          to,
          body,
          ...(config.messagingServiceSid ? { messagingServiceSid: config.messagingServiceSid } : { from: config.from! }),
        });
      } catch (error) {
        const e = error as { code?: number; message?: string; status?: number };
        if (typeof e.code === 'number') {
          throw new DeliveryError(e.message ?? 'the SMS could not be sent', TWILIO_BAD_DESTINATION.has(e.code) ? 'destination' : 'provider', e.code);
        }
        throw new DeliveryError(`the SMS service could not be reached (${e.message ?? 'no answer'})`, 'provider');
      }
    },
  };
}

/** Development only (refused in production by config): prints the message instead of sending it. */
export function createLogSmsSender(logger: Logger): SmsSender {
  return {
    async send(to, body) {
      logger.warn({ to, body }, 'SMS not sent: development log transport');
    },
  };
}
