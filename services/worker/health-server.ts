/**
 * The worker's HTTP server on HEALTH_PORT: `/metrics`, liveness (the poll
 * loops make progress) and readiness (not shutting down, the database answers,
 * SQS answered at the last poll), with the shutdown hooks of terminus.
 */
import { createServer, type Server } from 'node:http';
import { errorSummary } from '../common/errors.ts';
import { attachHealth, unhealthy } from '../common/health.ts';
import type { Logger } from '../common/logger.ts';
import { LOG_CODES } from '../common/log-codes.ts';
import { writeProblem } from '../common/problem.ts';
import type { Consumer } from './consumer.ts';
import type { WorkerMetrics } from './metrics.ts';

export interface HealthServerOptions {
  metrics: WorkerMetrics;
  consumer: Consumer;
  /** Checks the database (readiness). */
  ping: () => Promise<void>;
  /** How long the poll loops may go without progress before liveness fails (livenessBoundMs). */
  livenessBoundMs: number;
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
  const { metrics, consumer } = options;
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
      const idleMs = Date.now() - consumer.lastProgress;
      if (consumer.running && idleMs > options.livenessBoundMs)
        unhealthy('poll loop made no progress', { idleMs, boundMs: options.livenessBoundMs });
      return { status: 'ok', idleMs };
    },
    ready: async () => {
      if (!options.ready()) unhealthy('shutting down');
      try {
        await options.ping();
      } catch (error) {
        consumer.databaseHealthy = false;
        // The cause goes to the log only: a probe's answer carries no error text (docs/security.md).
        options.logger.warn(
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
