/**
 * The OpenTelemetry implementation of `Tracing`, imported only when tracing is
 * on. Its provider, context manager and propagators are private instances,
 * never the API's globals: Sentry's Node SDK registers OpenTelemetry globals
 * of its own, and neither may take the other's.
 */
import {
  ROOT_CONTEXT,
  SpanKind as OtelSpanKind,
  SpanStatusCode,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
  type Context,
  type Link,
  type Span,
  type TextMapPropagator,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import type { TracingConfig } from './tracing-config.ts';
import { batchOptions, type BatchOptions } from './otel-batch.ts';
import type { Attributes, Carrier, SpanKind, SpanOptions, TraceSpan, Tracing } from './tracing.ts';

const KINDS: Record<SpanKind, OtelSpanKind> = {
  server: OtelSpanKind.SERVER,
  client: OtelSpanKind.CLIENT,
  producer: OtelSpanKind.PRODUCER,
  consumer: OtelSpanKind.CONSUMER,
  internal: OtelSpanKind.INTERNAL,
};

function sampler(config: TracingConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.samplerRatio);
  switch (config.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

async function exporter(config: TracingConfig, url: string): Promise<SpanExporter> {
  const options = { url, headers: config.headers };
  if (config.protocol === 'http/json') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    return new OTLPTraceExporter(options);
  }
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
  return new OTLPTraceExporter(options);
}

function clean(attributes: Attributes | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(attributes ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

class OtelSpan implements TraceSpan {
  readonly span: Span;
  readonly context: Context;
  private readonly owner: OtelTracing;

  constructor(owner: OtelTracing, span: Span, parent: Context) {
    this.owner = owner;
    this.span = span;
    this.context = trace.setSpan(parent, span);
  }

  setAttributes(attributes: Attributes): void {
    this.span.setAttributes(clean(attributes));
  }

  fail(errorType: string, message?: string): void {
    this.span.setAttribute('error.type', errorType);
    this.span.setStatus({ code: SpanStatusCode.ERROR, ...(message === undefined ? {} : { message }) });
  }

  run<T>(fn: () => T): T {
    return this.owner.contextManager.with(this.context, fn);
  }

  carrier(): Record<string, string> {
    const carrier: Record<string, string> = {};
    this.owner.propagator.inject(this.context, carrier, defaultTextMapSetter);
    return carrier;
  }

  logFields(): Record<string, string> {
    return fieldsOf(this.span);
  }

  end(): void {
    this.span.end();
  }
}

function fieldsOf(span: Span | undefined): Record<string, string> {
  if (!span?.isRecording()) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

class OtelTracing implements Tracing {
  readonly enabled = true;
  readonly contextManager = new AsyncLocalStorageContextManager().enable();
  readonly propagator: TextMapPropagator;
  private readonly provider: TracerProvider;
  private readonly tracer;

  constructor(config: TracingConfig, spanExporter: SpanExporter, defaultServiceName: string, batch: BatchOptions) {
    const propagators = config.propagators.map((p) =>
      p === 'tracecontext' ? new W3CTraceContextPropagator() : new W3CBaggagePropagator(),
    );
    this.propagator = new CompositePropagator({ propagators });
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({
        ...config.resourceAttributes,
        'service.name': config.serviceName ?? config.resourceAttributes['service.name'] ?? defaultServiceName,
        ...(process.env.npm_package_version ? { 'service.version': process.env.npm_package_version } : {}),
      }),
      sampler: sampler(config),
      spanProcessors: [new BatchSpanProcessor({ exporter: spanExporter, ...batch })],
    });
    this.tracer = this.provider.getTracer('form-data');
  }

  private contextOf(ref: Carrier | TraceSpan): Context {
    if (ref instanceof OtelSpan) return ref.context;
    return this.propagator.extract(ROOT_CONTEXT, ref, defaultTextMapGetter);
  }

  start(name: string, options: SpanOptions = {}): TraceSpan {
    const parent =
      options.parent !== undefined
        ? this.contextOf(options.parent)
        : options.root
          ? ROOT_CONTEXT
          : this.contextManager.active();
    const links: Link[] = [];
    for (const ref of options.links ?? []) {
      const context = trace.getSpanContext(this.contextOf(ref));
      if (context && trace.isSpanContextValid(context)) links.push({ context });
    }
    const span = this.tracer.startSpan(
      name,
      { kind: KINDS[options.kind ?? 'internal'], attributes: clean(options.attributes), links },
      parent,
    );
    return new OtelSpan(this, span, parent);
  }

  async inSpan<T>(name: string, options: SpanOptions, fn: (span: TraceSpan) => Promise<T>): Promise<T> {
    const span = this.start(name, options);
    try {
      return await span.run(() => fn(span));
    } catch (error) {
      span.fail(error instanceof Error ? error.name : 'Error');
      throw error;
    } finally {
      span.end();
    }
  }

  logFields(): Record<string, string> {
    return fieldsOf(trace.getSpan(this.contextManager.active()));
  }

  async close(): Promise<void> {
    await this.provider.shutdown();
    this.contextManager.disable();
  }
}

/** Tracing exporting over OTLP/HTTP to `url`, batched as the OTEL_BSP_* variables of `env` say. */
export async function createOtelTracing(
  config: TracingConfig,
  url: string,
  defaultServiceName: string,
  env: Record<string, string | undefined> = process.env,
): Promise<Tracing> {
  const batch = batchOptions(env);
  return new OtelTracing(config, await exporter(config, url), defaultServiceName, batch);
}
