// Sending a profile by mail, shared by add, resend and renewal.
import type { ProfileMail } from '../../adapters/mail/profile-mailer.js';
import type { Traffic } from '../../domain/values.js';
import type { EmailSettings } from '../../infra/config/email-conf.js';
import type { Ledger } from '../ledger.js';

export function attachmentName(traffic: Traffic): string {
  return `vpn-${traffic}.ovpn`;
}

/** Returns a one-line description of where the mail went; throws MailDeliveryError. */
export async function deliver(ledger: Ledger, settings: EmailSettings, mail: ProfileMail): Promise<string> {
  const mailer = await ledger.createMailer(settings);
  try {
    const receipt = await mailer.send(mail);
    ledger.log.info({ via: receipt.via, messageId: receipt.messageId, kind: mail.kind }, 'profile delivered');
    return receipt.via === 'smtp' ? `mailed to ${mail.to} (${receipt.messageId})` : `written to outbox ${receipt.path}`;
  } finally {
    mailer.close();
  }
}
