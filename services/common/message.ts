/**
 * The queue message: the validated form under `data`, plus when and under
 * which request id the web received it.
 */
import { validateForm, type FieldError, type FormData } from './form-schema.ts';
import { SETTINGS } from './config.ts';
import { inexactNumber } from './json-numbers.ts';
import { contentId, submissionMismatch, SUBMISSION_SOURCES, type SubmissionSource } from './submission-id.ts';

/** Body of a message on the form data queue. */
export interface FormMessage {
  data: FormData;
  /** ISO-8601 time the web received the request. */
  received_at: string;
  /** Request id the web logged the request under. */
  request_id: string;
  /** The submission this message belongs to (docs/exactly-once.md); absent in messages of the replaced service. */
  submission_id?: string;
  /** How submission_id was derived (services/common/submission-id.ts), so the worker can check it. */
  submission_source?: SubmissionSource;
  /** The Idempotency-Key a `key` id derives from. */
  idempotency_key?: string;
  /** The v1 signature time (unix seconds) a `signed` id derives from. */
  signed_at?: number;
}

/** Characters outside the set SQS accepts in a body (#x9 #xA #xD #x20–#xD7FF #xE000–#xFFFD), and astral ones, which some SQS implementations refuse. */
// eslint-disable-next-line no-control-regex -- the allowed set starts with control characters
const SQS_UNSAFE = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD]/g;

/**
 * Serialises a message body. Characters SQS may refuse are written as JSON
 * `\u` escapes, so the body decodes to the same data and any form the web
 * accepts can be queued.
 */
export function encodeFormMessage(message: FormMessage): string {
  return JSON.stringify(message).replace(SQS_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Why a message body is not a storable form; a bounded set, used as a metric label. */
export const INVALID_REASONS = [
  'empty_body',
  'not_json',
  'not_object',
  'data_missing',
  'data_not_json',
  'validation',
  'submission_id_invalid',
  'idempotency_key_reused',
  'submission_id_mismatch',
  'too_large',
  'number_inexact',
] as const;
export type InvalidReason = (typeof INVALID_REASONS)[number];

/**
 * A decoded body; `requestId` is the web's request id when the body carries one,
 * `submissionId` the submission id (undefined in messages of the replaced service).
 */
export type DecodeResult =
  | { ok: true; data: FormData; requestId: string | undefined; submissionId: string | undefined }
  | { ok: false; code: InvalidReason; reason: string; requestId: string | undefined };

/** A request id the web accepts from X-Request-Id (otherwise it makes one). */
export const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A submission id: a UUID in lowercase hex, as the web writes it. */
export const SUBMISSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The size limit of a form when no caller passes the configured one: MAX_BODY_BYTES's default. */
export const DEFAULT_MAX_FORM_BYTES = Number(SETTINGS.find((s) => s.names[0] === 'MAX_BODY_BYTES')!.default);

/** Bytes of a validated form serialised as the worker stores it. */
export function formBytes(data: FormData): number {
  return Buffer.byteLength(JSON.stringify(data), 'utf8');
}

/**
 * Decodes and validates a message body as the worker receives it, with the
 * web's rules: the same schema, the same size limit (`maxFormBytes`, bytes of
 * the serialised form), numbers that keep their exact value. `data` may be an
 * object or a string holding one (messages of the replaced service, which are
 * keyed by their message id alone). A message in this service's format
 * without a submission id is given its content's; one with an id must carry
 * what the id derives from (services/common/submission-id.ts).
 */
export function decodeFormMessage(
  body: string | undefined,
  maxFormBytes: number = DEFAULT_MAX_FORM_BYTES,
): DecodeResult {
  if (body === undefined || body === '')
    return { ok: false, code: 'empty_body', reason: 'empty body', requestId: undefined };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { ok: false, code: 'not_json', reason: 'body is not JSON', requestId: undefined };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, code: 'not_object', reason: 'body is not a JSON object', requestId: undefined };
  }
  const given = (parsed as Record<string, unknown>).request_id;
  const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : undefined;
  const inexact = inexactNumber(body);
  if (inexact !== undefined) return { ok: false, code: 'number_inexact', reason: inexact, requestId };
  const submission = (parsed as Record<string, unknown>).submission_id;
  if (submission !== undefined && (typeof submission !== 'string' || !SUBMISSION_ID.test(submission))) {
    return { ok: false, code: 'submission_id_invalid', reason: 'submission_id is not a lowercase UUID', requestId };
  }
  const rawData = (parsed as Record<string, unknown>).data;
  const data = parseData(rawData);
  if (!data.ok) return { ...data, requestId };
  const result = validateForm(data.value);
  if (!result.ok)
    return { ok: false, code: 'validation', reason: `data failed validation: ${summarise(result.errors)}`, requestId };
  const size = formBytes(result.value);
  if (size > maxFormBytes)
    return { ok: false, code: 'too_large', reason: `the form has ${size} bytes, over ${maxFormBytes}`, requestId };
  if (submission === undefined) {
    // The replaced service's format (data a JSON string) is keyed by message id alone; any other gets its content's id.
    const submissionId = typeof rawData === 'string' ? undefined : contentId(result.value);
    return { ok: true, data: result.value, requestId, submissionId };
  }
  const fields = parsed as Record<string, unknown>;
  const source = SUBMISSION_SOURCES.find((s) => s === fields.submission_source);
  const mismatch =
    fields.submission_source !== undefined && source === undefined
      ? 'submission_source is not one of ' + SUBMISSION_SOURCES.join(', ')
      : submissionMismatch(
          {
            id: submission,
            source,
            key: typeof fields.idempotency_key === 'string' ? fields.idempotency_key : undefined,
            signedAt: Number.isSafeInteger(fields.signed_at) ? (fields.signed_at as number) : undefined,
          },
          result.value,
        );
  if (mismatch !== undefined) return { ok: false, code: 'submission_id_mismatch', reason: mismatch, requestId };
  return { ok: true, data: result.value, requestId, submissionId: submission };
}

/** `data` as an object: given as one, or as a string holding one. */
export function parseData(
  data: unknown,
):
  | { ok: true; value: unknown }
  | { ok: false; code: 'data_missing' | 'data_not_json' | 'number_inexact'; reason: string } {
  if (data === undefined) return { ok: false, code: 'data_missing', reason: 'data is missing' };
  if (typeof data !== 'string') return { ok: true, value: data };
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return { ok: false, code: 'data_not_json', reason: 'data is a string that is not JSON' };
  }
  const inexact = inexactNumber(data);
  return inexact === undefined ? { ok: true, value } : { ok: false, code: 'number_inexact', reason: inexact };
}

/** One line listing field errors, capped in length. */
export function summarise(errors: readonly FieldError[]): string {
  const line = errors.map((e) => e.message).join('; ');
  return line.length > 500 ? `${line.slice(0, 497)}...` : line;
}
