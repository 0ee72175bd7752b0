/**
 * Request signatures (docs/security.md). Two schemes:
 *
 * - `legacy`, the registration UI's `X-Signature`: hex SHA-256 of the request
 *   path (with its query string), the raw body bytes and the shared secret. No
 *   timestamp and no header is covered, so a captured request can be replayed;
 *   the route therefore ignores an Idempotency-Key under it.
 * - `v1`, `X-Form-Signature: t=<unix seconds>,v1=<hex>`: HMAC-SHA256 with the
 *   shared secret over `signedPayload` (method, path and query, timestamp,
 *   Content-Type, Idempotency-Key and the body's SHA-256), accepted within a
 *   tolerance of the server's clock (the shape of Stripe's webhook signatures).
 *
 * Every secret given (current and next, for rotation) is tried; comparisons
 * are constant-time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { SignatureScheme } from '../common/config.ts';

/** Header of the v1 scheme. */
export const V1_HEADER = 'X-Form-Signature';
/** Header of the legacy scheme. */
export const LEGACY_HEADER = 'X-Signature';

/** The hex signature the UI sends in `X-Signature`. */
export function computeSignature(pathWithQuery: string, body: Buffer, secret: string): string {
  return createHash('sha256').update(pathWithQuery, 'utf8').update(body).update(secret, 'utf8').digest('hex');
}

/** What a v1 signature covers. */
export interface SignedRequest {
  method: string;
  /** The request target as sent: path and query string. */
  pathWithQuery: string;
  /** The Content-Type header as sent (trimmed and lower-cased when signed), or empty. */
  contentType: string;
  /** The Idempotency-Key header as sent (trimmed), or empty. */
  idempotencyKey: string;
  body: Buffer;
}

/**
 * The v1 string to sign: lines joined by `\n` — `form-data-v1`, the timestamp,
 * the method in capitals, the path with query, the Content-Type (lower-cased),
 * the Idempotency-Key value, the lowercase hex SHA-256 of the body.
 */
export function signedPayload(request: SignedRequest, timestamp: number): string {
  return [
    'form-data-v1',
    String(timestamp),
    request.method.toUpperCase(),
    request.pathWithQuery,
    request.contentType.trim().toLowerCase(),
    request.idempotencyKey.trim(),
    createHash('sha256').update(request.body).digest('hex'),
  ].join('\n');
}

/** The `X-Form-Signature` value for `request` signed at `timestamp` (unix seconds). */
export function computeV1Signature(request: SignedRequest, timestamp: number, secret: string): string {
  const mac = createHmac('sha256', secret).update(signedPayload(request, timestamp), 'utf8').digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** Compares in constant time over equal-length buffers. */
function equalHex(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'latin1');
  const b = Buffer.from(expected, 'latin1');
  if (a.length !== b.length) {
    timingSafeEqual(b, b);
    return false;
  }
  return timingSafeEqual(a, b);
}

/** Compares a received legacy signature with the expected one for each secret. */
export function verifySignature(
  received: string | undefined,
  pathWithQuery: string,
  body: Buffer,
  secrets: string | readonly string[],
): boolean {
  let ok = false;
  for (const secret of typeof secrets === 'string' ? [secrets] : secrets)
    ok = equalHex(received ?? '', computeSignature(pathWithQuery, body, secret)) || ok;
  return ok;
}

/** How a request's signature was checked. */
export type Verification = { ok: true; scheme: SignatureScheme; timestamp?: number } | { ok: false; detail: string };

export interface VerifyOptions {
  /** Secrets accepted (UI_SECRET, then UI_SECRET_NEXT). */
  secrets: readonly string[];
  schemes: readonly SignatureScheme[];
  toleranceSeconds: number;
  /** Now, in ms since the epoch. */
  now: number;
}

const V1_VALUE = /^t=(\d{1,12}),v1=([0-9a-f]{64})(?:,v1=([0-9a-f]{64}))?$/;

/**
 * Checks the request's signature under the accepted schemes: v1 when its
 * header is present (never falling back to the legacy one), else legacy.
 */
export function verifyRequest(
  request: SignedRequest,
  headers: { v1: string | undefined; legacy: string | undefined },
  options: VerifyOptions,
): Verification {
  const v1Accepted = options.schemes.includes('v1');
  const legacyAccepted = options.schemes.includes('legacy');
  if (headers.v1 !== undefined && headers.v1 !== '') {
    if (!v1Accepted) return { ok: false, detail: `${V1_HEADER} is not accepted here; sign with ${LEGACY_HEADER}` };
    const match = V1_VALUE.exec(headers.v1.replace(/\s+/g, ''));
    if (!match)
      return {
        ok: false,
        detail: `${V1_HEADER} must be t=<unix seconds>,v1=<lowercase hex HMAC-SHA256>`,
      };
    const timestamp = Number(match[1]);
    if (Math.abs(options.now / 1000 - timestamp) > options.toleranceSeconds)
      return {
        ok: false,
        detail: `${V1_HEADER} timestamp is more than ${options.toleranceSeconds} s from the server's clock`,
      };
    const given = [match[2]!, ...(match[3] ? [match[3]] : [])];
    let ok = false;
    for (const secret of options.secrets) {
      const expected = computeV1Signature(request, timestamp, secret).slice(`t=${timestamp},v1=`.length);
      for (const mac of given) ok = equalHex(mac, expected) || ok;
    }
    return ok
      ? { ok: true, scheme: 'v1', timestamp }
      : { ok: false, detail: `${V1_HEADER} does not match the request` };
  }
  if (headers.legacy === undefined || headers.legacy === '')
    return { ok: false, detail: `${legacyAccepted ? LEGACY_HEADER : V1_HEADER} header is missing` };
  if (!legacyAccepted) return { ok: false, detail: `${LEGACY_HEADER} is not accepted here; sign with ${V1_HEADER}` };
  return verifySignature(headers.legacy, request.pathWithQuery, request.body, options.secrets)
    ? { ok: true, scheme: 'legacy' }
    : { ok: false, detail: `${LEGACY_HEADER} does not match the request` };
}
