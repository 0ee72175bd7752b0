/**
 * Reporting of unexpected errors (bugs, not outages) to Sentry. Without a DSN
 * the reporter does nothing and @sentry/node is never loaded.
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
  const Sentry = await import('@sentry/node');
  // Only error events: no tracing, no automatic instrumentation, no request data.
  Sentry.initWithoutDefaultIntegrations({
    dsn: options.dsn,
    environment: options.environment,
    release: options.release ?? process.env.npm_package_version,
    integrations: [Sentry.linkedErrorsIntegration(), Sentry.dedupeIntegration()],
    enableRuntimeChannelInjection: false,
    initialScope: { tags: { service: options.service } },
  });
  logger.info({ environment: options.environment }, 'unexpected errors are reported to Sentry');
  return {
    capture: (error, context) => {
      Sentry.captureException(error, context ? { extra: context } : undefined);
    },
    close: async (timeoutMs = 2000) => {
      try {
        await Sentry.close(timeoutMs);
      } catch (error) {
        logger.warn({ err: errorSummary(error) }, 'could not flush Sentry events');
      }
    },
  };
}
