/**
 * The processes of a chaos run: PostgreSQL (restartable), the SQS emulator as
 * a process of its own, a TCP proxy between the web and the emulator (cut for
 * the SQS outage), the migration, the web and the workers. Everything started
 * here is stopped by `stop()`, also after a failure.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { startProcess, type LogLine, type ProcessHandle } from '../harness/process.ts';
import { freePort } from '../harness/ports.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { observerClient, queueUrl } from '../harness/sqs.ts';
import { startRestartablePostgres, type RestartablePostgres } from '../harness/postgres.ts';

/** The repository root (chaos/..). */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface StackOptions {
  runId: string;
  workers: number;
  /** Settings on top of the run's defaults, for every service. */
  env: Record<string, string>;
  /** Where process logs are written at the end. */
  logDir: string;
  log: (message: string) => void;
}

/** One worker "slot": restarted under the same name after a kill or a SIGTERM. */
export interface WorkerSlot {
  name: string;
  generation: number;
  handle: ProcessHandle;
  healthPort: number;
  /** Every process this slot ran, for the logs. */
  history: { generation: number; handle: ProcessHandle }[];
}

export interface Stack {
  postgres: RestartablePostgres;
  databaseUrl: string;
  emulator: ProcessHandle;
  emulatorEndpoint: string;
  /** The web's path to the emulator. */
  webSqsProxy: TcpProxy;
  /** The workers' paths to the emulator and to PostgreSQL (pass-through until a fault silences them). */
  workerSqsProxy: TcpProxy;
  workerDatabaseProxy: TcpProxy;
  web: ProcessHandle;
  webUrl: string;
  workers: WorkerSlot[];
  /** The run's own SQS client, straight to the emulator. */
  sqs: SQSClient;
  formQueue: string;
  invalidQueue: string;
  formQueueUrl: string;
  invalidQueueUrl: string;
  /** The environment every service gets. */
  env: Record<string, string>;
  /** Starts the slot's process again (after it exited) and waits until it polls. */
  restartWorker(slot: WorkerSlot): Promise<void>;
  /** Kills what is still running, writes the logs, deletes the database folder. */
  stop(): Promise<void>;
  /** SIGKILLs every child at once (synchronous; for signal handlers). */
  killAll(): void;
}

const NODE = process.execPath;

/** Starts everything up to polling workers. On failure, stops what it started and rethrows. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const { log } = options;
  const handles: ProcessHandle[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const workers: WorkerSlot[] = [];
  const spawn = (name: string, args: string[], env: Record<string, string>): ProcessHandle => {
    const handle = startProcess(NODE, args, env, { cwd: ROOT });
    (handle as ProcessHandle & { name?: string }).name = name;
    handles.push(handle);
    return handle;
  };

  const writeLogs = async (): Promise<void> => {
    await mkdir(options.logDir, { recursive: true });
    for (const handle of handles) {
      const name = (handle as ProcessHandle & { name?: string }).name ?? String(handle.child.pid);
      const lines = [...handle.text, ...handle.logs.map((l: LogLine) => JSON.stringify(l))];
      await writeFile(join(options.logDir, `${name}.log`), lines.join('\n') + '\n');
    }
  };
  const killAll = (): void => {
    for (const h of handles) h.kill('SIGKILL');
  };
  const stop = async (): Promise<void> => {
    killAll();
    await Promise.all(handles.map((h) => h.exited));
    for (const cleanup of cleanups.reverse())
      await cleanup().catch((e: unknown) => log(`cleanup failed: ${String(e)}`));
    await writeLogs().catch((e: unknown) => log(`could not write logs: ${String(e)}`));
  };

  try {
    log('starting PostgreSQL (embedded, restartable)');
    const postgres = await startRestartablePostgres();
    cleanups.push(() => postgres.destroy());
    const databaseUrl = await postgres.createDatabase(`chaos_${options.runId.replace(/[^a-z0-9]/g, '')}`);

    log('starting the SQS emulator as its own process');
    const emulatorPort = await freePort();
    const emulator = spawn('emulator', ['harness/emulator.ts'], { FAUXQS_PORT: String(emulatorPort) });
    await emulator.waitForLog((l) => l.msg === 'emulator listening', 20_000);
    const emulatorEndpoint = `http://127.0.0.1:${emulatorPort}`;
    const webSqsProxy = await startTcpProxy('127.0.0.1', emulatorPort);
    cleanups.push(() => webSqsProxy.close());
    const workerSqsProxy = await startTcpProxy('127.0.0.1', emulatorPort);
    cleanups.push(() => workerSqsProxy.close());
    const workerDatabaseProxy = await startTcpProxy('127.0.0.1', postgres.port);
    cleanups.push(() => workerDatabaseProxy.close());
    const workerDatabaseUrl = new URL(databaseUrl);
    workerDatabaseUrl.hostname = '127.0.0.1';
    workerDatabaseUrl.port = String(workerDatabaseProxy.port);

    const formQueue = `chaos-form-${options.runId}`;
    const invalidQueue = `chaos-invalid-${options.runId}`;
    const env: Record<string, string> = {
      DATABASE_URL: databaseUrl,
      SQS_ENDPOINT_URL: emulatorEndpoint,
      SQS_CREATE_QUEUES: 'true',
      SQS_FORM_DATA_QUEUE_NAME: formQueue,
      SQS_INVALID_MESAGES_QUEUE_NAME: invalidQueue,
      LOG_LEVEL: 'info',
      SHUTDOWN_DELAY_MS: '0',
      ...options.env,
    };

    log('migrating');
    const migrate = spawn('migrate', ['migrations/cli.ts', 'latest'], env);
    const migrated = await migrate.exited;
    if (migrated.code !== 0) throw new Error(`migration failed (exit ${migrated.code}): ${migrate.text.join('\n')}`);

    log('starting the web (its SQS path goes through a proxy the run can cut)');
    const webPort = await freePort();
    const web = spawn('web', ['services/web/main.ts'], {
      ...env,
      SQS_ENDPOINT_URL: `http://127.0.0.1:${webSqsProxy.port}`,
      PORT: String(webPort),
    });
    await web.waitForLog((l) => l.msg === 'web listening', 30_000);

    const startWorkerProcess = async (slot: {
      name: string;
      generation: number;
    }): Promise<{ handle: ProcessHandle; healthPort: number }> => {
      const healthPort = await freePort();
      const handle = spawn(`${slot.name}.${slot.generation}`, ['services/worker/main.ts'], {
        ...env,
        SQS_ENDPOINT_URL: `http://127.0.0.1:${workerSqsProxy.port}`,
        DATABASE_URL: workerDatabaseUrl.toString(),
        HEALTH_PORT: String(healthPort),
      });
      await handle.waitForLog((l) => l.msg === 'worker polling', 30_000);
      return { handle, healthPort };
    };
    log(`starting ${options.workers} workers`);
    const started = await Promise.all(
      Array.from({ length: options.workers }, async (_, i) => {
        const name = `worker-${i + 1}`;
        const { handle, healthPort } = await startWorkerProcess({ name, generation: 1 });
        return { name, generation: 1, handle, healthPort, history: [{ generation: 1, handle }] } satisfies WorkerSlot;
      }),
    );
    workers.push(...started);

    const sqs = observerClient(emulatorEndpoint);
    cleanups.push(async () => sqs.destroy());
    const formQueueUrl = await queueUrl(sqs, formQueue);
    const invalidQueueUrl = await queueUrl(sqs, invalidQueue);

    return {
      postgres,
      databaseUrl,
      emulator,
      emulatorEndpoint,
      webSqsProxy,
      workerSqsProxy,
      workerDatabaseProxy,
      web,
      webUrl: `http://127.0.0.1:${webPort}`,
      workers,
      sqs,
      formQueue,
      invalidQueue,
      formQueueUrl,
      invalidQueueUrl,
      env,
      async restartWorker(slot) {
        slot.generation += 1;
        const { handle, healthPort } = await startWorkerProcess(slot);
        slot.handle = handle;
        slot.healthPort = healthPort;
        slot.history.push({ generation: slot.generation, handle });
      },
      stop,
      killAll,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** GET on a worker's health port; 0 when it does not answer. */
export async function probe(port: number, path: '/healthz/ready' | '/healthz/live'): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(3000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** Value of one counter sample in a worker's /metrics, or undefined. */
export async function scrapeCounter(port: number, name: string, labels: string): Promise<number | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(3000) });
    const text = await res.text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
    return line ? Number(line.split(' ').pop()) : 0;
  } catch {
    return undefined;
  }
}
