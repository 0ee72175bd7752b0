/**
 * Reporting of unexpected errors (bugs, not outages) to Sentry, through
 * @sentry/core (the SDK's runtime-neutral client, a small fraction of the size
 * of @sentry/node, which would bring OpenTelemetry and automatic
 * instrumentation this service does not use). Events go over Node's fetch;
 * the client and its scope belong to the reporter (no global hub). Without a
 * DSN the reporter does nothing and no Sentry module is loaded.
 */
import type { Logger } from './logger.ts';
import { errorSummary } from './errors.ts';

/** Where unexpected errors go besides the log. */
export interface ErrorReporter {
  /** Reports an unexpected error with context (ids only, never form values). */
  capture(error: unknown, context?: Record<string, unknown>): void;
  /** Sends what is queued, waiting at most `timeoutMs`. */
  close(timeoutMs?: number): Promise<void>;
}

/** The reporter used without a DSN. */
export const noErrorReporter: ErrorReporter = {
  capture: () => {},
  close: async () => {},
};

export interface SentryOptions {
  /** Sentry DSN; undefined returns `noErrorReporter`. */
  dsn: string | undefined;
  /** Environment tag of events (production, staging, …). Default: none. */
  environment: string | undefined;
  /** Names the process in every event (web, worker). */
  service: string;
  /** Release tag. Default: the package version from npm_package_version, if any. */
  release?: string;
}

/** Builds the reporter: a Sentry client when a DSN is given, `noErrorReporter` otherwise. */
export async function createErrorReporter(options: SentryOptions, logger: Logger): Promise<ErrorReporter> {
  if (!options.dsn) return noErrorReporter;
  const [core, server] = await Promise.all([import('@sentry/core'), import('@sentry/core/server')]);
  // Only error events: no tracing, no automatic instrumentation, no request data.
  const client = new server.ServerRuntimeClient({
    dsn: options.dsn,
    environment: options.environment,
    release: options.release ?? process.env.npm_package_version,
    platform: 'node',
    runtime: { name: 'node', version: process.version },
    serverName: undefined,
    integrations: [core.linkedErrorsIntegration(), core.dedupeIntegration()],
    stackParser: core.createStackParser(server.nodeStackLineParser()),
    transport: (transportOptions) =>
      core.createTransport(transportOptions, async (request) => {
        const response = await fetch(transportOptions.url, {
          method: 'POST',
          body: request.body,
          headers: transportOptions.headers,
          signal: AbortSignal.timeout(10_000),
        });
        await response.arrayBuffer();
        return {
          statusCode: response.status,
          headers: {
            'x-sentry-rate-limits': response.headers.get('x-sentry-rate-limits'),
            'retry-after': response.headers.get('retry-after'),
          },
        };
      }),
  });
  const scope = new core.Scope();
  scope.setClient(client);
  scope.setTags({ service: options.service });
  client.init();
  logger.info({ environment: options.environment }, 'unexpected errors are reported to Sentry');
  return {
    capture: (error, context) => {
      const eventScope = scope.clone();
      if (context) eventScope.setExtras(context);
      eventScope.captureException(error);
    },
    close: async (timeoutMs = 2000) => {
      try {
        await client.close(timeoutMs);
      } catch (error) {
        logger.warn({ err: errorSummary(error) }, 'could not flush Sentry events');
      }
    },
  };
}
