// pemBody reads the common case (plain base64 between the first markers) without its pattern, for
// speed; whatever the text, it must find exactly the block the plain pattern
// /-----BEGIN label-----([A-Za-z0-9+/=\s]+)-----END label-----/ finds (the first one that is
// well-formed) and decode it the same way, whatever surrounds it.
import { describe, expect, it } from 'vitest';
import { pemBody } from '../../adapters/archive/certificate-facts.js';

/** The definition pemBody must match: the pattern, then base64 (Unicode white space removed first). */
function byPattern(pem: string, label: string): Buffer | undefined {
  const body = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem)?.[1];
  if (body === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  return Buffer.from(/[^\u0000-\u007f]/.test(body) ? body.replace(/\s+/g, '') : body, 'base64');
}

const BODY = 'MIIBszCCAV2gAwIBAgIUY29udGVudA==';

describe('reading the body of a PEM block', () => {
  it.each([
    ['a plain block', `-----BEGIN CERTIFICATE-----\n${BODY}\n-----END CERTIFICATE-----\n`],
    ['CRLF line ends and text around it', `subject=x\r\n-----BEGIN CERTIFICATE-----\r\n${BODY}\r\n-----END CERTIFICATE-----\r\ntrailer`],
    ['Unicode white space inside', `-----BEGIN CERTIFICATE-----\u00a0${BODY.slice(0, 10)}\u2028${BODY.slice(10)}\u3000-----END CERTIFICATE-----`],
    ['a broken first block and a good second one', `-----BEGIN CERTIFICATE-----\nab!cd\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n${BODY}\n-----END CERTIFICATE-----`],
    ['an empty first block and a good second one', `-----BEGIN CERTIFICATE----------END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n${BODY}\n-----END CERTIFICATE-----`],
    ['a BEGIN marker inside another BEGIN marker', `-----BEGIN CERTIFICATE-----BEGIN CERTIFICATE-----\n${BODY}\n-----END CERTIFICATE-----`],
    ['no END marker', `-----BEGIN CERTIFICATE-----\n${BODY}\n`],
    ['another label only', `-----BEGIN RSA PRIVATE KEY-----\n${BODY}\n-----END RSA PRIVATE KEY-----`],
    ['a non-ASCII letter in the body', `-----BEGIN CERTIFICATE-----\n${BODY}é\n-----END CERTIFICATE-----`],
    ['nothing at all', ''],
  ])('given %s, then it reads what the pattern reads', (_, pem) => {
    for (const label of ['CERTIFICATE', 'PRIVATE KEY', 'RSA PRIVATE KEY']) expect(pemBody(pem, label)).toEqual(byPattern(pem, label));
  });

  it('given 2,000 texts made of pieces of markers, base64 and white space, then it reads each as the pattern does', () => {
    const [begin, end] = ['-----BEGIN CERTIFICATE-----', '-----END CERTIFICATE-----'];
    const inside = [BODY, 'QUJD', '==', '\n', ' ', '\u00a0', '\ufeff', '!', 'é', '-'];
    const anything = [...inside, begin, end, '-----BEGIN ', '-----', 'CERTIFICATE'];
    let seed = 7;
    const next = (n: number): number => {
      // Park–Miller: exact in doubles (the product stays below 2^53).
      seed = (seed * 48_271) % 2_147_483_647;
      return seed % n;
    };
    const some = (from: readonly string[], most: number): string => {
      let text = '';
      for (let k = next(most + 1); k > 0; k--) text += from[next(from.length)];
      return text;
    };
    let found = 0;
    for (let round = 0; round < 2_000; round++) {
      // Blocks that may be whole, empty, broken or unterminated, with anything around them.
      let pem = some(anything, 2);
      for (let blocks = 1 + next(2); blocks > 0; blocks--) pem += begin + some(inside, 3) + (next(3) > 0 ? end : some(anything, 1)) + some(anything, 2);
      const expected = byPattern(pem, 'CERTIFICATE');
      if (expected) found++;
      expect(pemBody(pem, 'CERTIFICATE'), JSON.stringify(pem)).toEqual(expected);
    }
    // The texts must exercise both outcomes, or the comparison proves little.
    expect(found).toBeGreaterThan(100);
    expect(found).toBeLessThan(1_900);
  });
});
