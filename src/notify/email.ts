import type { Transporter } from 'nodemailer';
import type { Config } from '../config/index.js';
import type { Locale } from '../i18n.js';
import type { Logger } from '../logger.js';
import type { PageRenderer } from '../render.js';
import type { Notifier } from './notifier.js';

export interface OutgoingEmail {
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface EmailSender {
  send(message: OutgoingEmail): Promise<void>;
}

/**
 * SMTP through nodemailer; undefined when no LATCHKEY_SMTP_URL is configured. nodemailer loads with the first
 * message, not at start: an idle instance does not carry it.
 */
export function createSmtpSender(config: Config['mail']): EmailSender | undefined {
  const { smtpUrl } = config;
  if (!smtpUrl) return undefined;
  let transport: Promise<Transporter> | undefined;
  return {
    async send(message) {
      transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport(smtpUrl));
      await (await transport).sendMail({ from: config.from, ...message });
    },
  };
}

/** Development only (refused in production by config): prints the message instead of sending it. */
export function createLogEmailSender(logger: Logger): EmailSender {
  return {
    async send(message) {
      logger.warn({ to: message.to, subject: message.subject, text: message.text }, 'email not sent: development log transport');
    },
  };
}

const asLocale = (value: string | null): Locale => (value === 'ko' ? 'ko' : 'en');

/**
 * Security notices by email, in the user's language, as text and HTML from views/email. Without a mail transport
 * the notice goes to the log, so that an operator still sees it.
 */
export function createEmailNotifier(sender: EmailSender | undefined, renderer: PageRenderer, logger: Logger): Notifier {
  return {
    async notify(user, event, details = {}) {
      const locale = asLocale(user.locale);
      const t = renderer.translator(locale);
      const subject = t(`notify.${event}.subject`);
      if (!sender) {
        logger.info({ userId: user.id, event }, 'security notice (no mail transport configured)');
        return;
      }
      try {
        const data = { event, details, subject, email: user.email };
        await sender.send({
          to: user.email,
          subject,
          text: renderer.render('email/notice-text', locale, data),
          html: renderer.render('email/notice-html', locale, data),
        });
      } catch (err) {
        logger.error({ err, userId: user.id, event }, 'could not send security notice');
      }
    },
  };
}
