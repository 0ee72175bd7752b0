/**
 * The one builder of a running pipeline on this machine, for the tests, the
 * benchmark, the chaos run and `npm start`: one environment for every service
 * (`pipelineEnv`), one secret (`TEST_SECRET`), the queues and the schema made
 * the way the services make them (`preparePipeline`), each service started as
 * a child process and awaited on its ready line (`startService`), and the
 * whole of it, PostgreSQL and the SQS emulator included, with an optional
 * proxy between the web and SQS for faults (`startPipeline`). Tests that run
 * the services in their own process take the environment and the preparation
 * and call the services' composition roots themselves.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { loadConfig, type Config } from '../services/common/config.ts';
import { createDatabase } from '../services/common/db.ts';
import { createLogger } from '../services/common/logger.ts';
import { createSqsClient, resolveQueueUrls } from '../services/common/sqs.ts';
import { migrationConfig } from '../migrations/config.ts';
import { TEST_SECRET } from './forms.ts';
import { freePort } from './ports.ts';
import {
  createTestDatabase,
  startRestartablePostgres,
  type RestartablePostgres,
  type TestDatabase,
} from './postgres.ts';
import { startProcess, type LogLine, type ProcessHandle } from './process.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';
import { LOG_CODES } from '../services/common/log-codes.ts';

/** The repository root: every service runs from there. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Each service's entry point and the log line that says it is up (none: it runs to its end). */
export const SERVICES = {
  web: { args: ['services/web/main.ts'], ready: (l: LogLine) => l.code === LOG_CODES.webListening },
  worker: { args: ['services/worker/main.ts'], ready: (l: LogLine) => l.code === LOG_CODES.workerPolling },
  migrate: { args: ['migrations/cli.ts', 'latest'], ready: undefined },
  emulator: { args: ['harness/emulator.ts'], ready: (l: LogLine) => l.ready === true },
} as const satisfies Record<string, { args: readonly string[]; ready: ((line: LogLine) => boolean) | undefined }>;

export type ServiceName = keyof typeof SERVICES;

/** A form queue and its invalid-messages queue. */
export interface QueueNames {
  form: string;
  invalid: string;
}

/** Queue names no other run uses: `<prefix>-form-<hex>` and `<prefix>-invalid-<hex>`. */
export function uniqueQueues(prefix: string): QueueNames {
  const suffix = randomBytes(4).toString('hex');
  return { form: `${prefix}-form-${suffix}`, invalid: `${prefix}-invalid-${suffix}` };
}

export interface PipelineEnvOptions {
  databaseUrl: string;
  sqsEndpoint: string;
  /** Queue names; omitted, the services' defaults. */
  queues?: QueueNames;
  /** Whether the services create missing queues at start-up (SQS_CREATE_QUEUES). Default true. */
  createQueues?: boolean;
  /** Settings on top (every other setting keeps the services' default). */
  overrides?: Record<string, string>;
}

/**
 * The environment every service of a harnessed run gets: where PostgreSQL and SQS are, the queues, the one
 * secret, ephemeral ports and no shutdown delay; `overrides` on top.
 */
export function pipelineEnv(options: PipelineEnvOptions): Record<string, string> {
  return {
    DATABASE_URL: options.databaseUrl,
    SQS_ENDPOINT_URL: options.sqsEndpoint,
    ...((options.createQueues ?? true) ? { SQS_CREATE_QUEUES: 'true' } : {}),
    ...(options.queues
      ? { SQS_FORM_DATA_QUEUE_NAME: options.queues.form, SQS_INVALID_MESAGES_QUEUE_NAME: options.queues.invalid }
      : {}),
    UI_SECRET: TEST_SECRET,
    PORT: '0',
    HEALTH_PORT: '0',
    SHUTDOWN_DELAY_MS: '0',
    ...options.overrides,
  };
}

/**
 * What the services find ready at start-up: the queues created when the environment asks for it, as the services
 * would (through `sqs`, default a client of the environment's own settings), and the database migrated (unless
 * `migrate` is false; statements may take 30 s whatever DATABASE_TIMEOUT_MS says). Resolves with the environment's
 * configuration.
 */
export async function preparePipeline(
  env: NodeJS.ProcessEnv,
  options: { migrate?: boolean; sqs?: SQSClient } = {},
): Promise<Config> {
  const config = loadConfig(env);
  const logger = createLogger('silent', 'harness');
  if (config.sqs.createQueues) {
    const sqs = options.sqs ?? createSqsClient(config.sqs);
    try {
      await resolveQueueUrls(sqs, config.sqs, logger);
    } finally {
      if (!options.sqs) sqs.destroy();
    }
  }
  if (options.migrate ?? true) {
    const timeoutMs = Math.max(config.database.timeoutMs, 30_000);
    const db = createDatabase({ ...config.database, poolMax: 1, timeoutMs }, logger);
    try {
      await db.migrate.latest(migrationConfig());
    } finally {
      await db.destroy();
    }
  }
  return config;
}

/** A service running as a child process of the harness. */
export interface RunningService {
  name: string;
  handle: ProcessHandle;
  /** Its ready line (undefined for a service that runs to its end). */
  ready: LogLine | undefined;
}

/**
 * Starts `service` as a child process (`node <entry point>`, from the repository root) with exactly `env`, and
 * waits for its ready line; a service without one (the migration) is awaited to a zero exit. On failure the
 * process is stopped and the error names its last output.
 */
export async function startService(
  service: ServiceName,
  env: Record<string, string>,
  options: { name?: string; timeoutMs?: number } = {},
): Promise<RunningService> {
  const { args, ready } = SERVICES[service];
  const name = options.name ?? service;
  const handle = startProcess(process.execPath, [...args], env, { cwd: ROOT });
  const timeoutMs = options.timeoutMs ?? 30_000;
  try {
    if (ready === undefined) {
      const exit = await handle.exited;
      if (exit.code !== 0) throw new Error(`exit ${exit.code ?? exit.signal}`);
      return { name, handle, ready: undefined };
    }
    return { name, handle, ready: await handle.waitForLog(ready, timeoutMs) };
  } catch (error) {
    await handle.ensureStopped();
    const output = [...handle.text, ...handle.logs.map((l) => JSON.stringify(l))].slice(-20).join('\n');
    throw new Error(`${name} did not start: ${error instanceof Error ? error.message : String(error)}\n${output}`, {
      cause: error,
    });
  }
}

/** One worker "slot": restarted under the same name after a kill or a SIGTERM. */
export interface WorkerSlot {
  name: string;
  generation: number;
  handle: ProcessHandle;
  healthPort: number;
  /** Every process this slot ran. */
  history: { generation: number; handle: ProcessHandle }[];
}

export interface PipelineOptions {
  /** The run's name: its database and queue names carry it. */
  name: string;
  /**
   * PostgreSQL: `test` (a database of its own on the tests' shared server, dropped at the end) or `restartable`
   * (an embedded server of the run's own that faults can stop and start).
   */
  database: 'test' | 'restartable';
  /** Settings on top of pipelineEnv's, for every service. */
  env?: Record<string, string>;
  /** A TCP proxy between the web and SQS (webSqsProxy), which faults can cut. Default false. */
  webSqsProxy?: boolean;
  /**
   * TCP proxies between the workers and SQS (workerSqsProxy) and between the workers and PostgreSQL
   * (workerDatabaseProxy), shared by every worker, which faults can cut or silence. Default false.
   */
  workerProxies?: boolean;
  /** Start the web. Default true. */
  web?: boolean;
  /** Worker processes. Default 1. */
  workers?: number;
  log?: (message: string) => void;
}

/** A running pipeline: PostgreSQL, the emulator as a process, the migration done, the web and the workers up. */
export interface Pipeline {
  /** The environment every service got. */
  env: Record<string, string>;
  databaseUrl: string;
  /** Set when `database` is `restartable`. */
  postgres: RestartablePostgres | undefined;
  emulator: ProcessHandle;
  emulatorEndpoint: string;
  queues: QueueNames;
  /** Set when asked for. */
  webSqsProxy: TcpProxy | undefined;
  /** Set when workerProxies is asked for. */
  workerSqsProxy: TcpProxy | undefined;
  /** Set when workerProxies is asked for. */
  workerDatabaseProxy: TcpProxy | undefined;
  web: ProcessHandle | undefined;
  webUrl: string | undefined;
  workers: WorkerSlot[];
  /** Starts the slot's process again (after it exited) and waits until it polls. */
  restartWorker(slot: WorkerSlot): Promise<void>;
  /** Every process the pipeline started, by name (`worker-1.2`: the second process of slot worker-1). */
  processes(): { name: string; handle: ProcessHandle }[];
  /** SIGKILLs every child at once (synchronous; for signal handlers). */
  killAll(): void;
  /** Kills what still runs and removes what the run made (database, proxy). */
  stop(): Promise<void>;
}

/** Starts a whole pipeline as child processes. On failure, stops what it started and rethrows. */
export async function startPipeline(options: PipelineOptions): Promise<Pipeline> {
  const log = options.log ?? (() => undefined);
  const started: { name: string; handle: ProcessHandle }[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const run = async (
    service: ServiceName,
    env: Record<string, string>,
    name: string = service,
  ): Promise<RunningService> => {
    const running = await startService(service, env, { name });
    started.push({ name, handle: running.handle });
    return running;
  };
  const killAll = (): void => {
    for (const { handle } of started) handle.kill('SIGKILL');
  };
  const stop = async (): Promise<void> => {
    killAll();
    await Promise.all(started.map(({ handle }) => handle.exited));
    for (const cleanup of cleanups.reverse())
      await cleanup().catch((e: unknown) => log(`cleanup failed: ${String(e)}`));
  };

  try {
    let databaseUrl: string;
    let postgres: RestartablePostgres | undefined;
    const databaseName = options.name.replace(/[^a-z0-9]/gi, '_').toLowerCase();
    if (options.database === 'restartable') {
      log('starting PostgreSQL (embedded, restartable)');
      postgres = await startRestartablePostgres();
      const pg = postgres;
      cleanups.push(() => pg.destroy());
      databaseUrl = await pg.createDatabase(databaseName);
    } else {
      const database: TestDatabase = await createTestDatabase();
      cleanups.push(() => database.drop());
      databaseUrl = database.url;
    }

    log('starting the SQS emulator as its own process');
    const emulator = await run('emulator', { FAUXQS_PORT: '0' });
    const emulatorPort = Number(emulator.ready?.port);
    const emulatorEndpoint = `http://127.0.0.1:${emulatorPort}`;
    const proxyTo = async (port: number): Promise<TcpProxy> => {
      const proxy = await startTcpProxy('127.0.0.1', port);
      cleanups.push(() => proxy.close());
      return proxy;
    };
    const webSqsProxy = options.webSqsProxy ? await proxyTo(emulatorPort) : undefined;
    const workerSqsProxy = options.workerProxies ? await proxyTo(emulatorPort) : undefined;
    const workerDatabaseProxy = options.workerProxies ? await proxyTo(Number(new URL(databaseUrl).port)) : undefined;

    const queues = uniqueQueues(options.name);
    const env = pipelineEnv({
      databaseUrl,
      sqsEndpoint: emulatorEndpoint,
      queues,
      overrides: options.env,
    });

    log('migrating');
    await run('migrate', env);

    let web: ProcessHandle | undefined;
    let webUrl: string | undefined;
    if (options.web ?? true) {
      log(`starting the web${webSqsProxy ? ' (its SQS path goes through a proxy the run can cut)' : ''}`);
      const port = await freePort();
      const running = await run('web', {
        ...env,
        ...(webSqsProxy ? { SQS_ENDPOINT_URL: `http://127.0.0.1:${webSqsProxy.port}` } : {}),
        PORT: String(port),
      });
      web = running.handle;
      webUrl = `http://127.0.0.1:${port}`;
    }

    const workerPaths: Record<string, string> = {};
    if (workerSqsProxy) workerPaths.SQS_ENDPOINT_URL = `http://127.0.0.1:${workerSqsProxy.port}`;
    if (workerDatabaseProxy) {
      const url = new URL(databaseUrl);
      url.hostname = '127.0.0.1';
      url.port = String(workerDatabaseProxy.port);
      workerPaths.DATABASE_URL = url.toString();
    }
    const startWorker = async (
      name: string,
      generation: number,
    ): Promise<{ handle: ProcessHandle; healthPort: number }> => {
      const healthPort = await freePort();
      const running = await run(
        'worker',
        { ...env, ...workerPaths, HEALTH_PORT: String(healthPort) },
        `${name}.${generation}`,
      );
      return { handle: running.handle, healthPort };
    };
    const count = options.workers ?? 1;
    log(`starting ${count} worker${count === 1 ? '' : 's'}`);
    const workers = await Promise.all(
      Array.from({ length: count }, async (_, i): Promise<WorkerSlot> => {
        const name = `worker-${i + 1}`;
        const { handle, healthPort } = await startWorker(name, 1);
        return { name, generation: 1, handle, healthPort, history: [{ generation: 1, handle }] };
      }),
    );

    return {
      env,
      databaseUrl,
      postgres,
      emulator: emulator.handle,
      emulatorEndpoint,
      queues,
      webSqsProxy,
      workerSqsProxy,
      workerDatabaseProxy,
      web,
      webUrl,
      workers,
      async restartWorker(slot) {
        slot.generation += 1;
        const { handle, healthPort } = await startWorker(slot.name, slot.generation);
        slot.handle = handle;
        slot.healthPort = healthPort;
        slot.history.push({ generation: slot.generation, handle });
      },
      processes: () => [...started],
      killAll,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
