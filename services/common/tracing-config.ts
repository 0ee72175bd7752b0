/**
 * Tracing configuration from the standard OpenTelemetry variables (the SDK
 * environment specification), checked at start-up like every other setting.
 * docs/tracing.md's table is checked against `TRACING_SETTINGS`.
 */
import { ConfigError } from './errors.ts';
import { readVariable, type Env } from './env.ts';

/** One documented OTEL_* variable (its values are checked by `loadTracingConfig`, not by the SETTINGS reader). */
export interface TracingSetting {
  names: readonly string[];
  default: string;
  allowed: string;
  description: string;
}

export const PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof PROTOCOLS)[number];

export const SAMPLERS = [
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
  'always_on',
  'always_off',
  'traceidratio',
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export const PROPAGATORS = ['tracecontext', 'baggage', 'none'] as const;
export type PropagatorName = Exclude<(typeof PROPAGATORS)[number], 'none'>;

/** The standard variables form-data reads, in docs/tracing.md order. */
export const TRACING_SETTINGS: readonly TracingSetting[] = [
  {
    names: ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],
    default: 'none',
    allowed: 'http(s) URL',
    description: 'Where spans are sent, used as given; setting it (or the next) turns tracing on.',
  },
  {
    names: ['OTEL_EXPORTER_OTLP_ENDPOINT'],
    default: 'none',
    allowed: 'http(s) URL',
    description: 'Base URL of the collector; spans go to <base>/v1/traces.',
  },
  {
    names: ['OTEL_SDK_DISABLED'],
    default: 'false',
    allowed: 'true/false',
    description: 'true turns tracing off whatever else is set.',
  },
  {
    names: ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL'],
    default: 'http/protobuf',
    allowed: PROTOCOLS.join(', '),
    description: 'OTLP encoding (grpc is not built in).',
  },
  {
    names: ['OTEL_EXPORTER_OTLP_TRACES_HEADERS'],
    default: 'none',
    allowed: 'key=value,…',
    description: 'Headers of export requests (an API key); win over the next per key.',
  },
  {
    names: ['OTEL_EXPORTER_OTLP_HEADERS'],
    default: 'none',
    allowed: 'key=value,…',
    description: 'Headers of export requests, for every signal.',
  },
  {
    names: ['OTEL_SERVICE_NAME'],
    default: 'form-data-web / form-data-worker',
    allowed: 'string',
    description: 'service.name of the spans.',
  },
  {
    names: ['OTEL_RESOURCE_ATTRIBUTES'],
    default: 'none',
    allowed: 'key=value,…',
    description: 'More resource attributes (deployment.environment.name=production, …).',
  },
  {
    names: ['OTEL_TRACES_SAMPLER'],
    default: 'parentbased_always_on',
    allowed: SAMPLERS.join(', '),
    description: "Which traces are recorded; parent-based ones follow the caller's decision.",
  },
  {
    names: ['OTEL_TRACES_SAMPLER_ARG'],
    default: '1',
    allowed: '0–1',
    description: 'Ratio of the traceidratio samplers.',
  },
  {
    names: ['OTEL_PROPAGATORS'],
    default: 'tracecontext,baggage',
    allowed: 'tracecontext, baggage, none (comma-separated)',
    description: 'Context formats read from requests and written into queue messages.',
  },
];

/** The checked tracing configuration; `endpoint` undefined means tracing is off. */
export interface TracingConfig {
  /** URL spans are posted to; undefined: off. */
  endpoint: string | undefined;
  protocol: OtlpProtocol;
  /** Export request headers (secrets: never logged). */
  headers: Record<string, string>;
  /** OTEL_SERVICE_NAME; undefined: the service's default name. */
  serviceName: string | undefined;
  resourceAttributes: Record<string, string>;
  sampler: SamplerName;
  samplerRatio: number;
  propagators: PropagatorName[];
}

function value(env: Env, name: string): string | undefined {
  return readVariable(env, [name]).value;
}

function endpointUrl(name: string, text: string): URL {
  try {
    const url = new URL(text);
    if (url.protocol === 'http:' || url.protocol === 'https:') return url;
  } catch {
    // reported below
  }
  throw new ConfigError(name, text, 'a URL starting with http: or https:');
}

/** `key=value,key2=value2` with percent-encoded values (the specification's W3C-baggage-like list). */
function keyValues(env: Env, name: string): Record<string, string> {
  const text = value(env, name);
  const out: Record<string, string> = {};
  if (text === undefined) return out;
  for (const pair of text.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq).trim() : '';
    let decoded: string | undefined;
    try {
      decoded = eq > 0 ? decodeURIComponent(pair.slice(eq + 1).trim()) : undefined;
    } catch {
      decoded = undefined;
    }
    if (key === '' || decoded === undefined)
      throw new ConfigError(name, text, 'a list of key=value pairs separated by commas, values percent-encoded');
    out[key] = decoded;
  }
  return out;
}

/**
 * Reads the OTEL_* variables. Tracing is on when an OTLP endpoint is set and
 * OTEL_SDK_DISABLED is not true.
 * @throws ConfigError naming the variable and what is allowed (header values are never shown).
 */
export function loadTracingConfig(env: Env): TracingConfig {
  const disabledText = (value(env, 'OTEL_SDK_DISABLED') ?? 'false').toLowerCase();
  if (disabledText !== 'true' && disabledText !== 'false')
    throw new ConfigError('OTEL_SDK_DISABLED', disabledText, 'true or false');
  const tracesEndpoint = value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const baseEndpoint = value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  let endpoint: string | undefined;
  if (tracesEndpoint !== undefined) endpoint = endpointUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', tracesEndpoint).href;
  else if (baseEndpoint !== undefined) {
    const base = endpointUrl('OTEL_EXPORTER_OTLP_ENDPOINT', baseEndpoint).href;
    endpoint = `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
  }
  const protocolName =
    value(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') !== undefined
      ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
      : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocolText = (value(env, protocolName) ?? 'http/protobuf').toLowerCase();
  const protocol = PROTOCOLS.find((p) => p === protocolText);
  if (protocol === undefined) throw new ConfigError(protocolName, protocolText, `one of ${PROTOCOLS.join(', ')}`);
  const samplerText = (value(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on').toLowerCase();
  const sampler = SAMPLERS.find((s) => s === samplerText);
  if (sampler === undefined) throw new ConfigError('OTEL_TRACES_SAMPLER', samplerText, `one of ${SAMPLERS.join(', ')}`);
  const ratioText = value(env, 'OTEL_TRACES_SAMPLER_ARG') ?? '1';
  const samplerRatio = /^\d*\.?\d+$/.test(ratioText) ? Number(ratioText) : Number.NaN;
  if (!(samplerRatio >= 0 && samplerRatio <= 1))
    throw new ConfigError('OTEL_TRACES_SAMPLER_ARG', ratioText, 'a number from 0 to 1');
  const propagatorNames = (value(env, 'OTEL_PROPAGATORS') ?? 'tracecontext,baggage')
    .toLowerCase()
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const propagators: PropagatorName[] = [];
  for (const name of propagatorNames) {
    if (name === 'none') continue;
    if (name !== 'tracecontext' && name !== 'baggage')
      throw new ConfigError('OTEL_PROPAGATORS', name, PROPAGATORS.join(', '));
    if (!propagators.includes(name)) propagators.push(name);
  }
  return {
    endpoint: disabledText === 'true' ? undefined : endpoint,
    protocol,
    headers: {
      ...keyValues(env, 'OTEL_EXPORTER_OTLP_HEADERS'),
      ...keyValues(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
    },
    serviceName: value(env, 'OTEL_SERVICE_NAME'),
    resourceAttributes: keyValues(env, 'OTEL_RESOURCE_ATTRIBUTES'),
    sampler,
    samplerRatio,
    propagators: propagatorNames.includes('none') ? [] : propagators,
  };
}
