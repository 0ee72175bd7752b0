/**
 * The web's Koa application: request ids, metrics, problem+json errors and routes.
 */
import Koa, { type Context, type Next } from 'koa';
import Router from '@koa/router';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { pinoHttp } from 'pino-http';
import type { ErrorReporter } from '../common/error-reporter.ts';
import type { Logger } from '../common/logger.ts';
import { ATTR, CARRIER_FIELDS, FORM_ATTR, noTracing, type Tracing } from '../common/tracing.ts';
import { REQUEST_ID } from '../common/message.ts';
import { readBody } from './body.ts';
import { DEFAULT_LIMITS } from './http-server.ts';
import { formHandler, type SignatureOptions } from './form-route.ts';
import { methodLabel, routeLabel, type RefusalReason, type WebMetrics } from './metrics.ts';
import { echo, ProblemError, problemMiddleware, sendProblem } from './problem.ts';
import type { FormSender } from './sender.ts';
import openapiDocument from './openapi.json' with { type: 'json' };

export interface AppOptions {
  sender: FormSender;
  logger: Logger;
  metrics: WebMetrics;
  /** How requests are signed; undefined turns the signature check off. */
  signature: SignatureOptions | undefined;
  /** Largest accepted body, in bytes. */
  maxBodyBytes: number;
  /** Serve /metrics on this app; false when a port of its own serves it (METRICS_PORT). Default true. */
  metricsRoute?: boolean;
  /** The HTTP server's request timeout, in ms: a refused body is not read past it. Default 30 000. */
  requestTimeoutMs?: number;
  /** Whether a repeat of the same signed request is the same submission (IDEMPOTENCY_WINDOW_SECONDS above 0). */
  contentIdentity: boolean;
  /** Seconds submission ids are kept (the window, or its default when it is 0). */
  keyLifetimeSeconds: number;
  /** Where unexpected errors are reported. Default: nowhere (the log only). */
  reporter?: ErrorReporter;
  /** Server spans. Default: off. */
  tracing?: Tracing;
}

/** The ids of an accepted form, for its request's log line. */
interface AcceptedIds {
  messageId: string;
  submissionId: string;
}

/**
 * One log line per request (pino-http): request id, route, method, path
 * without the query, status and duration. Never headers or the body.
 */
function requestLogger(
  logger: Logger,
  accepted: WeakMap<IncomingMessage, AcceptedIds>,
  traceIds: WeakMap<IncomingMessage, Record<string, string>>,
) {
  const context = (req: IncomingMessage): Record<string, string> => {
    const route = routeLabel(pathOf(req.url));
    const ids = accepted.get(req);
    return { ...traceIds.get(req), ...(ids ? { route, ...ids } : { route }) };
  };
  return pinoHttp({
    logger,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    quietReqLogger: true,
    customAttributeKeys: { reqId: 'requestId', responseTime: 'durationMs' },
    customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'warn' : 'info'),
    customSuccessMessage: () => 'request completed',
    customErrorMessage: () => 'request failed',
    customSuccessObject: (req, _res, value: Record<string, unknown>) => ({ ...value, ...context(req) }),
    // The cause of a 5xx is logged where it happens; the line here only reports the status.
    customErrorObject: (req, res, _error, value: Record<string, unknown>) => ({
      ...value,
      ...context(req),
      err: undefined,
      status: res.statusCode,
    }),
    serializers: {
      req: (req: { method: string; url: string }) => ({ method: req.method, path: echo(pathOf(req.url)) }),
      res: (res: { statusCode: number }) => ({ status: res.statusCode }),
    },
  });
}

function pathOf(url: string | undefined): string {
  const path = url ?? '';
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

/** The refusal reason of a 4xx answer to POST /form/. */
function refusalReason(status: number, formInvalid: boolean): RefusalReason {
  switch (status) {
    case 400:
      return formInvalid ? 'invalid' : 'malformed';
    case 401:
      return 'signature';
    case 413:
      return 'too_large';
    case 415:
      return 'unsupported_media_type';
    default:
      return 'other';
  }
}

/**
 * A SERVER span per request, continuing the caller's W3C trace context
 * (traceparent/tracestate headers) or starting a trace. Attributes: method,
 * route, path without the query, status, request id; a problem answer sets
 * `error.type` to its status, and a 5xx marks the span failed.
 */
function serverSpan(tracing: Tracing, traceIds: WeakMap<IncomingMessage, Record<string, string>>) {
  return async function traced(ctx: Context, next: Next): Promise<void> {
    const route = routeLabel(ctx.path);
    const carrier: Record<string, string> = {};
    for (const name of CARRIER_FIELDS) {
      const value = ctx.get(name);
      if (value) carrier[name] = value;
    }
    const method = methodLabel(ctx.method);
    const span = tracing.start(route === 'other' ? method : `${method} ${route}`, {
      kind: 'server',
      parent: carrier,
      attributes: {
        [ATTR.httpMethod]: method === 'other' ? '_OTHER' : method,
        [ATTR.urlPath]: echo(ctx.path),
        [ATTR.urlScheme]: 'http',
        ...(route === 'other' ? {} : { [ATTR.httpRoute]: route }),
      },
    });
    traceIds.set(ctx.req, span.logFields());
    try {
      await span.run(next);
    } finally {
      const status = ctx.status;
      span.setAttributes({
        [ATTR.httpStatus]: status,
        [FORM_ATTR.requestId]: typeof ctx.state.requestId === 'string' ? ctx.state.requestId : undefined,
      });
      if (status >= 400) span.setAttributes({ [ATTR.errorType]: String(status) });
      if (status >= 500)
        span.fail(
          String(status),
          typeof (ctx.body as { title?: unknown } | undefined)?.title === 'string'
            ? (ctx.body as { title: string }).title
            : undefined,
        );
      span.end();
    }
  };
}

/** Builds the Koa app (it listens nowhere until given to a server). */
export function createApp(options: AppOptions): Koa {
  const { logger, metrics } = options;
  const app = new Koa({ proxy: false });
  app.silent = true;
  // strict: /form and /form/ only, not /form// and the like.
  const router = new Router({ strict: true });
  const submit = formHandler({ ...options, maxFormBytes: options.maxBodyBytes });
  const body = readBody(options.maxBodyBytes, options.requestTimeoutMs ?? DEFAULT_LIMITS.requestTimeoutMs);
  router.post(['/form', '/form/'], body, submit);
  const openapi = JSON.stringify(openapiDocument);
  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = openapi;
  });
  if (options.metricsRoute ?? true) {
    router.get('/metrics', async (ctx) => {
      ctx.type = metrics.registry.contentType;
      ctx.body = await metrics.registry.metrics();
    });
  }

  /** SQS message id and submission id of each accepted form, for its request's log line. */
  const accepted = new WeakMap<IncomingMessage, AcceptedIds>();
  /** trace_id and span_id of each request's server span, for its log line (written after the span ends). */
  const traceIds = new WeakMap<IncomingMessage, Record<string, string>>();
  const httpLogger = requestLogger(logger, accepted, traceIds);
  const tracing = options.tracing ?? noTracing;
  if (tracing.enabled) app.use(serverSpan(tracing, traceIds));
  app.use(async function requestContext(ctx: Context, next: Next) {
    httpLogger(ctx.req, ctx.res);
    const requestId = String(ctx.req.id);
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    const labels = { route: routeLabel(ctx.path), method: methodLabel(ctx.method) };
    const end = metrics.duration.startTimer(labels);
    try {
      await next();
    } finally {
      end();
      const { messageId, submissionId } = ctx.state as { messageId?: unknown; submissionId?: unknown };
      if (typeof messageId === 'string' && typeof submissionId === 'string') {
        accepted.set(ctx.req, { messageId, submissionId });
      }
      metrics.requests.inc({ ...labels, status: String(ctx.status) });
      if (labels.route === '/form/' && ctx.method === 'POST' && ctx.status >= 400 && ctx.status < 500) {
        metrics.refused.inc({ reason: refusalReason(ctx.status, ctx.state.formInvalid === true) });
      }
    }
  });
  app.use(problemMiddleware(logger, options.reporter, () => tracing.logFields()));
  app.use(async function hostRequired(ctx: Context, next: Next) {
    if (ctx.req.httpVersion === '1.1' && !ctx.get('host'))
      throw new ProblemError(400, 'Bad Request', 'the Host header is missing');
    await next();
  });
  app.use(async function methodProblems(ctx: Context, next: Next) {
    await next();
    if (ctx.body !== undefined && ctx.body !== null) return;
    if (ctx.status === 405)
      sendProblem(
        ctx,
        405,
        'Method Not Allowed',
        `${ctx.method} is not allowed on ${echo(ctx.path)}; allowed: ${ctx.response.get('Allow')}`,
      );
    else if (ctx.status === 501) {
      // A method @koa/router does not know at all (PROPFIND, …): still "not allowed here", never a 5xx.
      const allow = ctx.response.get('Allow');
      if (allow) {
        sendProblem(
          ctx,
          405,
          'Method Not Allowed',
          `${ctx.method} is not allowed on ${echo(ctx.path)}; allowed: ${allow}`,
        );
      } else {
        ctx.remove('Allow');
        sendProblem(ctx, 404, 'Not Found', `no resource at ${echo(ctx.path)}`);
      }
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
