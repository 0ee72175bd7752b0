/**
 * The web's Koa application: request ids, metrics, problem+json errors and routes.
 */
import Koa, { type Context, type Next } from 'koa';
import Router from '@koa/router';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/logger.ts';
import { readBody } from './body.ts';
import { formHandler } from './form-route.ts';
import type { WebMetrics } from './metrics.ts';
import { echo, ProblemError, problemMiddleware, sendProblem } from './problem.ts';
import type { FormSender } from './sender.ts';
import openapiDocument from './openapi.json' with { type: 'json' };

export interface AppOptions {
  sender: FormSender;
  logger: Logger;
  metrics: WebMetrics;
  /** Shared secret; undefined turns the signature check off. */
  secret: string | undefined;
  /** Largest accepted body, in bytes. */
  maxBodyBytes: number;
  /** OpenAPI document served at /openapi.json. Default: services/web/openapi.json. */
  openapi?: unknown;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Builds the Koa app (it listens nowhere until given to a server). */
export function createApp(options: AppOptions): Koa {
  const { logger, metrics } = options;
  const app = new Koa({ proxy: false });
  app.silent = true;
  // strict: /form and /form/ only, not /form// and the like.
  const router = new Router({ strict: true });
  const submit = formHandler(options);
  const body = readBody(options.maxBodyBytes);
  router.post(['/form', '/form/'], body, submit);
  const openapi = JSON.stringify(options.openapi ?? openapiDocument);
  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = openapi;
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  app.use(async function requestContext(ctx: Context, next: Next) {
    const given = ctx.get('x-request-id');
    ctx.state.requestId = REQUEST_ID.test(given) ? given : randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId as string);
    const route = (ctx.path === '/form' || ctx.path === '/form/') ? '/form/' : ctx.path === '/metrics' ? '/metrics' : 'other';
    const end = metrics.duration.startTimer({ route });
    try {
      await next();
    } finally {
      end();
      metrics.requests.inc({ route, status: String(ctx.status) });
      if (ctx.status >= 500) logger.warn({ requestId: ctx.state.requestId, status: ctx.status, path: ctx.path }, 'request failed');
    }
  });
  app.use(problemMiddleware(logger));
  app.use(async function hostRequired(ctx: Context, next: Next) {
    if (ctx.req.httpVersion === '1.1' && !ctx.get('host')) throw new ProblemError(400, 'Bad Request', 'the Host header is missing');
    await next();
  });
  app.use(async function methodProblems(ctx: Context, next: Next) {
    await next();
    if (ctx.body !== undefined && ctx.body !== null) return;
    if (ctx.status === 405) sendProblem(ctx, 405, 'Method Not Allowed', `${ctx.method} is not allowed on ${echo(ctx.path)}; allowed: ${ctx.response.get('Allow')}`);
    else if (ctx.status === 501) {
      // A method @koa/router does not know at all (PROPFIND, …): still "not allowed here", never a 5xx.
      const allow = ctx.response.get('Allow');
      if (allow) {
        sendProblem(ctx, 405, 'Method Not Allowed', `${ctx.method} is not allowed on ${echo(ctx.path)}; allowed: ${allow}`);
      } else {
        sendProblem(ctx, 404, 'Not Found', `no resource at ${echo(ctx.path)}`);
      }
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
