/**
 * The one Koa middleware that turns errors into problem details (written by
 * common/problem.ts), and the error that carries a problem to it.
 */
import type { Context, Next } from 'koa';
import { noErrorReporter, type ErrorReporter } from '../common/error-reporter.ts';
import type { Logger } from '../common/logger.ts';
import type { FieldError } from '../common/form-schema.ts';
import { PROBLEM_CONTENT_TYPE, problemBody } from '../common/problem.ts';

/** An error with an HTTP status meant to be shown to the client. */
export class ProblemError extends Error {
  override name = 'ProblemError';
  readonly status: number;
  readonly title: string;
  readonly errors: readonly FieldError[] | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    title: string,
    detail: string,
    options: { errors?: readonly FieldError[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(detail, { cause: options.cause });
    this.status = status;
    this.title = title;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Request input repeated in an answer, capped in length. */
export function echo(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Writes a problem+json response. */
export function sendProblem(
  ctx: Context,
  status: number,
  title: string,
  detail: string,
  errors?: readonly FieldError[],
): void {
  if (!ctx.req.complete && ctx.req.readable) {
    // The body was refused unread (or part read): do not keep the connection
    // for another request, and drain what is still arriving meanwhile.
    ctx.set('Connection', 'close');
    ctx.req.resume();
  }
  ctx.status = status;
  ctx.type = PROBLEM_CONTENT_TYPE;
  ctx.body = problemBody({
    status,
    title,
    detail,
    instance: echo(ctx.path),
    request_id: ctx.state.requestId as string,
    errors,
  });
}

/** Maps errors thrown below it to problem+json; unknown errors become a generic 500, a log line and a report. */
/** `traceFields`: ids of the active trace, added to reports. Default: none. */
export function problemMiddleware(
  logger: Logger,
  reporter: ErrorReporter = noErrorReporter,
  traceFields: () => Record<string, string> = () => ({}),
) {
  return async function problems(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined)
        sendProblem(ctx, 404, 'Not Found', `no resource at ${echo(ctx.path)}`);
    } catch (error) {
      if (error instanceof ProblemError) {
        ctx.set(error.headers);
        sendProblem(ctx, error.status, error.title, error.message, error.errors);
        if (error.status >= 500)
          logger.warn({ err: error.cause ?? error, requestId: ctx.state.requestId }, error.message);
        return;
      }
      const status = httpStatusOf(error);
      if (status !== undefined && status >= 400 && status < 500) {
        // Errors of koa, koa-bodyparser and @koa/router marked safe to expose.
        const headers = (error as { headers?: Record<string, string> }).headers;
        if (headers) ctx.set(headers);
        sendProblem(ctx, status, TITLES[status] ?? 'Client Error', exposedMessage(error, status));
        return;
      }
      logger.error({ err: error, requestId: ctx.state.requestId }, 'unhandled error');
      reporter.capture(error, {
        requestId: ctx.state.requestId,
        route: ctx.path.slice(0, 200),
        method: ctx.method,
        ...traceFields(),
      });
      sendProblem(ctx, 500, 'Internal Server Error', 'the request could not be handled; it was not accepted');
    }
  };
}

function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { status?: unknown; statusCode?: unknown; expose?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  return e.expose === false ? undefined : status;
}

function exposedMessage(error: unknown, status: number): string {
  const message = error instanceof Error ? error.message : '';
  return message && message.length < 300 ? message : (TITLES[status] ?? 'client error');
}
