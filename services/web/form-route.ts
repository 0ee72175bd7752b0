/**
 * POST /form/: signature, parse, validate, enqueue, 202.
 */
import type { Context } from 'koa';
import { validateForm } from '../common/form-schema.ts';
import { encodeFormMessage, formBytes, parseData, summarise } from '../common/message.ts';
import { inexactNumber } from '../common/json-numbers.ts';
import type { SignatureScheme } from '../common/config.ts';
import { SqsError } from '../common/errors.ts';
import type { BodyState } from './body.ts';
import type { FormSender } from './sender.ts';
import { SQS_MAX_MESSAGE_BYTES } from '../common/sqs.ts';
import { ProblemError } from './problem.ts';
import { verifyRequest } from './signature.ts';
import type { WebMetrics } from './metrics.ts';
import { idempotencyKey, RecentSubmissions, submissionOf } from './submission.ts';

const FORM_TYPE = 'application/x-www-form-urlencoded';

export interface FormRouteOptions {
  sender: FormSender;
  metrics: WebMetrics;
  /** How requests are signed; undefined turns the signature check off. */
  signature: SignatureOptions | undefined;
  /** Largest serialised form queued (MAX_BODY_BYTES, the limit the worker applies too). */
  maxFormBytes: number;
  /** Whether a repeat of the same signed request is the same submission (IDEMPOTENCY_WINDOW_SECONDS above 0). */
  contentIdentity: boolean;
  /** Seconds submission ids are kept (the `repeat` hint of the 202 looks back as far). */
  keyLifetimeSeconds: number;
  /** Clock, for tests. Default: Date.now. */
  now?: () => number;
}

/** The signature check's settings. */
export interface SignatureOptions {
  /** Accepted secrets: UI_SECRET, then UI_SECRET_NEXT when set. */
  secrets: readonly string[];
  schemes: readonly SignatureScheme[];
  toleranceSeconds: number;
}

/** Submission ids one web process remembers for the `repeat` hint. */
const RECENT_SUBMISSIONS = 10_000;

/** Handler of POST /form/. */
export function formHandler(options: FormRouteOptions) {
  const { sender, metrics, signature } = options;
  const now = options.now ?? Date.now;
  const recent = new RecentSubmissions(RECENT_SUBMISSIONS, options.keyLifetimeSeconds * 1000);
  return async function submitForm(ctx: Context): Promise<void> {
    const state = ctx.state as BodyState & { requestId: string };
    let scheme: SignatureScheme | undefined;
    let signedAt: number | undefined;
    if (signature !== undefined) {
      const verified = verifyRequest(
        {
          method: ctx.method,
          pathWithQuery: ctx.originalUrl,
          contentType: ctx.get('content-type'),
          idempotencyKey: ctx.get('idempotency-key'),
          body: state.rawBody,
        },
        { v1: ctx.get('x-form-signature') || undefined, legacy: ctx.get('x-signature') || undefined },
        { ...signature, now: now() },
      );
      if (!verified.ok) throw new ProblemError(401, 'Unauthorized', verified.detail);
      scheme = verified.scheme;
      signedAt = verified.timestamp;
    }
    const key = idempotencyKey(ctx.req.rawHeaders);
    // A body is a submission under one Content-Type at most, so an unsigned Content-Type cannot change what is stored.
    if (ctx.request.is(FORM_TYPE) && /^\s*[{[]/.test(state.rawBody.toString('latin1')))
      throw new ProblemError(
        415,
        'Unsupported Media Type',
        `a body that starts like JSON must be sent as application/json, not ${FORM_TYPE}`,
      );
    if (state.bodyError) throw state.bodyError;
    // Exact or refused: a number JavaScript would write back differently is not stored changed.
    const inexact = ctx.request.is('application/json') ? inexactNumber(state.rawBody.toString('utf8')) : undefined;
    if (inexact !== undefined)
      throw new ProblemError(400, 'Bad Request', inexact, { errors: [{ field: 'data', message: inexact }] });
    const body: unknown = ctx.request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new ProblemError(400, 'Bad Request', 'the body must be an object with a data field', {
        errors: [{ field: 'data', message: 'data is missing' }],
      });
    }
    const raw = Object.hasOwn(body, 'data') ? (body as Record<string, unknown>).data : undefined;
    if (ctx.request.is(FORM_TYPE) && raw !== undefined && typeof raw !== 'string') {
      // The UI posts data=<JSON string>; repeated or bracketed keys (data[]=, data[x]=) are not that.
      const message = Array.isArray(raw) ? 'data must be given once, as a JSON string' : 'data must be a JSON string';
      throw new ProblemError(400, 'Bad Request', message, { errors: [{ field: 'data', message }] });
    }
    const parsed = parseData(raw);
    if (!parsed.ok)
      throw new ProblemError(400, 'Bad Request', parsed.reason, {
        errors: [{ field: 'data', message: parsed.reason }],
      });
    const result = validateForm(parsed.value);
    if (!result.ok) {
      ctx.state.formInvalid = true;
      const errors = result.errors.map((e) => ({ field: e.field ? `data.${e.field}` : 'data', message: e.message }));
      throw new ProblemError(400, 'Bad Request', `the form is not valid: ${summarise(result.errors)}`, { errors });
    }
    const size = formBytes(result.value);
    if (size > options.maxFormBytes)
      throw new ProblemError(
        413,
        'Content Too Large',
        `the form is larger than ${options.maxFormBytes} bytes once serialised (${size} bytes)`,
      );
    const submission = submissionOf({ key, data: result.value, scheme, signedAt }, options.contentIdentity);
    const receivedAt = now();
    const message = encodeFormMessage({
      data: result.value,
      received_at: new Date(receivedAt).toISOString(),
      request_id: state.requestId,
      submission_id: submission.id,
      submission_source: submission.source,
      ...(submission.key !== undefined ? { idempotency_key: submission.key } : {}),
      ...(submission.signedAt !== undefined ? { signed_at: submission.signedAt } : {}),
    });
    // Serialising can grow a body (1e20 is written out in full): refuse here what SQS would refuse, rather than answer 503.
    if (Buffer.byteLength(message, 'utf8') > SQS_MAX_MESSAGE_BYTES) {
      throw new ProblemError(
        413,
        'Content Too Large',
        `the form is larger than ${SQS_MAX_MESSAGE_BYTES} bytes once serialised for the queue`,
      );
    }
    let messageId: string;
    try {
      messageId = await sender.send(message);
    } catch (error) {
      if (error instanceof SqsError) {
        metrics.enqueueFailed.inc();
        throw new ProblemError(503, 'Service Unavailable', 'the form may not have been queued; try again later', {
          headers: { 'Retry-After': '5' },
          cause: error,
        });
      }
      throw error;
    }
    metrics.accepted.inc();
    ctx.state.messageId = messageId;
    ctx.state.submissionId = submission.id;
    const repeat = recent.seen(submission.id, state.rawBody, receivedAt);
    recent.add(submission.id, state.rawBody, receivedAt);
    ctx.status = 202;
    ctx.body = { id: messageId, submission_id: submission.id, ...(repeat ? { repeat: true } : {}), data: result.value };
  };
}
