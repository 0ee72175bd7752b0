/**
 * The identity of a submission (docs/exactly-once.md): from a signed
 * Idempotency-Key, else from the form's content while the content window is
 * on, else from a v1 signature's time, else a random id per request. The id
 * travels in the queue message with what it derives from; the worker checks
 * it and its unique key on it makes every copy one row.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { SignatureScheme } from '../common/config.ts';
import type { FormData } from '../common/form-schema.ts';
import { contentId, keyId, signedId, type SubmissionSource } from '../common/submission-id.ts';
import { ProblemError } from './problem.ts';

/** Longest accepted Idempotency-Key value, in characters (quotes and escapes not counted). */
export const MAX_IDEMPOTENCY_KEY = 255;

export type { SubmissionSource };

export interface Submission {
  id: string;
  source: SubmissionSource;
  /** The Idempotency-Key the id derives from. */
  key?: string;
  /** The v1 signature time the id derives from. */
  signedAt?: number;
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

/**
 * The submission of a request: its Idempotency-Key's when the key is signed
 * (v1) or signatures are off; else the form's content (when `contentIdentity`);
 * else, under v1, the form and the signature's time, so a replay within the
 * tolerance is the same submission; else a new random one. Under a legacy
 * signature the key is not signed, so it decides nothing: it could otherwise
 * split one signed body into several submissions or take a client's key.
 */
export function submissionOf(
  request: {
    key: string | undefined;
    data: FormData;
    /** The scheme the request was signed with; undefined: signatures are off. */
    scheme: SignatureScheme | undefined;
    /** The v1 signature's timestamp. */
    signedAt?: number | undefined;
  },
  contentIdentity: boolean,
): Submission {
  if (request.key !== undefined && request.scheme !== 'legacy')
    return { id: keyId(request.key), source: 'key', key: request.key };
  if (contentIdentity) return { id: contentId(request.data), source: 'content' };
  if (request.scheme === 'v1' && request.signedAt !== undefined)
    return { id: signedId(request.signedAt, request.data), source: 'signed', signedAt: request.signedAt };
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
