/**
 * Composition root of the worker: builds the SQS client and the database pool
 * from config, wires the poll loops, the health server (health-server.ts) and
 * the shutdown order.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { AddressInfo } from 'node:net';
import type { Config } from '../common/config.ts';
import { createDatabase, type Knex } from '../common/db.ts';
import { stopServer } from '../common/health.ts';
import { createErrorReporter } from '../common/error-reporter.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { createSqsClient, resolveOriginalQueueUrl, resolveQueueUrls, SQS_MAX_MESSAGE_BYTES } from '../common/sqs.ts';
import { decodeOriginalMessage } from '../common/original-message.ts';
import { createTracing } from '../common/tracing.ts';
import { BatchHandler, type BatchHandlerOptions } from './batch.ts';
import { Consumer } from './consumer.ts';
import { createWorkerMetrics, observeConsumer, type WorkerMetrics } from './metrics.ts';
import { maxMessageBytes, WorkerQueue } from './queue.ts';
import { QueueDepthPoller } from './queue-depth-poller.ts';
import { FormRepository } from './repository.ts';
import { FormWriter } from './writer.ts';
import { createHealthServer } from './health-server.ts';
import { KeyExpiry } from './key-expiry.ts';
import { LOG_CODES } from '../common/log-codes.ts';

export interface WorkerServiceOptions {
  logger?: Logger;
  /** SQS client to use instead of one built from config. It is destroyed on stop. */
  sqs?: SQSClient;
  /** Database to use instead of one built from config. It is destroyed on stop. */
  db?: Knex;
  /** Install SIGTERM/SIGINT handling that exits the process (main only). Default false. */
  handleSignals?: boolean;
}

export interface WorkerService {
  consumer: Consumer;
  /** The poll loop on the replaced service's live queue (SQS_ORIGINAL_QUEUE_NAME), when set. */
  originalConsumer: Consumer | undefined;
  /** The per-process writer the poll loops hand their valid forms to. */
  writer: FormWriter;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Starts the health server on config.healthPort (0: any free port) and the poll loops; resolves with the health port. */
  start(): Promise<number>;
  /** The shutdown sequence without exiting: fail readiness, drain the loops, close the health server and the clients. */
  stop(): Promise<{ drainMs: number }>;
}

/** How long the poll loops may go without progress before liveness fails, in ms. */
export function livenessBoundMs(config: Config): number {
  return (
    2 *
      (config.sqs.waitTimeSeconds * 1000 +
        config.sqs.requestTimeoutMs * config.sqs.maxAttempts +
        config.database.timeoutMs) +
    30_000
  );
}

/** Builds the worker; resolves once the queue URLs are known. */
export async function createWorkerService(config: Config, options: WorkerServiceOptions = {}): Promise<WorkerService> {
  const tracing = await createTracing(config.tracing, 'worker');
  const logger =
    options.logger ??
    createLogger(config.logLevel, 'worker', config.logFormat, tracing.enabled ? () => tracing.logFields() : undefined);
  if (tracing.enabled)
    logger.info(
      { collector: new URL(config.tracing.endpoint!).origin, protocol: config.tracing.protocol },
      'traces are exported over OTLP',
    );
  const reporter = await createErrorReporter({ ...config.sentry, service: 'worker' }, logger);
  const startedAt = Date.now();
  const metrics = createWorkerMetrics({
    loops: () => config.worker.concurrency,
    busyLoops: () => consumer.activeLoops,
    lastPollAt: () => consumer.lastPollAt || startedAt,
    up: () => ({ sqs: consumer.sqsHealthy, database: consumer.databaseHealthy }),
  });
  const sqs =
    options.sqs ??
    createSqsClient(config.sqs, {
      extraTimeoutMs: config.sqs.waitTimeSeconds * 1000,
      maxSockets: config.worker.concurrency * 2 + 4,
    });
  const db = options.db ?? createDatabase(config.database, logger);
  const urls = await resolveQueueUrls(sqs, config.sqs, logger);
  const invalidLimit = await maxMessageBytes(sqs, urls.invalid, SQS_MAX_MESSAGE_BYTES);
  const queueHooks = {
    onRequest: (action: string) => metrics.sqsRequests.inc({ action }),
    onError: (operation: string) => metrics.sqsErrors.inc({ operation }),
    tracing,
  };
  const queue = new WorkerQueue(sqs, urls, queueHooks, invalidLimit);
  const repository = new FormRepository(db, config.database.timeoutMs, tracing);
  const writer = new FormWriter({
    inserter: repository,
    maxRows: config.worker.insertMaxRows,
    windowMs: config.worker.insertWindowMs,
    parallel: config.database.poolMax,
  });
  const handlerFor = (from: WorkerQueue, decode?: BatchHandlerOptions['decode']): BatchHandler =>
    new BatchHandler({
      queue: from,
      repository: {
        insertMany: (rows) => writer.insertMany(rows),
        classifySkipped: (rows) => repository.classifySkipped(rows),
      },
      logger,
      backoffBaseSeconds: config.sqs.retryBackoffBaseSeconds,
      backoffMaxSeconds: config.sqs.retryBackoffMaxSeconds,
      tracing,
      maxFormBytes: config.web.maxBodyBytes,
      decode,
    });
  const handler = handlerFor(queue);
  const consumer = new Consumer({
    queue,
    handler,
    logger,
    reporter,
    tracing,
    concurrency: config.worker.concurrency,
    checkDatabase: async () => {
      try {
        await repository.ping();
      } catch (error) {
        metrics.databaseErrors.inc();
        throw error;
      }
    },
    waitTimeSeconds: config.sqs.waitTimeSeconds,
    maxNumberOfMessages: config.sqs.maxNumberOfMessages,
    visibilityTimeoutSeconds: config.sqs.visibilityTimeoutSeconds,
  });
  // During the cut-over: one more loop, on the replaced service's live queue (docs/cut-over.md).
  const originalConsumer = await originalQueueConsumer();
  async function originalQueueConsumer(): Promise<Consumer | undefined> {
    if (config.sqs.originalQueueName === undefined) return undefined;
    const url = await resolveOriginalQueueUrl(sqs, config.sqs, config.sqs.originalQueueName);
    const originalQueue = new WorkerQueue(sqs, { form: url, invalid: urls.invalid }, queueHooks, invalidLimit);
    const loop = new Consumer({
      queue: originalQueue,
      handler: handlerFor(originalQueue, decodeOriginalMessage),
      logger,
      reporter,
      tracing,
      concurrency: 1,
      checkDatabase: () => repository.ping(),
      waitTimeSeconds: config.sqs.waitTimeSeconds,
      maxNumberOfMessages: config.sqs.maxNumberOfMessages,
      visibilityTimeoutSeconds: config.sqs.visibilityTimeoutSeconds,
    });
    observeConsumer(loop, metrics);
    return loop;
  }
  const queueDepth = new QueueDepthPoller({
    queue,
    metrics,
    logger,
    names: { form: config.sqs.formQueueName, invalid: config.sqs.invalidQueueName },
    intervalMs: config.queueMetricsIntervalMs,
  });
  const keyExpiry = new KeyExpiry({
    repository,
    logger,
    lifetimeSeconds: config.idempotency.keyLifetimeSeconds,
    onReleased: (count) => metrics.keysExpired.inc(count),
  });
  observeConsumer(consumer, metrics);
  consumer.on('batch', (r) => {
    logger.debug(
      {
        loop: r.loop,
        received: r.received,
        stored: r.stored,
        duplicates: r.duplicates,
        invalid: r.invalid,
        retried: r.retried,
      },
      'batch handled',
    );
  });

  let ready = true;
  const drain = async (): Promise<{ drainMs: number }> => {
    ready = false;
    logger.info('shutting down: no new polls; draining the polls in flight');
    // Closing the writer first makes it start waiting rows at once (no window) while the loops finish.
    const closing = writer.close();
    const [result] = await Promise.all([
      consumer.stop(),
      originalConsumer?.stop(),
      queueDepth.stop(),
      keyExpiry.stop(),
      closing,
    ]);
    await writer.close();
    logger.info({ drainMs: result.drainMs, code: LOG_CODES.workerDrained }, 'worker drained');
    return result;
  };
  const closeClients = async (): Promise<void> => {
    await db.destroy();
    sqs.destroy();
    await Promise.all([reporter.close(), tracing.close()]);
  };
  const server = createHealthServer({
    metrics,
    consumer,
    ping: () => repository.ping(),
    liveness: { stalledMs: livenessBoundMs(config), outageMs: config.worker.livenessOutageMs },
    ready: () => ready,
    beforeClose: async () => {
      await drain();
    },
    afterClose: async () => {
      await closeClients();
      logger.info({ code: LOG_CODES.workerStopped }, 'worker stopped');
    },
    handleSignals: options.handleSignals ?? false,
    logger,
  });

  return {
    consumer,
    originalConsumer,
    writer,
    metrics,
    logger,
    start: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.healthPort, () => {
          server.off('error', reject);
          const port = (server.address() as AddressInfo).port;
          consumer.start();
          originalConsumer?.start();
          if (originalConsumer)
            logger.info({ queue: config.sqs.originalQueueName }, "also reading the replaced service's live queue");
          queueDepth.start();
          keyExpiry.start();
          logger.info(
            {
              healthPort: port,
              concurrency: config.worker.concurrency,
              queue: urls.form,
              code: LOG_CODES.workerPolling,
            },
            'worker polling',
          );
          resolve(port);
        });
      }),
    stop: async () => {
      const result = await drain();
      await stopServer(server);
      await closeClients();
      return result;
    },
  };
}
