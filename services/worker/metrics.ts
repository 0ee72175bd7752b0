/**
 * Prometheus metrics of the worker, on a registry of its own. Label values are
 * bounded: outcomes, reasons, SQS actions and queue names, never a message id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Consumer } from './consumer.ts';
import { INVALID_REASONS } from '../common/message.ts';

/** The outcome label values of form_data_worker_messages_total. */
export const OUTCOMES = ['stored', 'duplicate', 'invalid', 'retried', 'not_deleted'] as const;

/** What the gauges read when Prometheus scrapes. */
export interface WorkerMetricsSources {
  /** Configured poll loops. */
  loops: () => number;
  /** Loops polling or handling a batch now. */
  busyLoops: () => number;
  /** Time of the latest successful ReceiveMessage in ms since the epoch; 0 before the first. */
  lastPollAt: () => number;
  /** Whether SQS and the database answered at the last attempt. */
  up: () => { sqs: boolean; database: boolean };
}

/** The worker's metrics; names are listed in docs/metrics.md. */
export interface WorkerMetrics {
  registry: Registry;
  received: Counter;
  messages: Counter<'outcome'>;
  invalid: Counter<'reason'>;
  sqsRequests: Counter<'action'>;
  sqsErrors: Counter<'operation'>;
  databaseErrors: Counter;
  batchDuration: Histogram;
  messageAge: Histogram;
  oldestMessageAge: Gauge;
  backoffs: Counter<'reason'>;
  keysExpired: Counter;
  queueVisible: Gauge<'queue'>;
  queueInFlight: Gauge<'queue'>;
  queueDelayed: Gauge<'queue'>;
}

/** Creates the registry and the metrics; `defaults` adds process metrics. */
export function createWorkerMetrics(sources: WorkerMetricsSources, defaults = true): WorkerMetrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  new Gauge({
    name: 'form_data_worker_poll_loops',
    help: 'Poll loops configured (WORKER_CONCURRENCY).',
    registers,
    collect() {
      this.set(sources.loops());
    },
  });
  new Gauge({
    name: 'form_data_worker_poll_loops_busy',
    help: 'Poll loops polling or handling a batch now (the others wait for a backlog).',
    registers,
    collect() {
      this.set(sources.busyLoops());
    },
  });
  new Gauge({
    name: 'form_data_worker_last_poll_timestamp_seconds',
    help: 'Unix time of the last successful ReceiveMessage (0 before the first).',
    registers,
    collect() {
      this.set(sources.lastPollAt() / 1000);
    },
  });
  new Gauge({
    name: 'form_data_worker_last_poll_age_seconds',
    help: 'Seconds since the last successful ReceiveMessage (since start before the first).',
    registers,
    collect() {
      this.set((Date.now() - sources.lastPollAt()) / 1000);
    },
  });
  new Gauge({
    name: 'form_data_worker_dependency_up',
    help: '1 when the dependency (sqs, database) answered at the last attempt.',
    labelNames: ['dependency'],
    registers,
    collect() {
      const up = sources.up();
      this.set({ dependency: 'sqs' }, up.sqs ? 1 : 0);
      this.set({ dependency: 'database' }, up.database ? 1 : 0);
    },
  });
  const messages = new Counter({
    name: 'form_data_worker_messages_total',
    help: 'Messages handled, by outcome: stored, duplicate, invalid, retried (handed back with a backoff), not_deleted.',
    labelNames: ['outcome'],
    registers,
  });
  const invalid = new Counter({
    name: 'form_data_worker_invalid_messages_total',
    help: 'Messages moved to the invalid queue, by reason.',
    labelNames: ['reason'],
    registers,
  });
  // Every outcome and reason is exported from the start at 0, so that rate() and increase() see the first one.
  for (const outcome of OUTCOMES) messages.labels({ outcome }).inc(0);
  for (const reason of INVALID_REASONS) invalid.labels({ reason }).inc(0);
  return {
    registry,
    messages,
    invalid,
    received: new Counter({
      name: 'form_data_worker_messages_received_total',
      help: 'Messages received from the form queue.',
      registers,
    }),
    sqsRequests: new Counter({
      name: 'form_data_worker_sqs_requests_total',
      help: 'SQS requests made by the worker, by action.',
      labelNames: ['action'],
      registers,
    }),
    sqsErrors: new Counter({
      name: 'form_data_worker_sqs_errors_total',
      help: 'Failed SQS requests (or batch entries), by operation.',
      labelNames: ['operation'],
      registers,
    }),
    databaseErrors: new Counter({
      name: 'form_data_worker_database_errors_total',
      help: 'Failed database inserts and checks.',
      registers,
    }),
    batchDuration: new Histogram({
      name: 'form_data_worker_batch_duration_seconds',
      help: 'Time to handle one received batch, from receipt to delete.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    messageAge: new Histogram({
      name: 'form_data_worker_message_age_seconds',
      help: 'Time a message spent in the queue before this receipt (from SQS SentTimestamp).',
      buckets: [0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600],
      registers,
    }),
    oldestMessageAge: new Gauge({
      name: 'form_data_worker_oldest_message_age_seconds',
      help: 'Age of the oldest message in the latest non-empty receive; 0 after an empty receive.',
      registers,
    }),
    backoffs: new Counter({
      name: 'form_data_worker_backoffs_total',
      help: 'Poll loop backoffs, by reason: database, sqs, error.',
      labelNames: ['reason'],
      registers,
    }),
    keysExpired: new Counter({
      name: 'form_data_worker_submission_keys_expired_total',
      help: 'Submission keys released after IDEMPOTENCY_WINDOW_SECONDS (later copies are new rows).',
      registers,
    }),
    queueVisible: new Gauge({
      name: 'form_data_sqs_messages_visible',
      help: 'Messages available in the queue (ApproximateNumberOfMessages).',
      labelNames: ['queue'],
      registers,
    }),
    queueInFlight: new Gauge({
      name: 'form_data_sqs_messages_in_flight',
      help: 'Messages received but not yet deleted or visible again (ApproximateNumberOfMessagesNotVisible).',
      labelNames: ['queue'],
      registers,
    }),
    queueDelayed: new Gauge({
      name: 'form_data_sqs_messages_delayed',
      help: 'Messages delayed, not yet available (ApproximateNumberOfMessagesDelayed).',
      labelNames: ['queue'],
      registers,
    }),
  };
}

/** Feeds the counters and histograms from the consumer's events. */
export function observeConsumer(consumer: Consumer, metrics: WorkerMetrics): void {
  consumer.on('received', ({ messages }) => {
    if (messages.length === 0) {
      metrics.oldestMessageAge.set(0);
      return;
    }
    metrics.received.inc(messages.length);
    const now = Date.now();
    let oldest = 0;
    for (const message of messages) {
      if (message.sentAt === undefined) continue;
      const age = Math.max(0, (now - message.sentAt) / 1000);
      metrics.messageAge.observe(age);
      oldest = Math.max(oldest, age);
    }
    metrics.oldestMessageAge.set(oldest);
  });
  consumer.on('batch', (r) => {
    metrics.batchDuration.observe(r.durationMs / 1000);
    if (r.stored) metrics.messages.inc({ outcome: 'stored' }, r.stored);
    if (r.duplicates) metrics.messages.inc({ outcome: 'duplicate' }, r.duplicates);
    if (r.invalid) metrics.messages.inc({ outcome: 'invalid' }, r.invalid);
    if (r.retried) metrics.messages.inc({ outcome: 'retried' }, r.retried);
    if (r.notDeleted) metrics.messages.inc({ outcome: 'not_deleted' }, r.notDeleted);
    for (const [reason, count] of Object.entries(r.invalidByReason)) metrics.invalid.inc({ reason }, count);
    if (r.databaseFailed) metrics.databaseErrors.inc();
  });
  consumer.on('backoff', ({ kind }) => metrics.backoffs.inc({ reason: kind }));
}
