// The rules of email.conf, one given/when/then each: given this file, when it is parsed, then
// these settings, or this one-line error naming the file, the line and the key.
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { parseEmailConf, type EmailSettings, type SmtpEmailSettings } from '../../infra/config/email-conf.js';
import { parseEnvFile } from '../../infra/config/env-file.js';

const FILE = '/opt/0x4447/configs/email.conf';

// The manual's example, byte for byte.
const MANUAL_EXAMPLE = `AWS_REGION=us-east-1
SMTP_USERNAME=REPLACE_WITH_YOUR_SES_SMTP_USERNAME
SMTP_PASSWORD=REPLACE_WITH_YOUR_SES_SMTP_PASSWORD
FROM_EMAIL=no_reply@example.com
ENVIRONMENT_NAME=VPN Server
`;

// The manual's example after the operator filled in the credentials.
const FILLED_IN = MANUAL_EXAMPLE.replace('REPLACE_WITH_YOUR_SES_SMTP_USERNAME', 'AKIAEXAMPLEUSER').replace(
  'REPLACE_WITH_YOUR_SES_SMTP_PASSWORD',
  'BExampleSecret+/abc',
);

function given(text: string) {
  const parsed = parseEmailConf(text, FILE);
  return {
    thenSettings(): EmailSettings {
      if (E.isLeft(parsed)) throw new Error(`expected settings, got: ${parsed.left.message}`);
      return parsed.right;
    },
    thenSmtp(): SmtpEmailSettings {
      const settings = this.thenSettings();
      if (settings.delivery !== 'smtp') throw new Error(`expected smtp delivery, got ${settings.delivery}`);
      return settings;
    },
    thenError(): { message: string; key: string | undefined; line: number | undefined } {
      if (E.isRight(parsed)) throw new Error('expected an error, got settings');
      expect(parsed.left.message).not.toContain('\n');
      expect(parsed.left.message.startsWith(FILE)).toBe(true);
      return parsed.left;
    },
  };
}

/** The filled-in example with some lines replaced or added: `{ KEY: 'value' }`, `{ KEY: null }` removes. */
function withLines(changes: Record<string, string | null>, base = FILLED_IN): string {
  const lines = base.split('\n').filter((l) => l !== '');
  const out: string[] = [];
  for (const l of lines) {
    const key = l.slice(0, l.indexOf('='));
    if (!(key in changes)) out.push(l);
    else if (changes[key] !== null) out.push(`${key}=${changes[key]}`);
  }
  for (const [key, value] of Object.entries(changes)) {
    if (value !== null && !lines.some((l) => l.startsWith(`${key}=`))) out.push(`${key}=${value}`);
  }
  return out.join('\n') + '\n';
}

describe('email.conf', () => {
  describe('the manual example', () => {
    it('given the example with credentials filled in, then it sends through SES in its region with STARTTLS on 587', () => {
      const s = given(FILLED_IN).thenSmtp();
      expect(s).toMatchObject({
        delivery: 'smtp',
        host: 'email-smtp.us-east-1.amazonaws.com',
        port: 587,
        security: 'starttls',
        fromEmail: 'no_reply@example.com',
        environmentName: 'VPN Server',
        tlsCaFile: undefined,
      });
      expect(s.auth?.user).toBe('AKIAEXAMPLEUSER');
      expect(s.auth?.pass.reveal()).toBe('BExampleSecret+/abc');
    });

    it('given the example exactly as printed, then the placeholder username is refused with the way to fix it', () => {
      const e = given(MANUAL_EXAMPLE).thenError();
      expect(e.key).toBe('SMTP_USERNAME');
      expect(e.line).toBe(2);
      expect(e.message).toMatch(/^\/opt\/0x4447\/configs\/email\.conf:2: SMTP_USERNAME still holds the placeholder/);
      expect(e.message).toContain('SMTP credentials');
    });

    it('given only the password still a placeholder, then SMTP_PASSWORD is refused', () => {
      const e = given(withLines({ SMTP_PASSWORD: 'REPLACE_WITH_YOUR_SES_SMTP_PASSWORD' })).thenError();
      expect(e.key).toBe('SMTP_PASSWORD');
      expect(e.message).toContain('email.conf:3: SMTP_PASSWORD still holds the placeholder');
    });

    it('given the placeholders but DELIVERY=outbox, then they are not in the way', () => {
      const s = given(withLines({ DELIVERY: 'outbox', OUTBOX_DIR: '/var/spool/ovpn-outbox' }, MANUAL_EXAMPLE)).thenSettings();
      expect(s).toEqual({
        delivery: 'outbox',
        outboxDir: '/var/spool/ovpn-outbox',
        fromEmail: 'no_reply@example.com',
        environmentName: 'VPN Server',
      });
    });
  });

  describe('where mail goes', () => {
    it('given AWS_REGION only, then the SES SMTP endpoint of that region', () => {
      expect(given(withLines({ AWS_REGION: 'eu-west-3' })).thenSmtp().host).toBe('email-smtp.eu-west-3.amazonaws.com');
    });

    it('given SMTP_HOST and no AWS_REGION, then that host', () => {
      const s = given(withLines({ AWS_REGION: null, SMTP_HOST: 'smtp.corp.example', SMTP_PORT: '2525' })).thenSmtp();
      expect(s).toMatchObject({ host: 'smtp.corp.example', port: 2525, security: 'starttls' });
    });

    it('given neither SMTP_HOST nor AWS_REGION, then AWS_REGION is required', () => {
      const e = given(withLines({ AWS_REGION: null })).thenError();
      expect(e.key).toBe('AWS_REGION');
      expect(e.line).toBeUndefined();
      expect(e.message).toContain('AWS_REGION is required unless SMTP_HOST is set');
    });

    it('given a malformed AWS_REGION, then it is named', () => {
      expect(given(withLines({ AWS_REGION: 'US East' })).thenError().message).toContain(
        'email.conf:1: AWS_REGION must be an AWS region',
      );
    });

    it('given SMTP_HOST with a scheme, then it is refused', () => {
      expect(given(withLines({ SMTP_HOST: 'smtp://mail.example.com' })).thenError().message).toContain(
        'SMTP_HOST must be a host name or an IP address',
      );
    });

    it('given SMTP_SECURE=tls and no port, then the implicit-TLS port 465', () => {
      expect(given(withLines({ SMTP_SECURE: 'tls' })).thenSmtp()).toMatchObject({ security: 'tls', port: 465 });
    });

    it.each(['0', '65536', '25x', '-1'])('given SMTP_PORT=%s, then it is refused', (port) => {
      const e = given(withLines({ SMTP_PORT: port })).thenError();
      expect(e.key).toBe('SMTP_PORT');
      expect(e.message).toContain('SMTP_PORT must be a port number');
    });

    it('given an unknown SMTP_SECURE, then the allowed values and the bad one are named', () => {
      const e = given(withLines({ SMTP_SECURE: 'ssl' })).thenError();
      expect(e.key).toBe('SMTP_SECURE');
      expect(e.message).toBe(`${FILE}:6: SMTP_SECURE must be starttls, tls or none, not "ssl"`);
    });

    it('given SMTP_SECURE=none towards a remote host, then it is refused: the profile holds a private key', () => {
      const e = given(withLines({ SMTP_SECURE: 'none', SMTP_HOST: 'relay.example.com' })).thenError();
      expect(e.key).toBe('SMTP_SECURE');
      expect(e.message).toContain('SMTP_SECURE may be none only for a relay on this machine');
    });

    it('given SMTP_SECURE=none to a relay on localhost without username, then plain SMTP without AUTH', () => {
      const s = given(
        withLines({ SMTP_SECURE: 'none', SMTP_HOST: '127.0.0.1', SMTP_PORT: '25', SMTP_USERNAME: '', SMTP_PASSWORD: '' }),
      ).thenSmtp();
      expect(s).toMatchObject({ host: '127.0.0.1', port: 25, security: 'none', auth: undefined });
    });

    it('given an empty SMTP_USERNAME, then no AUTH and SMTP_PASSWORD is ignored', () => {
      const s = given(withLines({ SMTP_USERNAME: '', SMTP_PASSWORD: 'REPLACE_WITH_YOUR_SES_SMTP_PASSWORD' })).thenSmtp();
      expect(s.auth).toBeUndefined();
    });

    it('given a username but no password, then SMTP_PASSWORD is required', () => {
      const e = given(withLines({ SMTP_PASSWORD: '' })).thenError();
      expect(e.key).toBe('SMTP_PASSWORD');
      expect(e.message).toContain('SMTP_PASSWORD is required when SMTP_USERNAME is set');
    });

    it('given SMTP_TLS_CA_FILE as an absolute path, then it is kept; a relative one is refused', () => {
      expect(given(withLines({ SMTP_TLS_CA_FILE: '/etc/ssl/private-ca.pem' })).thenSmtp().tlsCaFile).toBe(
        '/etc/ssl/private-ca.pem',
      );
      expect(given(withLines({ SMTP_TLS_CA_FILE: 'ca.pem' })).thenError().message).toContain(
        'SMTP_TLS_CA_FILE must be an absolute path',
      );
    });
  });

  describe('addresses and names', () => {
    it('given no FROM_EMAIL, then it is required', () => {
      const e = given(withLines({ FROM_EMAIL: null })).thenError();
      expect(e.key).toBe('FROM_EMAIL');
      expect(e.message).toBe(`${FILE}: FROM_EMAIL is required but not set`);
    });

    it('given an empty FROM_EMAIL, then it is required, on its line', () => {
      expect(given(withLines({ FROM_EMAIL: '' })).thenError().message).toBe(`${FILE}:4: FROM_EMAIL is required but empty`);
    });

    it('given a FROM_EMAIL that is not an address, then it is named', () => {
      const e = given(withLines({ FROM_EMAIL: 'no_reply at example.com' })).thenError();
      expect(e.key).toBe('FROM_EMAIL');
      expect(e.message).toContain('FROM_EMAIL is not a valid email address');
    });

    it('given no ENVIRONMENT_NAME, then it is required', () => {
      expect(given(withLines({ ENVIRONMENT_NAME: null })).thenError().message).toContain('ENVIRONMENT_NAME is required');
    });
  });

  describe('outbox delivery', () => {
    it('given DELIVERY=outbox without OUTBOX_DIR, then OUTBOX_DIR is required', () => {
      const e = given(withLines({ DELIVERY: 'outbox' })).thenError();
      expect(e.key).toBe('OUTBOX_DIR');
      expect(e.message).toContain('OUTBOX_DIR is required when DELIVERY=outbox');
    });

    it('given a relative OUTBOX_DIR, then it is refused', () => {
      expect(given(withLines({ DELIVERY: 'outbox', OUTBOX_DIR: 'outbox' })).thenError().message).toContain(
        'OUTBOX_DIR must be an absolute path',
      );
    });

    it('given an unknown DELIVERY, then it is named', () => {
      expect(given(withLines({ DELIVERY: 'ses' })).thenError().message).toContain(
        'DELIVERY must be smtp or outbox, not "ses"',
      );
    });
  });

  describe('the file as operators write it', () => {
    it('given comments, blank lines, export, quotes and trailing comments, then the values', () => {
      const ok = given(
        [
          '# SES credentials for the gateway',
          '',
          'export AWS_REGION=eu-central-1   # Frankfurt',
          "SMTP_USERNAME='AKIA EXAMPLE'",
          'SMTP_PASSWORD="p#ss \\"word\\" $HOME"  # quoted, so # and $ are literal',
          '   FROM_EMAIL = vpn@example.com',
          'ENVIRONMENT_NAME="VPN Server"',
        ].join('\r\n'),
      ).thenSmtp();
      expect(ok).toMatchObject({
        host: 'email-smtp.eu-central-1.amazonaws.com',
        fromEmail: 'vpn@example.com',
        environmentName: 'VPN Server',
      });
      expect(ok.auth?.user).toBe('AKIA EXAMPLE');
      expect(ok.auth?.pass.reveal()).toBe('p#ss "word" $HOME');
    });

    it('given a # with no space before it, then it is part of the value, as in a shell', () => {
      expect(given(withLines({ SMTP_PORT: '2587#submission' })).thenError().message).toContain(
        ':6: SMTP_PORT must be a port number',
      );
    });

    it('given settings logged or serialised, then the password does not appear', () => {
      const s = given(FILLED_IN).thenSmtp();
      expect(JSON.stringify(s)).not.toContain('BExampleSecret');
      expect(`${String(s.auth?.pass)}`).toBe('[redacted]');
    });

    it('given an unterminated quote, then the line and key are named', () => {
      const e = given(withLines({ ENVIRONMENT_NAME: '"VPN Server' })).thenError();
      expect(e.key).toBe('ENVIRONMENT_NAME');
      expect(e.message).toBe(`${FILE}:5: ENVIRONMENT_NAME: missing closing " (a value must be on one line)`);
    });

    it('given a line without =, then its line number', () => {
      expect(given(FILLED_IN + 'SMTP_HOST smtp.example.com\n').thenError().message).toBe(
        `${FILE}:6: expected KEY=value, found no '='`,
      );
    });

    it('given a bad value of SMTP_PASSWORD, then the error does not repeat it', () => {
      const e = given(withLines({ SMTP_PASSWORD: "'s3cr3t-value" })).thenError();
      expect(e.message).toContain('SMTP_PASSWORD');
      expect(e.message).not.toContain('s3cr3t');
    });
  });
});

describe('env files (shared by email.conf, gateway.conf, dns.conf)', () => {
  it.each([
    ['KEY=plain value', 'plain value'],
    ['KEY=  spaced   # comment', 'spaced'],
    ['KEY=a#b', 'a#b'],
    ['KEY= #only a comment', ''],
    ['KEY=', ''],
    ["KEY='single $NOT \"expanded\"'", 'single $NOT "expanded"'],
    ['KEY="a\\\\b\\$c\\nd"', 'a\\b$c\\nd'],
    ['KEY="internal.acme.com corp.acme.local"', 'internal.acme.com corp.acme.local'],
    ['export   KEY=x', 'x'],
  ])('given %s, then the value is %j', (line, value) => {
    expect(parseEnvFile(`${line}\n`, 'x.conf')).toEqual(E.right({ KEY: value }));
  });

  it.each([
    ['KEY="a"b', 'x.conf:1: KEY: unexpected text after the closing quote; quote the whole value'],
    ["KEY='a", "x.conf:1: KEY: missing closing ' (a value must be on one line)"],
    ['1KEY=a', 'x.conf:1: expected KEY=value, but "1KEY" is not a valid key (letters, digits and _, not starting with a digit)'],
  ])('given %s, then the error %j', (line, message) => {
    const result = parseEnvFile(`# header\n${line}\n`, 'x.conf');
    expect(result).toEqual(E.left(expect.objectContaining({ message: message.replace(':1:', ':2:'), line: 2 })));
  });

  it('given a key twice, then the last value wins, as in a shell', () => {
    expect(parseEnvFile('A=1\nA=2\n', 'x.conf')).toEqual(E.right({ A: '2' }));
  });

  it('given a key named __proto__, then it is an ordinary key', () => {
    const result = parseEnvFile('__proto__=x\n', 'x.conf');
    expect(E.isRight(result) && Object.getPrototypeOf(result.right)).toBe(Object.prototype);
  });
});
