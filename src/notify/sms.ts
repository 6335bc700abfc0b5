import twilio from 'twilio';
import type { Config } from '../config/index.js';
import type { Logger } from '../logger.js';

/** A message could not be delivered; `detail` is safe to show (e.g. Twilio's "not a valid phone number"). */
export class DeliveryError extends Error {
  constructor(
    readonly detail: string,
    readonly providerCode?: number,
  ) {
    super(detail);
    this.name = 'DeliveryError';
  }
}

export interface SmsSender {
  send(to: string, body: string): Promise<void>;
}

/**
 * Twilio's SDK has no base-URL setting, so requests go through a RequestClient that swaps the origin for the
 * configured one: api.twilio.com by default, a Twilio-compatible gateway, or a local endpoint in tests.
 */
export function createTwilioSender(config: NonNullable<Config['twilio']>): SmsSender {
  const base = new twilio.RequestClient();
  const httpClient = Object.assign(Object.create(base) as typeof base, {
    request: (opts: Parameters<typeof base.request>[0]) => {
      const url = new URL(opts.uri);
      return base.request({ ...opts, uri: `${config.apiOrigin}${url.pathname}${url.search}` });
    },
  });
  const client = twilio(config.accountSid, config.authToken, { httpClient });
  return {
    async send(to, body) {
      try {
        await client.messages.create({
          to,
          body,
          ...(config.messagingServiceSid ? { messagingServiceSid: config.messagingServiceSid } : { from: config.from! }),
        });
      } catch (error) {
        const e = error as { code?: number; message?: string; status?: number };
        // Twilio's own wording for the 2xxxx errors is meant for people ("The 'To' number … is not a valid phone number").
        if (typeof e.code === 'number') throw new DeliveryError(e.message ?? 'the SMS could not be sent', e.code);
        throw new DeliveryError('the SMS service could not be reached');
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
