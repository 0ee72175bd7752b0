/**
 * Composition root of the web: builds clients from config and wires the app,
 * the HTTP server, health probes and the shutdown order.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertWebConfig, type Config } from '../common/config.ts';
import { attachHealth, stopServer, unhealthy } from '../common/health.ts';
import { createErrorReporter } from '../common/error-reporter.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { createSqsClient, resolveFormQueueUrl } from '../common/sqs.ts';
import { createTracing } from '../common/tracing.ts';
import { createApp } from './app.ts';
import { createHttpServer, createMetricsServer, DEFAULT_LIMITS, type ServerLimits } from './http-server.ts';
import { createWebMetrics } from './metrics.ts';
import { BatchingSender, DirectSender, type FormSender } from './sender.ts';
import { LOG_CODES } from '../common/log-codes.ts';

export interface WebServiceOptions {
  logger?: Logger;
  /** SQS client to use instead of one built from config. It is destroyed on stop. */
  sqs?: SQSClient;
  /** Replaces the SQS sender (the benchmark's no-op ceiling). */
  sender?: FormSender;
  /** Install SIGTERM/SIGINT handling that exits the process (main only). Default false. */
  handleSignals?: boolean;
  limits?: Partial<ServerLimits>;
}

export interface WebService {
  server: Server;
  logger: Logger;
  /** Starts listening on config.web.port (0: any free port), and METRICS_PORT when set; resolves with the port. */
  listen(): Promise<number>;
  /** The port /metrics listens on when METRICS_PORT is set (after listen), else undefined. */
  metricsPort(): number | undefined;
  /** The shutdown sequence without exiting: fail readiness, wait the delay, stop intake, finish in-flight requests, close clients. */
  stop(): Promise<void>;
}

export type { ServerLimits };

/** Builds the web service; resolves once the queue URL is known. */
export async function createWebService(config: Config, options: WebServiceOptions = {}): Promise<WebService> {
  const warnings = assertWebConfig(config);
  const tracing = await createTracing(config.tracing, 'web');
  const logger =
    options.logger ??
    createLogger(config.logLevel, 'web', config.logFormat, tracing.enabled ? () => tracing.logFields() : undefined);
  for (const { code, message } of warnings) logger.warn({ code }, message);
  if (tracing.enabled)
    logger.info(
      { collector: new URL(config.tracing.endpoint!).origin, protocol: config.tracing.protocol },
      'traces are exported over OTLP',
    );
  const reporter = await createErrorReporter({ ...config.sentry, service: 'web' }, logger);
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const sqs = options.sqs ?? createSqsClient(config.sqs);
  const metrics = createWebMetrics();
  let sender = options.sender;
  if (!sender) {
    const form = await resolveFormQueueUrl(sqs, config.sqs, logger);
    const observe = (entries: number, failed: number, seconds: number): void => {
      const result = failed === entries ? 'failed' : 'ok';
      metrics.sqsSends.inc({ result });
      metrics.sqsSendDuration.observe({ result }, seconds);
      metrics.sendBatchSize.observe(entries);
    };
    sender = config.sqs.sendBatching
      ? new BatchingSender(sqs, form, config.sqs.sendBatchWindowMs, observe, tracing)
      : new DirectSender(sqs, form, observe, tracing);
  }
  const app = createApp({
    sender,
    logger,
    metrics,
    reporter,
    tracing,
    signature: config.web.signatureCheck
      ? {
          secrets: [config.web.uiSecret!, ...(config.web.uiSecretNext ? [config.web.uiSecretNext] : [])],
          schemes: config.web.signatureSchemes,
          toleranceSeconds: config.web.signatureToleranceSeconds,
        }
      : undefined,
    maxBodyBytes: config.web.maxBodyBytes,
    metricsRoute: config.web.metricsPort === undefined,
    requestTimeoutMs: limits.requestTimeoutMs,
    contentIdentity: config.idempotency.windowSeconds > 0,
    keyLifetimeSeconds: config.idempotency.keyLifetimeSeconds,
  });
  const server = createHttpServer(app.callback(), limits, (status, code) => {
    metrics.requests.inc({ route: 'other', method: 'other', status: String(status) });
    logger.info({ status, code }, 'request refused by the HTTP server');
  });

  // METRICS_PORT: /metrics alone on a port of its own (docs/security.md#network).
  const metricsServer =
    config.web.metricsPort === undefined ? undefined : createMetricsServer(metrics.registry, limits);

  let ready = true;
  const closeClients = async (): Promise<void> => {
    if (metricsServer?.listening) await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
    await sender.close();
    sqs.destroy();
    await Promise.all([reporter.close(), tracing.close()]);
  };
  const failReadinessAndWait = async (): Promise<void> => {
    ready = false;
    logger.info({ delayMs: config.web.shutdownDelayMs }, 'shutting down: readiness failed, waiting before closing');
    await sleep(config.web.shutdownDelayMs);
  };
  attachHealth(server, {
    live: async () => ({ status: 'ok' }),
    ready: async () => (ready ? { status: 'ok' } : unhealthy('shutting down')),
    beforeClose: failReadinessAndWait,
    afterClose: async () => {
      await closeClients();
      logger.info('web stopped');
    },
    closeTimeoutMs: config.sqs.requestTimeoutMs * config.sqs.maxAttempts + 1000,
    handleSignals: options.handleSignals ?? false,
    logger,
  });

  const listenOn = (target: Server, port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      target.once('error', reject);
      target.listen(port, () => {
        target.off('error', reject);
        resolve((target.address() as AddressInfo).port);
      });
    });

  return {
    server,
    logger,
    listen: async () => {
      if (metricsServer) {
        const metricsPort = await listenOn(metricsServer, config.web.metricsPort!);
        logger.info({ metricsPort }, 'web metrics listening');
      }
      const port = await listenOn(server, config.web.port);
      logger.info({ port, code: LOG_CODES.webListening }, 'web listening');
      return port;
    },
    metricsPort: () => (metricsServer?.listening ? (metricsServer.address() as AddressInfo).port : undefined),
    stop: async () => {
      await failReadinessAndWait();
      await stopServer(server);
      await closeClients();
    },
  };
}
