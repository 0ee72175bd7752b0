/**
 * The worker's HTTP server on HEALTH_PORT: `/metrics`, liveness (liveness.ts:
 * the poll loops make progress, and neither SQS nor the database has failed
 * every call for WORKER_LIVENESS_OUTAGE_SECONDS) and readiness (not shutting
 * down, the database answers, SQS answered at the last poll), with the
 * shutdown hooks of terminus.
 */
import { createServer, type Server } from 'node:http';
import { errorSummary } from '../common/errors.ts';
import { attachHealth, unhealthy } from '../common/health.ts';
import type { Logger } from '../common/logger.ts';
import { LOG_CODES } from '../common/log-codes.ts';
import { writeProblem } from '../common/problem.ts';
import type { Consumer } from './consumer.ts';
import { livenessFailure, type LivenessBounds, type LivenessFailure } from './liveness.ts';
import type { WorkerMetrics } from './metrics.ts';

export interface HealthServerOptions {
  metrics: WorkerMetrics;
  consumer: Consumer;
  /** Checks the database (readiness). */
  ping: () => Promise<void>;
  /** When liveness fails: no progress of the poll loops (livenessBoundMs), a dependency's outage (WORKER_LIVENESS_OUTAGE_SECONDS). */
  liveness: LivenessBounds;
  /** False once shutting down. */
  ready: () => boolean;
  /** Shutdown: after readiness fails, before the server closes (drain). */
  beforeClose: () => Promise<void>;
  /** Shutdown: after the server closed (close the clients). */
  afterClose: () => Promise<void>;
  handleSignals: boolean;
  logger: Logger;
}

/** The health and metrics server, not yet listening. */
export function createHealthServer(options: HealthServerOptions): Server {
  const { metrics, consumer, logger } = options;
  /** The failure the last liveness probe answered, to log each change from live to failing and back once. */
  let failed: LivenessFailure | undefined;
  const server: Server = createServer(async (req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.setHeader('Content-Type', metrics.registry.contentType);
      res.end(await metrics.registry.metrics());
      return;
    }
    writeProblem(res, { status: 404, title: 'Not Found', detail: `no resource at ${req.url ?? ''}` });
  });
  attachHealth(server, {
    live: async () => {
      const now = Date.now();
      const failure = livenessFailure(
        {
          now,
          running: consumer.running,
          lastProgress: consumer.lastProgress,
          failingSince: consumer.failingSince,
        },
        options.liveness,
      );
      if (failure && !failed) logger.warn({ code: LOG_CODES.livenessFailed, ...failure }, 'liveness failing');
      if (!failure && failed)
        logger.info({ code: LOG_CODES.livenessRecovered, check: failed.check }, 'liveness passing again');
      failed = failure;
      if (failure?.check === 'poll-loop-stalled') unhealthy('poll loop made no progress', failure);
      if (failure) unhealthy('a dependency failed every call for WORKER_LIVENESS_OUTAGE_SECONDS', failure);
      return { status: 'ok', idleMs: now - consumer.lastProgress };
    },
    ready: async () => {
      if (!options.ready()) unhealthy('shutting down');
      try {
        await options.ping();
      } catch (error) {
        consumer.databaseHealthy = false;
        // The cause goes to the log only: a probe's answer carries no error text (docs/security.md).
        logger.warn(
          { code: LOG_CODES.readinessDatabaseUnreachable, err: errorSummary(error) },
          'readiness: database unreachable',
        );
        unhealthy('database unreachable');
      }
      consumer.databaseHealthy = true;
      if (!consumer.sqsHealthy) unhealthy('SQS unreachable at the last poll');
      return { status: 'ok' };
    },
    beforeClose: options.beforeClose,
    afterClose: options.afterClose,
    closeTimeoutMs: 1000,
    handleSignals: options.handleSignals,
    logger: options.logger,
  });
  return server;
}
