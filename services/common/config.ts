/**
 * Configuration from environment variables, checked once at start-up.
 *
 * Every setting is declared once in `SETTINGS`: name, default, kind and bounds,
 * description. `loadConfig` enforces what the declaration says; the README's
 * table and the chart's values schema are checked against it.
 */
import { readVariable, type Env } from './env.ts';
import { ConfigError } from './errors.ts';
import { LOG_CODES } from './log-codes.ts';
import { loadTracingConfig, type TracingConfig } from './tracing-config.ts';

export type { Env };

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** What values a setting takes; `loadConfig` enforces it and `allowedOf` writes it for the docs. */
export type SettingKind =
  /** An integer from `min` to `max`, both included. */
  | { kind: 'int'; min: number; max: number }
  /** true/1/yes/on or false/0/no/off. */
  | { kind: 'bool' }
  /** One of `values` (case-insensitive). */
  | { kind: 'oneOf'; values: readonly string[] }
  /** A comma-separated, non-empty subset of `values` (case-insensitive). */
  | { kind: 'subsetOf'; values: readonly string[] }
  /** An SQS queue name: 1–80 letters, digits, - or _ (.fifo allowed). */
  | { kind: 'queueName' }
  /** A URL with one of `protocols`; `label` is how the docs call it. */
  | { kind: 'url'; protocols: readonly string[]; label: string }
  /** Any text; `label` is how the docs call it. */
  | { kind: 'text'; label: string };

/** Declaration of one environment variable. */
export type Setting = SettingKind & {
  /** Variable name; the first of `names` wins when several are given. */
  names: readonly string[];
  /** Default as written in the README, or `none`. */
  default: string;
  /** What it does. */
  description: string;
};

/** The allowed values of a setting, as the README's table writes them. */
export function allowedOf(setting: SettingKind): string {
  switch (setting.kind) {
    case 'int':
      return `${setting.min}–${setting.max}`;
    case 'bool':
      return 'true/false';
    case 'oneOf':
      return setting.values.join(', ');
    case 'subsetOf':
      return `${setting.values.join(', ')} (comma-separated)`;
    case 'queueName':
      return 'queue name';
    case 'url':
    case 'text':
      return setting.label;
  }
}

const HTTP = ['http:', 'https:'] as const;

/** Signature schemes of POST /form/ (docs/security.md): the registration UI's, and the HMAC one with a timestamp. */
export const SIGNATURE_SCHEMES = ['legacy', 'v1'] as const;
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

/** Fewest characters of a UI secret unless UI_SECRET_ALLOW_SHORT (`openssl rand -hex 32` gives 64). */
export const MIN_SECRET_LENGTH = 32;

/** All settings, in README order. */
export const SETTINGS: readonly Setting[] = [
  {
    names: ['SQS_REGION_NAME'],
    default: 'eu-west-1',
    kind: 'text',
    label: 'AWS region',
    description: 'Region of the SQS queues.',
  },
  {
    names: ['SQS_FORM_DATA_QUEUE_NAME'],
    default: 'directory-form-data',
    kind: 'queueName',
    description: 'Queue the web writes forms to and the worker reads.',
  },
  {
    names: ['SQS_INVALID_MESAGES_QUEUE_NAME', 'SQS_INVALID_MESSAGES_QUEUE_NAME'],
    default: 'directory-form-data-invalid',
    kind: 'queueName',
    description:
      'Queue for messages the worker cannot store (the misspelt name is the one the replaced service used; both are read).',
  },
  {
    names: ['SQS_ORIGINAL_QUEUE_NAME'],
    default: 'none',
    kind: 'queueName',
    description:
      "During the cut-over only: the replaced service's live queue (its SQS_INVALID_MESAGES_QUEUE_NAME), which the worker then also reads (docs/cut-over.md); unset after it.",
  },
  {
    names: ['SQS_WAIT_TIME'],
    default: '20',
    kind: 'int',
    min: 0,
    max: 20,
    description: 'Long-poll wait time of ReceiveMessage, in seconds.',
  },
  {
    names: ['SQS_MAX_NUMBER_OF_MESSAGES'],
    default: '10',
    kind: 'int',
    min: 1,
    max: 10,
    description: 'Messages per ReceiveMessage.',
  },
  {
    names: ['SQS_VISIBILITY_TIMEOUT'],
    default: '21600',
    kind: 'int',
    min: 0,
    max: 43200,
    description: 'Visibility timeout of received messages, in seconds.',
  },
  {
    names: ['SQS_ENDPOINT_URL'],
    default: 'none',
    kind: 'url',
    protocols: HTTP,
    label: 'http(s) URL',
    description: 'SQS-compatible endpoint (an emulator); unset means AWS.',
  },
  {
    names: ['SQS_CREATE_QUEUES'],
    default: 'false',
    kind: 'bool',
    description: 'Create missing queues at start-up (local use).',
  },
  {
    names: ['SQS_REQUEST_TIMEOUT_MS'],
    default: '3000',
    kind: 'int',
    min: 100,
    max: 60000,
    description: 'Timeout of one SQS request (a long poll gets the wait time on top).',
  },
  {
    names: ['SQS_MAX_ATTEMPTS'],
    default: '2',
    kind: 'int',
    min: 1,
    max: 10,
    description: 'Attempts per SQS call, the first included.',
  },
  {
    names: ['SQS_SEND_BATCHING'],
    default: 'true',
    kind: 'bool',
    description: 'Web: coalesce concurrent submissions into SendMessageBatch.',
  },
  {
    names: ['SQS_SEND_BATCH_WINDOW_MS'],
    default: '2',
    kind: 'int',
    min: 0,
    max: 100,
    description: 'Web: how long a batch waits for more entries before it is sent.',
  },
  {
    names: ['SQS_RETRY_BACKOFF_BASE_SECONDS'],
    default: '5',
    kind: 'int',
    min: 1,
    max: 3600,
    description: 'Worker: visibility delay of a message that could not be stored, doubled at each further receive.',
  },
  {
    names: ['SQS_RETRY_BACKOFF_MAX_SECONDS'],
    default: '300',
    kind: 'int',
    min: 1,
    max: 43200,
    description: 'Worker: cap of that backoff.',
  },
  {
    names: ['WORKER_CONCURRENCY'],
    default: '16',
    kind: 'int',
    min: 1,
    max: 32,
    description:
      'Worker: most concurrent poll loops per process; a full poll lets one more loop poll, a partial one one fewer (at least one).',
  },
  {
    names: ['WORKER_LIVENESS_OUTAGE_SECONDS'],
    default: '300',
    kind: 'int',
    min: 0,
    max: 86400,
    description:
      'Worker: liveness fails once SQS (receive) or the database has failed every call for this long, counted from its first failed call, and passes again as soon as both answer; 0 turns this rule off.',
  },
  {
    names: ['DATABASE_URL'],
    default: 'postgres://test:test@localhost:5432/directory-form-data-test',
    kind: 'url',
    protocols: ['postgres:', 'postgresql:'],
    label: 'postgres:// URL',
    description: 'PostgreSQL connection string.',
  },
  {
    names: ['DATABASE_WORKER_ROLE'],
    default: 'none',
    kind: 'text',
    label: 'role name',
    description:
      "Migrations: role given the worker's privileges (read, insert and clear keys on form_form), created without login if missing.",
  },
  {
    names: ['DATABASE_EXPORT_ROLE'],
    default: 'none',
    kind: 'text',
    label: 'role name',
    description: "Migrations: role given the export's privileges (read form_form), created without login if missing.",
  },
  {
    names: ['WORKER_INSERT_MAX_ROWS'],
    default: '100',
    kind: 'int',
    min: 1,
    max: 1000,
    description:
      "Worker: most rows per INSERT; the poll loops' valid forms are stored together, one statement per flush.",
  },
  {
    names: ['WORKER_INSERT_WINDOW_MS'],
    default: '2',
    kind: 'int',
    min: 0,
    max: 100,
    description: 'Worker: how long waiting rows wait for more before their INSERT starts (unless it is full).',
  },
  {
    names: ['DATABASE_POOL_MAX'],
    default: '2',
    kind: 'int',
    min: 1,
    max: 100,
    description:
      'Worker: database connections per process, and INSERTs in flight (see docs/database.md for the connection budget).',
  },
  {
    names: ['DATABASE_TIMEOUT_MS'],
    default: '5000',
    kind: 'int',
    min: 100,
    max: 600000,
    description: 'Connect, pool-acquire and statement timeout (the CSV export uses it only to connect).',
  },
  {
    names: ['UI_SECRET'],
    default: 'none',
    kind: 'text',
    label: 'string',
    description: `Shared secret of request signatures, at least ${MIN_SECRET_LENGTH} characters; required by the web unless DISABLE_SIGNATURE_CHECK.`,
  },
  {
    names: ['UI_SECRET_NEXT'],
    default: 'none',
    kind: 'text',
    label: 'string',
    description:
      'Web: a second accepted secret, for rotation without downtime (docs/security.md); signatures by either secret are accepted.',
  },
  {
    names: ['UI_SECRET_ALLOW_SHORT'],
    default: 'false',
    kind: 'bool',
    description: `Web: start with a secret shorter than ${MIN_SECRET_LENGTH} characters (compatibility only; logged as a warning).`,
  },
  {
    names: ['SIGNATURE_SCHEMES'],
    default: 'legacy,v1',
    kind: 'subsetOf',
    values: SIGNATURE_SCHEMES,
    description:
      "Web: accepted signatures: legacy (the UI's X-Signature, no timestamp) and v1 (X-Form-Signature, an HMAC with a timestamp).",
  },
  {
    names: ['SIGNATURE_TOLERANCE_SECONDS'],
    default: '300',
    kind: 'int',
    min: 1,
    max: 3600,
    description:
      'Web: how far a v1 signature timestamp may be from the clock, either way; at most the idempotency window.',
  },
  {
    names: ['DISABLE_SIGNATURE_CHECK'],
    default: 'false',
    kind: 'bool',
    description: 'Web: accept unsigned requests. Local use only.',
  },
  {
    names: ['PORT'],
    default: '8000',
    kind: 'int',
    min: 0,
    max: 65535,
    description: 'Web: HTTP port (also health and metrics).',
  },
  {
    names: ['METRICS_PORT'],
    default: 'none',
    kind: 'int',
    min: 0,
    max: 65535,
    description:
      'Web: serve /metrics on this port alone, not on PORT, so a network policy can tell scrapers from submitters; unset: on PORT.',
  },
  {
    names: ['HEALTH_PORT'],
    default: '8001',
    kind: 'int',
    min: 0,
    max: 65535,
    description: 'Worker: port of health probes and metrics.',
  },
  { names: ['LOG_LEVEL'], default: 'info', kind: 'oneOf', values: LOG_LEVELS, description: 'pino log level.' },
  {
    names: ['LOG_FORMAT'],
    default: 'json',
    kind: 'oneOf',
    values: LOG_FORMATS,
    description: 'JSON lines, or coloured one-line text for local runs (pino-pretty).',
  },
  {
    names: ['QUEUE_METRICS_INTERVAL_SECONDS'],
    default: '30',
    kind: 'int',
    min: 0,
    max: 3600,
    description: "Worker: how often it reads the queues' depth (GetQueueAttributes) for its metrics; 0 turns it off.",
  },
  {
    names: ['SENTRY_DSN'],
    default: 'none',
    kind: 'url',
    protocols: HTTP,
    label: 'Sentry DSN',
    description: 'Send unexpected errors to Sentry; unset sends nothing and loads no Sentry code.',
  },
  {
    names: ['SENTRY_ENVIRONMENT'],
    default: 'none',
    kind: 'text',
    label: 'string',
    description: 'Environment name attached to Sentry events (production, staging, …).',
  },
  {
    names: ['MAX_BODY_BYTES'],
    default: '65536',
    kind: 'int',
    min: 1024,
    max: 204800,
    description:
      'Largest accepted request body (web), and largest serialised form the web queues and the worker stores.',
  },
  {
    names: ['SHUTDOWN_DELAY_MS'],
    default: '5000',
    kind: 'int',
    min: 0,
    max: 120000,
    description: 'Web: time between failing readiness and closing the server on SIGTERM.',
  },
  {
    names: ['IDEMPOTENCY_WINDOW_SECONDS'],
    default: '86400',
    kind: 'int',
    min: 0,
    max: 1209600,
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
    /** The replaced service's live queue, read beside the form queue during the cut-over; undefined: not read. */
    originalQueueName: string | undefined;
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
    /** How long SQS or the database may fail every call before liveness fails, in ms; 0 = never. */
    livenessOutageMs: number;
    /** Most rows per INSERT of the coalescing writer. */
    insertMaxRows: number;
    /** Wait of the first waiting row for more, in ms. */
    insertWindowMs: number;
  };
  database: { url: string; poolMax: number; timeoutMs: number };
  /** Roles the migrations grant (DATABASE_WORKER_ROLE, DATABASE_EXPORT_ROLE). */
  databaseRoles: { worker: string | undefined; export: string | undefined };
  web: {
    port: number;
    uiSecret: string | undefined;
    /** UI_SECRET_NEXT: also accepted, for rotation. */
    uiSecretNext: string | undefined;
    /** UI_SECRET_ALLOW_SHORT. */
    allowShortSecret: boolean;
    signatureCheck: boolean;
    signatureSchemes: readonly SignatureScheme[];
    signatureToleranceSeconds: number;
    /** METRICS_PORT: /metrics is served there alone; undefined: on `port`. */
    metricsPort: number | undefined;
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

/** Reads each variable as its declaration in `settings` says. */
class Reader {
  private readonly env: Env;
  private readonly settings: readonly Setting[];
  constructor(env: Env, settings: readonly Setting[]) {
    this.env = env;
    this.settings = settings;
  }

  /** The declaration of `name`, which must be of `kind`. */
  private declared<K extends Setting['kind']>(name: string, kind: K): Extract<Setting, { kind: K }> {
    const setting = this.settings.find((s) => s.names[0] === name);
    if (!setting) throw new Error(`undeclared setting ${name}`);
    if (setting.kind !== kind) throw new Error(`setting ${name} is declared as ${setting.kind}, read as ${kind}`);
    return setting as Extract<Setting, { kind: K }>;
  }

  /** The variable used (the first of the names that is set; empty counts as unset) and its text, else the default. */
  private text(setting: Setting): { used: string; value: string | undefined; text: string | undefined } {
    const { used, value } = readVariable(this.env, setting.names);
    return { used, value, text: value ?? (setting.default === 'none' ? undefined : setting.default) };
  }

  /** The declared default of `name` (`none` when it has none). */
  defaultOf(name: string): string {
    return this.settings.find((s) => s.names[0] === name)?.default ?? 'none';
  }

  string(name: string): string {
    return this.text(this.declared(name, 'text')).text ?? '';
  }

  optional(name: string): string | undefined {
    return this.text(this.declared(name, 'text')).value;
  }

  /** An int whose default is `none`: undefined when unset. */
  optionalInt(name: string): number | undefined {
    return this.text(this.declared(name, 'int')).text === undefined ? undefined : this.int(name);
  }

  int(name: string): number {
    const setting = this.declared(name, 'int');
    const { used, text = '' } = this.text(setting);
    const n = /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < setting.min || n > setting.max) {
      throw new ConfigError(used, text, `an integer from ${setting.min} to ${setting.max}`);
    }
    return n;
  }

  bool(name: string): boolean {
    const { used, value, text = '' } = this.text(this.declared(name, 'bool'));
    const lower = text.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(lower)) return true;
    if (['false', '0', 'no', 'off'].includes(lower)) return false;
    throw new ConfigError(used, value ?? '', 'true or false');
  }

  url(name: string): string | undefined {
    const setting = this.declared(name, 'url');
    const { used, text } = this.text(setting);
    if (text === undefined) return undefined;
    let parsed: URL | undefined;
    try {
      parsed = new URL(text);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || !setting.protocols.includes(parsed.protocol)) {
      throw new ConfigError(used, text, `a URL starting with ${setting.protocols.join(' or ')}`);
    }
    return text;
  }

  /** A non-empty subset of the declared values, in declaration order. */
  subsetOf<T extends string>(name: string, values: readonly T[]): T[] {
    const setting = this.declared(name, 'subsetOf');
    const { used, text = '' } = this.text(setting);
    const given = text
      .toLowerCase()
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
    const unknown = given.filter((v) => !values.some((known) => known === v) || !setting.values.includes(v));
    if (given.length === 0 || unknown.length > 0)
      throw new ConfigError(used, text, `one or more of ${setting.values.join(', ')}, comma-separated`);
    return values.filter((v) => given.includes(v));
  }

  /** One of the declared values; `values` is the typed list the declaration names. */
  oneOf<T extends string>(name: string, values: readonly T[]): T {
    const setting = this.declared(name, 'oneOf');
    const { used, value, text = '' } = this.text(setting);
    const lower = text.toLowerCase();
    const found = values.find((v) => v === lower);
    if (found === undefined || !setting.values.includes(found)) {
      throw new ConfigError(used, value ?? '', `one of ${setting.values.join(', ')}`);
    }
    return found;
  }

  /** A queue name, or undefined when the setting is unset and has no default. */
  optionalQueueName(name: string): string | undefined {
    const setting = this.declared(name, 'queueName');
    return this.text(setting).text === undefined ? undefined : this.queueName(name);
  }

  queueName(name: string): string {
    const { used, text = '' } = this.text(this.declared(name, 'queueName'));
    if (!/^[A-Za-z0-9_-]{1,80}(\.fifo)?$/.test(text)) {
      throw new ConfigError(used, text, 'a queue name of 1–80 letters, digits, - or _');
    }
    return text;
  }
}

/**
 * Reads and checks the configuration, each variable as `settings` declares it.
 * @param settings the declarations; `SETTINGS` unless a test changes one
 * @throws ConfigError naming the variable, the value and what is allowed.
 */
export function loadConfig(env: Env = process.env, settings: readonly Setting[] = SETTINGS): Config {
  const r = new Reader(env, settings);
  const waitTimeSeconds = r.int('SQS_WAIT_TIME');
  const concurrency = r.int('WORKER_CONCURRENCY');
  const poolMax = r.int('DATABASE_POOL_MAX');
  const retryBackoffBaseSeconds = r.int('SQS_RETRY_BACKOFF_BASE_SECONDS');
  const retryBackoffMaxSeconds = r.int('SQS_RETRY_BACKOFF_MAX_SECONDS');
  const windowSeconds = r.int('IDEMPOTENCY_WINDOW_SECONDS');
  if (retryBackoffMaxSeconds < retryBackoffBaseSeconds) {
    throw new ConfigError(
      'SQS_RETRY_BACKOFF_MAX_SECONDS',
      String(retryBackoffMaxSeconds),
      `at least SQS_RETRY_BACKOFF_BASE_SECONDS (${retryBackoffBaseSeconds})`,
    );
  }
  const formQueueName = r.queueName('SQS_FORM_DATA_QUEUE_NAME');
  const invalidQueueName = r.queueName('SQS_INVALID_MESAGES_QUEUE_NAME');
  const originalQueueName = r.optionalQueueName('SQS_ORIGINAL_QUEUE_NAME');
  if (originalQueueName !== undefined && [formQueueName, invalidQueueName].includes(originalQueueName)) {
    // The worker would read its own queue twice, or copy invalid bodies back to the queue it reads.
    throw new ConfigError(
      'SQS_ORIGINAL_QUEUE_NAME',
      originalQueueName,
      'a queue other than SQS_FORM_DATA_QUEUE_NAME and SQS_INVALID_MESAGES_QUEUE_NAME',
    );
  }
  return {
    sqs: {
      region: r.string('SQS_REGION_NAME'),
      formQueueName,
      invalidQueueName,
      originalQueueName,
      waitTimeSeconds,
      maxNumberOfMessages: r.int('SQS_MAX_NUMBER_OF_MESSAGES'),
      visibilityTimeoutSeconds: r.int('SQS_VISIBILITY_TIMEOUT'),
      endpoint: r.url('SQS_ENDPOINT_URL'),
      createQueues: r.bool('SQS_CREATE_QUEUES'),
      requestTimeoutMs: r.int('SQS_REQUEST_TIMEOUT_MS'),
      maxAttempts: r.int('SQS_MAX_ATTEMPTS'),
      sendBatching: r.bool('SQS_SEND_BATCHING'),
      sendBatchWindowMs: r.int('SQS_SEND_BATCH_WINDOW_MS'),
      retryBackoffBaseSeconds,
      retryBackoffMaxSeconds,
    },
    worker: {
      concurrency,
      livenessOutageMs: r.int('WORKER_LIVENESS_OUTAGE_SECONDS') * 1000,
      insertMaxRows: r.int('WORKER_INSERT_MAX_ROWS'),
      insertWindowMs: r.int('WORKER_INSERT_WINDOW_MS'),
    },
    database: {
      url: r.url('DATABASE_URL') ?? '',
      poolMax,
      timeoutMs: r.int('DATABASE_TIMEOUT_MS'),
    },
    databaseRoles: { worker: r.optional('DATABASE_WORKER_ROLE'), export: r.optional('DATABASE_EXPORT_ROLE') },
    web: {
      port: r.int('PORT'),
      uiSecret: r.optional('UI_SECRET'),
      uiSecretNext: r.optional('UI_SECRET_NEXT'),
      allowShortSecret: r.bool('UI_SECRET_ALLOW_SHORT'),
      signatureCheck: !r.bool('DISABLE_SIGNATURE_CHECK'),
      signatureSchemes: r.subsetOf('SIGNATURE_SCHEMES', SIGNATURE_SCHEMES),
      signatureToleranceSeconds: r.int('SIGNATURE_TOLERANCE_SECONDS'),
      metricsPort: r.optionalInt('METRICS_PORT'),
      maxBodyBytes: r.int('MAX_BODY_BYTES'),
      shutdownDelayMs: r.int('SHUTDOWN_DELAY_MS'),
    },
    healthPort: r.int('HEALTH_PORT'),
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS),
    logFormat: r.oneOf('LOG_FORMAT', LOG_FORMATS),
    queueMetricsIntervalMs: r.int('QUEUE_METRICS_INTERVAL_SECONDS') * 1000,
    sentry: { dsn: sentryDsn(r.url('SENTRY_DSN')), environment: r.optional('SENTRY_ENVIRONMENT') },
    tracing: loadTracingConfig(env),
    idempotency: {
      windowSeconds,
      keyLifetimeSeconds: windowSeconds > 0 ? windowSeconds : Number(r.defaultOf('IDEMPOTENCY_WINDOW_SECONDS')),
    },
  };
}

/** A DSN of the shape Sentry documents (`https://<key>@<host>/<project id>`), else a ConfigError that does not show it. */
function sentryDsn(dsn: string | undefined): string | undefined {
  if (dsn === undefined) return undefined;
  const url = new URL(dsn);
  if (url.username === '' || !/^\/(?:[^?#]*\/)?\d+$/.test(url.pathname))
    throw new ConfigError('SENTRY_DSN', dsn, 'a Sentry DSN: https://<key>@<host>/<project id>');
  return dsn;
}

/**
 * Checks what only the web needs: a secret unless signatures are off, each at
 * least MIN_SECRET_LENGTH characters unless UI_SECRET_ALLOW_SHORT; a v1
 * tolerance no longer than the idempotency window (so a replayed v1 request is
 * still recognised as the same submission).
 * @returns warnings to log (a short secret allowed), each with a stable code
 * @throws ConfigError
 */
export function assertWebConfig(config: Config): { code: string; message: string }[] {
  const { web } = config;
  const warnings: { code: string; message: string }[] = [];
  if (!web.signatureCheck) return warnings;
  if (!web.uiSecret) {
    throw new ConfigError('UI_SECRET', '', 'a non-empty secret (or DISABLE_SIGNATURE_CHECK=true for local use)');
  }
  for (const [name, secret] of [
    ['UI_SECRET', web.uiSecret],
    ['UI_SECRET_NEXT', web.uiSecretNext],
  ] as const) {
    if (secret === undefined || secret.length >= MIN_SECRET_LENGTH) continue;
    if (!web.allowShortSecret)
      throw new ConfigError(
        name,
        secret,
        `a secret of at least ${MIN_SECRET_LENGTH} characters (${secret.length} given; ` +
          'UI_SECRET_ALLOW_SHORT=true accepts it for compatibility)',
      );
    warnings.push({
      code: LOG_CODES.shortSecretAllowed,
      message:
        `${name} has ${secret.length} characters, fewer than ${MIN_SECRET_LENGTH}; accepted because ` +
        'UI_SECRET_ALLOW_SHORT=true: one captured request lets an attacker guess it offline; rotate it (docs/security.md)',
    });
  }
  if (web.signatureSchemes.includes('v1') && web.signatureToleranceSeconds > config.idempotency.keyLifetimeSeconds)
    throw new ConfigError(
      'SIGNATURE_TOLERANCE_SECONDS',
      String(web.signatureToleranceSeconds),
      `at most the idempotency key lifetime (${config.idempotency.keyLifetimeSeconds} s)`,
    );
  return warnings;
}
