/**
 * Prometheus metrics of the worker, on a registry of its own.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface WorkerMetrics {
  registry: Registry;
  messages: Counter<'outcome'>;
  sqsRequests: Counter<'action'>;
  batchDuration: Histogram;
  backoffs: Counter<'reason'>;
  up: Gauge<'dependency'>;
}

/** Creates the registry and the metrics; `defaults` adds process metrics. */
export function createWorkerMetrics(defaults = true): WorkerMetrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  return {
    registry,
    messages: new Counter({
      name: 'form_data_worker_messages_total',
      help: 'Messages handled, by outcome: stored, duplicate, invalid, retried, not_deleted.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    sqsRequests: new Counter({ name: 'form_data_worker_sqs_requests_total', help: 'SQS requests made by the worker, by action.', labelNames: ['action'], registers: [registry] }),
    batchDuration: new Histogram({
      name: 'form_data_worker_batch_duration_seconds',
      help: 'Time to handle one received batch.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    backoffs: new Counter({ name: 'form_data_worker_backoffs_total', help: 'Poll loop backoffs, by reason.', labelNames: ['reason'], registers: [registry] }),
    up: new Gauge({ name: 'form_data_worker_dependency_up', help: '1 when the dependency answered at the last attempt.', labelNames: ['dependency'], registers: [registry] }),
  };
}
