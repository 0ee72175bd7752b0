/**
 * Prometheus metrics of the web, on a registry of its own (no global state).
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The web's metrics; names are listed in the README. */
export interface WebMetrics {
  registry: Registry;
  requests: Counter<'route' | 'status'>;
  duration: Histogram<'route'>;
  accepted: Counter;
  sqsSends: Counter<'result'>;
  sendBatchSize: Histogram;
}

/** Creates the registry and the metrics; `defaults` adds process metrics. */
export function createWebMetrics(defaults = true): WebMetrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({ name: 'form_data_http_requests_total', help: 'HTTP requests by route and status.', labelNames: ['route', 'status'], registers: [registry] }),
    duration: new Histogram({
      name: 'form_data_http_request_duration_seconds',
      help: 'HTTP request duration by route.',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    accepted: new Counter({ name: 'form_data_forms_accepted_total', help: 'Forms SQS accepted (answered 202).', registers: [registry] }),
    sqsSends: new Counter({ name: 'form_data_sqs_send_requests_total', help: 'SQS send requests (SendMessage or SendMessageBatch) by result.', labelNames: ['result'], registers: [registry] }),
    sendBatchSize: new Histogram({ name: 'form_data_sqs_send_batch_size', help: 'Entries per SQS send request.', buckets: [1, 2, 3, 5, 8, 10], registers: [registry] }),
  };
}
