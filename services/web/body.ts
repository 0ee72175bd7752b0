/**
 * Request body handling for POST /form/: content-type check, koa-bodyparser
 * with limits, and a tap that keeps the raw bytes for the signature.
 */
import type { Context, Next } from 'koa';
import bodyParser from 'koa-bodyparser';
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { ProblemError } from './problem.ts';

const JSON_TYPE = 'application/json';
const FORM_TYPE = 'application/x-www-form-urlencoded';
/** qs limits of form-encoded bodies; exceeding one is a 400, not a silent truncation. */
const FORM_PARAMETERS = 64;
const FORM_ARRAY_ITEMS = 32;
const FORM_DEPTH = 2;

/**
 * How much of a body refused as too large is still read and dropped before the
 * 413 is sent (a lingering close, RFC 9112 §9.6), so that a client that writes
 * its whole request before reading (Python's urllib) can read the answer
 * instead of meeting a reset: at most `bytes`, for at most `ms`, and no longer
 * than `idleMs` without a byte arriving (a client that stopped sending is
 * answered at once), and within half the time left before the server's request
 * timeout (so the answer is still the 413). Past a bound the connection is
 * closed after the answer.
 */
export const LINGER = { bytes: 16 * 1024 * 1024, ms: 5000, idleMs: 200 };

/** State the body middleware leaves for the route. */
export interface BodyState {
  rawBody: Buffer;
  /** A parse error held back until the signature is checked. */
  bodyError: ProblemError | undefined;
}

/**
 * Reads and parses the body. Parse errors are held in `ctx.state.bodyError`, so
 * the signature (over the raw bytes) is checked first; a body over the limit
 * is refused at once.
 */
export function readBody(maxBytes: number, requestTimeoutMs: number) {
  const options: bodyParser.Options & { queryString: Record<string, unknown> } = {
    enableTypes: ['json', 'form'],
    jsonLimit: String(maxBytes),
    formLimit: String(maxBytes),
    strict: true,
    queryString: {
      depth: FORM_DEPTH,
      arrayLimit: FORM_ARRAY_ITEMS,
      parameterLimit: FORM_PARAMETERS,
      allowPrototypes: false,
      allowDots: false,
      throwOnLimitExceeded: true,
      strictDepth: true,
    },
    onerror: (error: Error, ctx: Context) => {
      const status = (error as { status?: number }).status;
      if (status === 413)
        throw new ProblemError(413, 'Content Too Large', `request body is larger than ${maxBytes} bytes`);
      if (status === 415) throw new ProblemError(415, 'Unsupported Media Type', error.message);
      (ctx.state as BodyState).bodyError = new ProblemError(
        400,
        'Bad Request',
        `request body could not be parsed: ${bodyErrorReason(error)}`,
      );
    },
  };
  const parser = bodyParser(options);

  return async function body(ctx: Context, next: Next): Promise<void> {
    const started = Date.now();
    const type = ctx.request.is(JSON_TYPE, FORM_TYPE);
    // null: neither Content-Length nor Transfer-Encoding, so there is no body at all.
    if (type === null)
      throw new ProblemError(
        400,
        'Bad Request',
        `the request has no body; send the form as ${JSON_TYPE} or ${FORM_TYPE}`,
      );
    if (type === false) {
      throw new ProblemError(415, 'Unsupported Media Type', `content type must be ${JSON_TYPE} or ${FORM_TYPE}`);
    }
    const charset = ctx.request.charset;
    if (charset && !['utf-8', 'utf8'].includes(charset.toLowerCase())) {
      throw new ProblemError(415, 'Unsupported Media Type', `charset must be utf-8, not ${charset}`);
    }
    if (ctx.get('content-encoding') && ctx.get('content-encoding').toLowerCase() !== 'identity') {
      throw new ProblemError(415, 'Unsupported Media Type', 'content encodings are not accepted');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const tap = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
    };
    // Listening before koa-bodyparser reads makes both see every chunk.
    ctx.req.on('data', tap);
    try {
      await parser(ctx, async () => {
        ctx.req.off('data', tap);
        const state = ctx.state as BodyState;
        state.rawBody = Buffer.concat(chunks, Math.min(size, maxBytes));
        // Bytes that are not UTF-8 are the first thing wrong with a body, whatever the parser made of them.
        if (size <= maxBytes && !isUtf8(state.rawBody)) {
          state.bodyError = new ProblemError(400, 'Bad Request', 'request body is not valid UTF-8');
        }
        await next();
      });
    } catch (error) {
      if (error instanceof ProblemError && error.status === 413) {
        ctx.req.off('data', tap);
        const left = requestTimeoutMs - (Date.now() - started);
        await discardBody(ctx.req, { ...LINGER, ms: Math.max(0, Math.min(LINGER.ms, left / 2)) });
      }
      throw error;
    } finally {
      ctx.req.off('data', tap);
    }
  };
}

/** Reads and drops what is left of a request body, within the bounds of `LINGER`. */
function discardBody(req: IncomingMessage, bounds: typeof LINGER): Promise<void> {
  if (req.complete || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    const done = (): void => {
      clearTimeout(timer);
      clearTimeout(idle);
      req.off('data', onData).off('end', done).off('close', done).off('error', done);
      resolve();
    };
    const idle = setTimeout(done, bounds.idleMs);
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > bounds.bytes) return done();
      idle.refresh();
    };
    const timer = setTimeout(done, bounds.ms);
    req.on('data', onData).on('end', done).on('close', done).on('error', done);
    req.resume();
  });
}

function bodyErrorReason(error: Error): string {
  const type = (error as { type?: string }).type;
  if (type === 'request.aborted') return 'request aborted';
  if (type === 'request.size.invalid') return 'body length does not match Content-Length';
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return 'unsupported charset';
  // qs, with throwOnLimitExceeded and strictDepth.
  if (error instanceof RangeError && /parameter limit/i.test(error.message))
    return `the form body has more than ${FORM_PARAMETERS} parameters`;
  if (error instanceof RangeError && /array limit/i.test(error.message))
    return `a form parameter has more than ${FORM_ARRAY_ITEMS} items`;
  if (error instanceof RangeError && /depth/i.test(error.message))
    return `form parameters are nested deeper than ${FORM_DEPTH} levels`;
  if (error.message.includes('only supports object and array')) return 'the JSON body must be an object';
  // @hapi/bourne refuses prototype-poisoning keys while parsing.
  if (error.message.includes('forbidden prototype property'))
    return 'the JSON body contains a forbidden key (__proto__ or constructor.prototype)';
  if (error instanceof SyntaxError) return 'malformed JSON';
  return 'malformed body';
}
