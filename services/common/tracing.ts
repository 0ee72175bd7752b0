/**
 * Tracing as the services see it. Without an OTLP endpoint every call is a
 * no-op and no OpenTelemetry module is loaded; with one, `createTracing`
 * imports ./otel.ts (the SDK) and returns its implementation.
 */
import type { TracingConfig } from './tracing-config.ts';

export type SpanKind = 'server' | 'client' | 'producer' | 'consumer' | 'internal';
export type Attributes = Readonly<Record<string, string | number | boolean | undefined>>;
/** A propagated context as carried in HTTP headers or SQS message attributes (traceparent, tracestate, baggage). */
export type Carrier = Readonly<Record<string, string>>;

/** W3C fields the services read and write; the worker asks SQS for exactly these message attributes. */
export const CARRIER_FIELDS = ['traceparent', 'tracestate', 'baggage'] as const;

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /** Parent: a remote context (headers, message attributes) or a span. Default: the active span. */
  parent?: Carrier | TraceSpan;
  /** Start a new trace, ignoring the active span. Default false. */
  root?: boolean;
  /** Linked contexts (a batch's messages, their creation contexts). */
  links?: readonly (Carrier | TraceSpan)[];
}

/** One span; all methods are no-ops when tracing is off or the span is not sampled. */
export interface TraceSpan {
  setAttributes(attributes: Attributes): void;
  /** Status ERROR, with `error.type` (an error's name, an HTTP status). */
  fail(errorType: string, message?: string): void;
  /** Runs `fn` with this span active (child spans and log lines see it). */
  run<T>(fn: () => T): T;
  /** This span's context in the configured propagation formats, to put into a message. */
  carrier(): Record<string, string>;
  /** `trace_id` and `span_id`, for a log line; empty when not recording. */
  logFields(): Record<string, string>;
  end(): void;
}

export interface Tracing {
  readonly enabled: boolean;
  start(name: string, options?: SpanOptions): TraceSpan;
  /** Runs `fn` in a new active span and ends it; a throw fails the span with the error's name and is rethrown. */
  inSpan<T>(name: string, options: SpanOptions, fn: (span: TraceSpan) => Promise<T>): Promise<T>;
  /** `trace_id` and `span_id` of the active span (the logger's mixin); empty when none. */
  logFields(): Record<string, string>;
  /** Exports what is pending and stops. */
  close(): Promise<void>;
}

const NO_FIELDS: Record<string, string> = Object.freeze({}) as Record<string, string>;

export const noSpan: TraceSpan = {
  setAttributes: () => {},
  fail: () => {},
  run: (fn) => fn(),
  carrier: () => ({}),
  logFields: () => NO_FIELDS,
  end: () => {},
};

/** The tracing used when it is off. */
export const noTracing: Tracing = {
  enabled: false,
  start: () => noSpan,
  inSpan: (_name, _options, fn) => fn(noSpan),
  logFields: () => NO_FIELDS,
  close: async () => {},
};

/** Builds tracing for one service (`web`, `worker`): the SDK when an endpoint is configured, `noTracing` otherwise. */
export async function createTracing(config: TracingConfig, service: string): Promise<Tracing> {
  if (config.endpoint === undefined) return noTracing;
  const { createOtelTracing } = await import('./otel.ts');
  return createOtelTracing(config, config.endpoint, `form-data-${service}`);
}

/**
 * Attribute names of the OpenTelemetry semantic conventions the services set,
 * written once here (a test checks them against @opentelemetry/semantic-conventions).
 */
export const ATTR = {
  httpMethod: 'http.request.method',
  httpRoute: 'http.route',
  httpStatus: 'http.response.status_code',
  urlPath: 'url.path',
  urlScheme: 'url.scheme',
  errorType: 'error.type',
  messagingSystem: 'messaging.system',
  messagingOperationType: 'messaging.operation.type',
  messagingOperationName: 'messaging.operation.name',
  messagingDestination: 'messaging.destination.name',
  messagingMessageId: 'messaging.message.id',
  messagingBatchCount: 'messaging.batch.message_count',
  dbSystem: 'db.system.name',
  dbOperation: 'db.operation.name',
  dbCollection: 'db.collection.name',
  dbNamespace: 'db.namespace',
  dbQuerySummary: 'db.query.summary',
  dbBatchSize: 'db.operation.batch.size',
  serverAddress: 'server.address',
  serverPort: 'server.port',
} as const;

/** form-data's own attributes (ids and outcomes, never form values). */
export const FORM_ATTR = {
  requestId: 'form_data.request_id',
  outcome: 'form_data.outcome',
  receiveCount: 'form_data.receive_count',
  invalidReason: 'form_data.invalid_reason',
} as const;

/** Value of messaging.system for SQS. */
export const AWS_SQS = 'aws_sqs';

/** Message attributes SQS allows per message. */
export const SQS_MAX_MESSAGE_ATTRIBUTES = 10;

/** An SQS String message attribute. */
export interface StringAttribute {
  DataType: 'String';
  StringValue: string;
}

/**
 * The message attributes of a message: `own` plus the trace context, when
 * there is room. A message never loses its own attributes or fails to send
 * for lack of room: the trace attributes are the ones left out (all of them,
 * so a traceparent never travels without its tracestate).
 */
export function withTraceAttributes<A>(
  own: Readonly<Record<string, A>>,
  carrier: Carrier,
): Record<string, A | StringAttribute> {
  const trace = Object.entries(carrier).filter(([name, v]) => v !== '' && !Object.hasOwn(own, name));
  if (trace.length === 0 || Object.keys(own).length + trace.length > SQS_MAX_MESSAGE_ATTRIBUTES) return { ...own };
  return {
    ...own,
    ...Object.fromEntries(trace.map(([name, v]) => [name, { DataType: 'String', StringValue: v } as StringAttribute])),
  };
}

/** Bytes SQS counts for message attributes: each name, data type and value. */
export function attributesBytes(
  attributes: Readonly<Record<string, { DataType?: string; StringValue?: string }>> | undefined,
): number {
  let bytes = 0;
  for (const [name, a] of Object.entries(attributes ?? {})) {
    bytes +=
      Buffer.byteLength(name, 'utf8') +
      Buffer.byteLength(a.DataType ?? '', 'utf8') +
      Buffer.byteLength(a.StringValue ?? '', 'utf8');
  }
  return bytes;
}

/** The trace context carried by a received message's attributes. */
export function carrierOf(
  attributes: Readonly<Record<string, { StringValue?: string }>> | undefined,
): Record<string, string> {
  const carrier: Record<string, string> = {};
  for (const field of CARRIER_FIELDS) {
    const v = attributes?.[field]?.StringValue;
    if (typeof v === 'string' && v !== '') carrier[field] = v;
  }
  return carrier;
}
