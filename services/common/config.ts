/**
 * Configuration from environment variables, checked once at start-up.
 *
 * Every setting is declared once in `SETTINGS` (name, default, allowed values,
 * description); the README's configuration table is checked against it.
 */
import { ConfigError } from './errors.ts';
import { loadTracingConfig, type TracingConfig } from './tracing-config.ts';

export type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Declaration of one environment variable. */
export interface Setting {
  /** Variable name; the first of `names` wins when several are given. */
  names: readonly string[];
  /** Default as written in the README, or `none`. */
  default: string;
  /** Allowed values, as written in the README. */
  allowed: string;
  /** What it does. */
  description: string;
}

/** All settings, in README order. */
export const SETTINGS: readonly Setting[] = [
  { names: ['SQS_REGION_NAME'], default: 'eu-west-1', allowed: 'AWS region', description: 'Region of the SQS queues.' },
  { names: ['SQS_FORM_DATA_QUEUE_NAME'], default: 'directory-form-data', allowed: 'queue name', description: 'Queue the web writes forms to and the worker reads.' },
  {
    names: ['SQS_INVALID_MESAGES_QUEUE_NAME', 'SQS_INVALID_MESSAGES_QUEUE_NAME'],
    default: 'directory-form-data-invalid',
    allowed: 'queue name',
    description: 'Queue for messages the worker cannot store (the misspelt name is the one the replaced service used; both are read).',
  },
  { names: ['SQS_WAIT_TIME'], default: '20', allowed: '0–20', description: 'Long-poll wait time of ReceiveMessage, in seconds.' },
  { names: ['SQS_MAX_NUMBER_OF_MESSAGES'], default: '10', allowed: '1–10', description: 'Messages per ReceiveMessage.' },
  { names: ['SQS_VISIBILITY_TIMEOUT'], default: '21600', allowed: '0–43200', description: 'Visibility timeout of received messages, in seconds.' },
  { names: ['SQS_ENDPOINT_URL'], default: 'none', allowed: 'http(s) URL', description: 'SQS-compatible endpoint (an emulator); unset means AWS.' },
  { names: ['SQS_CREATE_QUEUES'], default: 'false', allowed: 'true/false', description: 'Create missing queues at start-up (local use).' },
  { names: ['SQS_REQUEST_TIMEOUT_MS'], default: '3000', allowed: '100–60000', description: 'Timeout of one SQS request (a long poll gets the wait time on top).' },
  { names: ['SQS_MAX_ATTEMPTS'], default: '2', allowed: '1–10', description: 'Attempts per SQS call, the first included.' },
  { names: ['SQS_SEND_BATCHING'], default: 'true', allowed: 'true/false', description: 'Web: coalesce concurrent submissions into SendMessageBatch.' },
  { names: ['SQS_SEND_BATCH_WINDOW_MS'], default: '2', allowed: '0–100', description: 'Web: how long a batch waits for more entries before it is sent.' },
  { names: ['SQS_RETRY_BACKOFF_BASE_SECONDS'], default: '5', allowed: '1–3600', description: 'Worker: visibility delay of a message that could not be stored, doubled at each further receive.' },
  { names: ['SQS_RETRY_BACKOFF_MAX_SECONDS'], default: '300', allowed: '1–43200', description: 'Worker: cap of that backoff.' },
  { names: ['WORKER_CONCURRENCY'], default: '16', allowed: '1–32', description: 'Worker: most concurrent poll loops per process; a full poll lets one more loop poll, a partial one one fewer (at least one).' },
  { names: ['DATABASE_URL'], default: 'postgres://test:test@localhost:5432/directory-form-data-test', allowed: 'postgres:// URL', description: 'PostgreSQL connection string.' },
  { names: ['WORKER_INSERT_MAX_ROWS'], default: '100', allowed: '1–1000', description: 'Worker: most rows per INSERT; the poll loops\' valid forms are stored together, one statement per flush.' },
  { names: ['WORKER_INSERT_WINDOW_MS'], default: '2', allowed: '0–100', description: 'Worker: how long waiting rows wait for more before their INSERT starts (unless it is full).' },
  { names: ['DATABASE_POOL_MAX'], default: '2', allowed: '1–100', description: 'Worker: database connections per process, and INSERTs in flight (see docs/database.md for the connection budget).' },
  { names: ['DATABASE_TIMEOUT_MS'], default: '5000', allowed: '100–600000', description: 'Connect, pool-acquire and statement timeout (the CSV export uses it only to connect).' },
  { names: ['UI_SECRET'], default: 'none', allowed: 'string', description: 'Shared secret of request signatures; required by the web unless DISABLE_SIGNATURE_CHECK.' },
  { names: ['DISABLE_SIGNATURE_CHECK'], default: 'false', allowed: 'true/false', description: 'Web: accept unsigned requests. Local use only.' },
  { names: ['PORT'], default: '8000', allowed: '0–65535', description: 'Web: HTTP port (also health and metrics).' },
  { names: ['HEALTH_PORT'], default: '8001', allowed: '0–65535', description: 'Worker: port of health probes and metrics.' },
  { names: ['LOG_LEVEL'], default: 'info', allowed: LOG_LEVELS.join(', '), description: 'pino log level.' },
  { names: ['LOG_FORMAT'], default: 'json', allowed: LOG_FORMATS.join(', '), description: 'JSON lines, or coloured one-line text for local runs (pino-pretty).' },
  { names: ['QUEUE_METRICS_INTERVAL_SECONDS'], default: '30', allowed: '0–3600', description: 'Worker: how often it reads the queues\' depth (GetQueueAttributes) for its metrics; 0 turns it off.' },
  { names: ['SENTRY_DSN'], default: 'none', allowed: 'Sentry DSN', description: 'Send unexpected errors to Sentry; unset sends nothing and loads no Sentry code.' },
  { names: ['SENTRY_ENVIRONMENT'], default: 'none', allowed: 'string', description: 'Environment name attached to Sentry events (production, staging, …).' },
  { names: ['MAX_BODY_BYTES'], default: '65536', allowed: '1024–204800', description: 'Web: largest accepted request body.' },
  { names: ['SHUTDOWN_DELAY_MS'], default: '5000', allowed: '0–120000', description: 'Web: time between failing readiness and closing the server on SIGTERM.' },
  {
    names: ['IDEMPOTENCY_WINDOW_SECONDS'],
    default: '86400',
    allowed: '0–1209600',
    description:
      'A repeat of the same signed request (path and body) within this many seconds is the same submission; ' +
      'submission ids and Idempotency-Key values are kept as long ' +
      '(0 turns content identity off; ids and keys are then kept for the default).',
  },
];

/** The validated configuration both services read. */
export interface Config {
  sqs: {
    region: string;
    formQueueName: string;
    invalidQueueName: string;
    waitTimeSeconds: number;
    maxNumberOfMessages: number;
    visibilityTimeoutSeconds: number;
    endpoint: string | undefined;
    createQueues: boolean;
    requestTimeoutMs: number;
    maxAttempts: number;
    sendBatching: boolean;
    sendBatchWindowMs: number;
    retryBackoffBaseSeconds: number;
    retryBackoffMaxSeconds: number;
  };
  worker: {
    concurrency: number;
    /** Most rows per INSERT of the coalescing writer. */
    insertMaxRows: number;
    /** Wait of the first waiting row for more, in ms. */
    insertWindowMs: number;
  };
  database: { url: string; poolMax: number; timeoutMs: number };
  web: {
    port: number;
    uiSecret: string | undefined;
    signatureCheck: boolean;
    maxBodyBytes: number;
    shutdownDelayMs: number;
  };
  healthPort: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Worker: interval of queue depth reads, in ms; 0 = off. */
  queueMetricsIntervalMs: number;
  sentry: { dsn: string | undefined; environment: string | undefined };
  /** OpenTelemetry, from the standard OTEL_* variables (docs/tracing.md). */
  tracing: TracingConfig;
  idempotency: {
    /** Seconds a repeat of the same request is the same submission; 0: off. */
    windowSeconds: number;
    /** Seconds a stored submission id keeps later copies out: the window, or its default when the window is 0. */
    keyLifetimeSeconds: number;
  };
}

class Reader {
  private readonly env: Env;
  constructor(env: Env) {
    this.env = env;
  }

  /** Raw value of the first name that is set (empty counts as unset). */
  raw(name: string): { name: string; value: string | undefined } {
    const setting = SETTINGS.find((s) => s.names[0] === name);
    if (!setting) throw new Error(`undeclared setting ${name}`);
    for (const n of setting.names) {
      const value = this.env[n];
      if (value !== undefined && value.trim() !== '') return { name: n, value: value.trim() };
    }
    return { name, value: undefined };
  }

  defaultOf(name: string): string {
    const setting = SETTINGS.find((s) => s.names[0] === name);
    return setting?.default ?? 'none';
  }

  string(name: string): string {
    return this.raw(name).value ?? this.defaultOf(name);
  }

  optional(name: string): string | undefined {
    return this.raw(name).value;
  }

  int(name: string, min: number, max: number): number {
    const { name: used, value } = this.raw(name);
    const text = value ?? this.defaultOf(name);
    const n = /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(used, text, `an integer from ${min} to ${max}`);
    }
    return n;
  }

  bool(name: string): boolean {
    const { name: used, value } = this.raw(name);
    const text = (value ?? this.defaultOf(name)).toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(text)) return true;
    if (['false', '0', 'no', 'off'].includes(text)) return false;
    throw new ConfigError(used, value ?? '', 'true or false');
  }

  url(name: string, protocols: readonly string[]): string | undefined {
    const { name: used, value } = this.raw(name);
    const text = value ?? (this.defaultOf(name) === 'none' ? undefined : this.defaultOf(name));
    if (text === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      throw new ConfigError(used, redact(text), `a URL starting with ${protocols.join(' or ')}`);
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(used, redact(text), `a URL starting with ${protocols.join(' or ')}`);
    }
    return text;
  }

  oneOf<T extends string>(name: string, values: readonly T[]): T {
    const { name: used, value } = this.raw(name);
    const text = (value ?? this.defaultOf(name)).toLowerCase();
    const found = values.find((v) => v === text);
    if (found === undefined) throw new ConfigError(used, value ?? '', `one of ${values.join(', ')}`);
    return found;
  }

  name(name: string): string {
    const { name: used, value } = this.raw(name);
    const text = value ?? this.defaultOf(name);
    if (!/^[A-Za-z0-9_-]{1,80}(\.fifo)?$/.test(text)) {
      throw new ConfigError(used, text, 'a queue name of 1–80 letters, digits, - or _');
    }
    return text;
  }
}

/** Hides the password of a connection string in error messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):([^@]*)@/, '//$1:***@');
}

/**
 * Reads and checks the configuration.
 * @throws ConfigError naming the variable, the value and what is allowed.
 */
export function loadConfig(env: Env = process.env): Config {
  const r = new Reader(env);
  const waitTimeSeconds = r.int('SQS_WAIT_TIME', 0, 20);
  const concurrency = r.int('WORKER_CONCURRENCY', 1, 32);
  const poolMax = r.int('DATABASE_POOL_MAX', 1, 100);
  const retryBackoffBaseSeconds = r.int('SQS_RETRY_BACKOFF_BASE_SECONDS', 1, 3600);
  const windowSeconds = r.int('IDEMPOTENCY_WINDOW_SECONDS', 0, 1209600);
  const retryBackoffMaxSeconds = r.int('SQS_RETRY_BACKOFF_MAX_SECONDS', 1, 43200);
  if (retryBackoffMaxSeconds < retryBackoffBaseSeconds) {
    throw new ConfigError('SQS_RETRY_BACKOFF_MAX_SECONDS', String(retryBackoffMaxSeconds), `at least SQS_RETRY_BACKOFF_BASE_SECONDS (${retryBackoffBaseSeconds})`);
  }
  return {
    sqs: {
      region: r.string('SQS_REGION_NAME'),
      formQueueName: r.name('SQS_FORM_DATA_QUEUE_NAME'),
      invalidQueueName: r.name('SQS_INVALID_MESAGES_QUEUE_NAME'),
      waitTimeSeconds,
      maxNumberOfMessages: r.int('SQS_MAX_NUMBER_OF_MESSAGES', 1, 10),
      visibilityTimeoutSeconds: r.int('SQS_VISIBILITY_TIMEOUT', 0, 43200),
      endpoint: r.url('SQS_ENDPOINT_URL', ['http:', 'https:']),
      createQueues: r.bool('SQS_CREATE_QUEUES'),
      requestTimeoutMs: r.int('SQS_REQUEST_TIMEOUT_MS', 100, 60000),
      maxAttempts: r.int('SQS_MAX_ATTEMPTS', 1, 10),
      sendBatching: r.bool('SQS_SEND_BATCHING'),
      sendBatchWindowMs: r.int('SQS_SEND_BATCH_WINDOW_MS', 0, 100),
      retryBackoffBaseSeconds,
      retryBackoffMaxSeconds,
    },
    worker: { concurrency, insertMaxRows: r.int('WORKER_INSERT_MAX_ROWS', 1, 1000), insertWindowMs: r.int('WORKER_INSERT_WINDOW_MS', 0, 100) },
    database: {
      url: r.url('DATABASE_URL', ['postgres:', 'postgresql:']) ?? '',
      poolMax,
      timeoutMs: r.int('DATABASE_TIMEOUT_MS', 100, 600000),
    },
    web: {
      port: r.int('PORT', 0, 65535),
      uiSecret: r.optional('UI_SECRET'),
      signatureCheck: !r.bool('DISABLE_SIGNATURE_CHECK'),
      maxBodyBytes: r.int('MAX_BODY_BYTES', 1024, 204800),
      shutdownDelayMs: r.int('SHUTDOWN_DELAY_MS', 0, 120000),
    },
    healthPort: r.int('HEALTH_PORT', 0, 65535),
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS),
    logFormat: r.oneOf('LOG_FORMAT', LOG_FORMATS),
    queueMetricsIntervalMs: r.int('QUEUE_METRICS_INTERVAL_SECONDS', 0, 3600) * 1000,
    sentry: { dsn: r.url('SENTRY_DSN', ['http:', 'https:']), environment: r.optional('SENTRY_ENVIRONMENT') },
    tracing: loadTracingConfig(env),
    idempotency: {
      windowSeconds,
      keyLifetimeSeconds: windowSeconds > 0 ? windowSeconds : Number(r.defaultOf('IDEMPOTENCY_WINDOW_SECONDS')),
    },
  };
}

/**
 * Checks what only the web needs: a secret unless signatures are off.
 * @throws ConfigError
 */
export function assertWebConfig(config: Config): void {
  if (config.web.signatureCheck && !config.web.uiSecret) {
    throw new ConfigError('UI_SECRET', '', 'a non-empty secret (or DISABLE_SIGNATURE_CHECK=true for local use)');
  }
}
