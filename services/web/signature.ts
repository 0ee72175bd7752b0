/**
 * Request signatures of the registration UI: hex SHA-256 of the request path
 * (with its query string), the raw body bytes and the shared secret.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** The hex signature the UI sends in `X-Signature`. */
export function computeSignature(pathWithQuery: string, body: Buffer, secret: string): string {
  return createHash('sha256').update(pathWithQuery, 'utf8').update(body).update(secret, 'utf8').digest('hex');
}

/** Compares a received signature with the expected one in constant time over their bytes. */
export function verifySignature(
  received: string | undefined,
  pathWithQuery: string,
  body: Buffer,
  secret: string,
): boolean {
  const expected = Buffer.from(computeSignature(pathWithQuery, body, secret), 'latin1');
  const given = Buffer.from(received ?? '', 'latin1');
  // Lengths are public (64 hex digits); compare equal-length buffers only.
  if (given.length !== expected.length) {
    timingSafeEqual(expected, expected);
    return false;
  }
  return timingSafeEqual(given, expected);
}
