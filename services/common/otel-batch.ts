/**
 * The span batching variables of the OpenTelemetry SDK environment
 * specification (OTEL_BSP_*), which `@opentelemetry/sdk-trace` 3.x no longer
 * reads itself: its BatchSpanProcessor takes only constructor options, so they
 * are read here and passed to it (services/common/otel.ts). Read only when
 * tracing is on; a malformed value stops the process like any setting.
 * OTEL_EXPORTER_OTLP_TIMEOUT (and OTEL_EXPORTER_OTLP_TRACES_TIMEOUT) the OTLP
 * exporter still reads itself. docs/tracing.md's table is checked against
 * BATCH_SETTINGS.
 */
import { ConfigError } from './errors.ts';

/** The BatchSpanProcessor's options these variables set. */
export interface BatchOptions {
  scheduledDelayMillis: number;
  exportTimeoutMillis: number;
  maxQueueSize: number;
  maxExportBatchSize: number;
}

export interface BatchSetting {
  name: string;
  option: keyof BatchOptions;
  /** The specification's default. */
  default: number;
  min: number;
  description: string;
}

export const BATCH_SETTINGS: readonly BatchSetting[] = [
  {
    name: 'OTEL_BSP_SCHEDULE_DELAY',
    option: 'scheduledDelayMillis',
    default: 5000,
    min: 0,
    description: 'Most time, in ms, an ended span waits before its batch is exported.',
  },
  {
    name: 'OTEL_BSP_EXPORT_TIMEOUT',
    option: 'exportTimeoutMillis',
    default: 30000,
    min: 0,
    description: 'Most time, in ms, one export may take before it is given up.',
  },
  {
    name: 'OTEL_BSP_MAX_QUEUE_SIZE',
    option: 'maxQueueSize',
    default: 2048,
    min: 1,
    description: 'Most ended spans waiting for export; more are dropped.',
  },
  {
    name: 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
    option: 'maxExportBatchSize',
    default: 512,
    min: 1,
    description: 'Most spans per export request (at most OTEL_BSP_MAX_QUEUE_SIZE).',
  },
];

/** The BatchSpanProcessor's options from `env`; throws a ConfigError naming a malformed variable. */
export function batchOptions(env: Record<string, string | undefined>): BatchOptions {
  const out = {} as BatchOptions;
  for (const s of BATCH_SETTINGS) {
    const text = env[s.name]?.trim();
    const value = text === undefined || text === '' ? s.default : Number(text);
    if (!Number.isInteger(value) || value < s.min) throw new ConfigError(s.name, text ?? '', `an integer ≥ ${s.min}`);
    out[s.option] = value;
  }
  if (out.maxExportBatchSize > out.maxQueueSize)
    throw new ConfigError(
      'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
      String(out.maxExportBatchSize),
      `at most OTEL_BSP_MAX_QUEUE_SIZE (${out.maxQueueSize})`,
    );
  return out;
}
