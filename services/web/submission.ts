/**
 * The identity of a submission (docs/exactly-once.md): from an Idempotency-Key,
 * else from a digest of the signed request (path and raw body) while the
 * content window is on, else a random id per request. The id travels in the
 * queue message; the worker's unique key on it makes every copy one row.
 */
import { createHash, randomUUID } from 'node:crypto';
import { ProblemError } from './problem.ts';

/** Longest accepted Idempotency-Key value, in characters (quotes and escapes not counted). */
export const MAX_IDEMPOTENCY_KEY = 255;

/** How a submission id was derived. */
export type SubmissionSource = 'key' | 'content' | 'random';

export interface Submission {
  id: string;
  source: SubmissionSource;
}

/** sf-string (RFC 8941 §3.3.3): printable ASCII in double quotes, with `\"` and `\\` as the only escapes. */
const SF_STRING = /^"((?:[\x20\x21\x23-\x5B\x5D-\x7E]|\\["\\])*)"$/;
/** A bare key as Stripe-style clients send it: a token of URL-safe characters. */
const BARE_KEY = /^[A-Za-z0-9._~:+/=-]+$/;

const MALFORMED =
  'Idempotency-Key must be a structured-field string ("…" of printable ASCII) ' +
  `or a token of letters, digits and ._~:+/=-, of 1–${MAX_IDEMPOTENCY_KEY} characters`;

function malformed(detail: string): ProblemError {
  return new ProblemError(400, 'Bad Request', detail, { errors: [{ field: 'Idempotency-Key', message: detail }] });
}

/**
 * The key of the `Idempotency-Key` header, or undefined without one.
 * `rawHeaders` are the request's (to see a header given twice, which Node would join).
 * @throws ProblemError 400 naming the header when it is malformed or repeated
 */
export function idempotencyKey(rawHeaders: readonly string[]): string | undefined {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'idempotency-key') values.push(rawHeaders[i + 1]!);
  }
  if (values.length === 0) return undefined;
  if (values.length > 1) throw malformed('Idempotency-Key must be given once');
  const value = values[0]!.trim();
  const quoted = SF_STRING.exec(value);
  const key = quoted ? quoted[1]!.replace(/\\(["\\])/g, '$1') : BARE_KEY.test(value) ? value : undefined;
  if (key === undefined || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY) throw malformed(MALFORMED);
  return key;
}

/** A UUID (version 8, RFC 9562) from the first 128 bits of a SHA-256 digest. */
function digestUuid(...parts: (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  const bytes = hash.digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The submission of a request: the key's, else the content's (path with query
 * and raw body bytes, when `contentIdentity`), else a new random one. Digests are
 * domain-separated so a key and a body never share an id; the signature is not used.
 */
export function submissionOf(
  request: { key: string | undefined; path: string; rawBody: Buffer },
  contentIdentity: boolean,
): Submission {
  if (request.key !== undefined) return { id: digestUuid('form-data idempotency-key\0', request.key), source: 'key' };
  if (contentIdentity) {
    return { id: digestUuid('form-data request\0', request.path, '\0', request.rawBody), source: 'content' };
  }
  return { id: randomUUID(), source: 'random' };
}

/**
 * Submission ids this process answered 202 recently, to tell a client its
 * request was a repeat. A hint only: other replicas, restarts and evictions
 * are not seen (the worker's unique key is what stores a submission once).
 */
export class RecentSubmissions {
  /** Submission id → when it was accepted and a digest of the body it was accepted with. */
  private readonly entries = new Map<string, { at: number; body: string }>();
  private readonly max: number;
  private readonly ttlMs: number;

  /** `max` ids (oldest evicted first), each kept `ttlMs`. */
  constructor(max: number, ttlMs: number) {
    this.max = max;
    this.ttlMs = ttlMs;
  }

  /** Whether `id` was accepted within the last `ttlMs` with the same body. */
  seen(id: string, body: Buffer, now: number): boolean {
    const entry = this.entries.get(id);
    return entry !== undefined && now - entry.at < this.ttlMs && entry.body === bodyDigest(body);
  }

  /** Records an accepted submission. */
  add(id: string, body: Buffer, now: number): void {
    this.entries.delete(id);
    this.entries.set(id, { at: now, body: bodyDigest(body) });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }
}

function bodyDigest(body: Buffer): string {
  return createHash('sha256').update(body).digest('base64');
}
