/**
 * Prometheus metrics of the web, on a registry of its own (no global state).
 * Label values are bounded: routes and methods come from fixed lists, never
 * from the request.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Why a form was refused (the `reason` label of form_data_forms_refused_total). */
export type RefusalReason = 'signature' | 'malformed' | 'invalid' | 'too_large' | 'unsupported_media_type' | 'other';

/** The web's metrics; names are listed in docs/metrics.md. */
export interface WebMetrics {
  registry: Registry;
  requests: Counter<'route' | 'method' | 'status'>;
  duration: Histogram<'route' | 'method'>;
  accepted: Counter;
  refused: Counter<'reason'>;
  enqueueFailed: Counter;
  sqsSendDuration: Histogram<'result'>;
  sqsSends: Counter<'result'>;
  sendBatchSize: Histogram;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const ROUTES = new Map([
  ['/form', '/form/'],
  ['/form/', '/form/'],
  ['/metrics', '/metrics'],
  ['/openapi.json', '/openapi.json'],
]);

/** The `route` label of a path: a known route, or `other`. */
export function routeLabel(path: string): string {
  return ROUTES.get(path) ?? 'other';
}

/** The `method` label: a standard method, or `other`. */
export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'other';
}

/** Creates the registry and the metrics; `defaults` adds process metrics. */
export function createWebMetrics(defaults = true): WebMetrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: 'form_data_http_requests_total',
      help: 'HTTP requests by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    }),
    duration: new Histogram({
      name: 'form_data_http_request_duration_seconds',
      help: 'HTTP request duration by route and method.',
      labelNames: ['route', 'method'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    accepted: new Counter({
      name: 'form_data_forms_accepted_total',
      help: 'Forms SQS accepted (answered 202).',
      registers,
    }),
    refused: new Counter({
      name: 'form_data_forms_refused_total',
      help: 'Form submissions refused with a 4xx, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    enqueueFailed: new Counter({
      name: 'form_data_forms_enqueue_failed_total',
      help: 'Valid forms SQS did not take (answered 503).',
      registers,
    }),
    sqsSendDuration: new Histogram({
      name: 'form_data_sqs_send_duration_seconds',
      help: 'Duration of SQS send requests (SendMessage or SendMessageBatch), by result.',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    sqsSends: new Counter({
      name: 'form_data_sqs_send_requests_total',
      help: 'SQS send requests (SendMessage or SendMessageBatch) by result.',
      labelNames: ['result'],
      registers,
    }),
    sendBatchSize: new Histogram({
      name: 'form_data_sqs_send_batch_size',
      help: 'Entries per SQS send request.',
      buckets: [1, 2, 3, 5, 8, 10],
      registers,
    }),
  };
}
