/**
 * Submission ids (docs/exactly-once.md) that anyone holding the message can
 * recompute: from an Idempotency-Key, from the form itself, or from the form
 * and the time a v1 signature was made. The web derives them; the worker
 * checks that a message's id is the one its content gives, so a message
 * cannot take another submission's id. Random ids are UUIDv4; derived ones
 * UUIDv8 (RFC 9562), so a derived id cannot pass for a random one.
 */
import { createHash } from 'node:crypto';
import type { JsonValue } from './form-schema.ts';

/** How a submission id was derived. */
export const SUBMISSION_SOURCES = ['key', 'content', 'signed', 'random'] as const;
export type SubmissionSource = (typeof SUBMISSION_SOURCES)[number];

/** A UUID (version 8) from the first 128 bits of a SHA-256 digest; parts are domain-separated by the caller. */
function digestUuid(...parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part, 'utf8');
  const bytes = hash.digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** JSON text with object keys sorted by code unit at every level: the same form gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The id of an Idempotency-Key. */
export function keyId(key: string): string {
  return digestUuid('form-data idempotency-key\0', key);
}

/** The id of a form's content (its validated data). */
export function contentId(data: Record<string, JsonValue | undefined>): string {
  return digestUuid('form-data form\0', canonicalJson(data));
}

/** The id of a form under a v1 signature made at `signedAt` (unix seconds): a replay within the tolerance is the same. */
export function signedId(signedAt: number, data: Record<string, JsonValue | undefined>): string {
  return digestUuid('form-data signed\0', String(signedAt), '\0', canonicalJson(data));
}

/** True for a version-4 (random) UUID. */
export function isRandomId(id: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id);
}

/** What a message says about its submission id. */
export interface SubmissionClaim {
  id: string;
  /** Absent in messages of earlier releases: then the id must be random. */
  source: SubmissionSource | undefined;
  key: string | undefined;
  signedAt: number | undefined;
}

/** Whether the claimed id is the one the message's content gives; undefined when it is, else why not. */
export function submissionMismatch(
  claim: SubmissionClaim,
  data: Record<string, JsonValue | undefined>,
): string | undefined {
  switch (claim.source) {
    case 'key':
      return claim.key !== undefined && keyId(claim.key) === claim.id
        ? undefined
        : 'submission_id is not the id of its idempotency_key';
    case 'content':
      return contentId(data) === claim.id ? undefined : 'submission_id is not the id of its data';
    case 'signed':
      return claim.signedAt !== undefined && signedId(claim.signedAt, data) === claim.id
        ? undefined
        : 'submission_id is not the id of its data and signed_at';
    case 'random':
    case undefined:
      return isRandomId(claim.id) ? undefined : 'submission_id is a derived id, given without what it derives from';
  }
}
