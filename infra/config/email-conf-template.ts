// The email.conf that ov_init leaves for the operator to fill in: the manual's keys, with the
// placeholders that parseEmailConf refuses until they are replaced.
export function renderEmailConfTemplate(): string {
  return [
    '# ovpn-ledger mail settings: how .ovpn profiles reach their users.',
    '# Amazon SES (the default): SMTP credentials from the SES console, not your AWS access keys.',
    'AWS_REGION=us-east-1',
    'SMTP_USERNAME=REPLACE_WITH_YOUR_SES_SMTP_USERNAME',
    'SMTP_PASSWORD=REPLACE_WITH_YOUR_SES_SMTP_PASSWORD',
    'FROM_EMAIL=no_reply@example.com',
    'ENVIRONMENT_NAME="VPN Server"',
    '# Another server: SMTP_HOST, SMTP_PORT, SMTP_SECURE=starttls|tls|none, SMTP_TLS_CA_FILE.',
    '# No way out? DELIVERY=outbox and OUTBOX_DIR=/absolute/dir write .eml files instead.',
    '',
  ].join('\n');
}
