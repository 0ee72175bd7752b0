/**
 * The processes of a chaos run, built by harness/pipeline.ts: PostgreSQL
 * (restartable), the SQS emulator as a process of its own, a TCP proxy between
 * the web and the emulator (cut for the SQS outage), the migration, the web
 * and the workers. Everything started here is stopped by `stop()`, also after
 * a failure, and each process's output is written to the log folder.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { LogLine, ProcessHandle } from '../harness/process.ts';
import type { TcpProxy } from '../harness/tcp-proxy.ts';
import { observerClient, queueUrl } from '../harness/sqs.ts';
import type { RestartablePostgres } from '../harness/postgres.ts';
import { ROOT, startPipeline, type WorkerSlot } from '../harness/pipeline.ts';

export { ROOT, type WorkerSlot };

export interface StackOptions {
  runId: string;
  workers: number;
  /** Settings on top of the pipeline's, for every service. */
  env: Record<string, string>;
  /** Where process logs are written at the end. */
  logDir: string;
  log: (message: string) => void;
}

export interface Stack {
  postgres: RestartablePostgres;
  databaseUrl: string;
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

/** Starts everything up to polling workers. On failure, stops what it started and rethrows. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const pipeline = await startPipeline({
    name: `chaos-${options.runId}`,
    database: 'restartable',
    env: { LOG_LEVEL: 'info', ...options.env },
    webSqsProxy: true,
    workerProxies: true,
    workers: options.workers,
    log: options.log,
  });
  const writeLogs = async (): Promise<void> => {
    await mkdir(options.logDir, { recursive: true });
    for (const { name, handle } of pipeline.processes()) {
      const lines = [...handle.text, ...handle.logs.map((l: LogLine) => JSON.stringify(l))];
      await writeFile(join(options.logDir, `${name}.log`), lines.join('\n') + '\n');
    }
  };
  const sqs = observerClient(pipeline.emulatorEndpoint);
  const stop = async (): Promise<void> => {
    sqs.destroy();
    await pipeline.stop();
    await writeLogs().catch((e: unknown) => options.log(`could not write logs: ${String(e)}`));
  };
  try {
    return {
      postgres: pipeline.postgres!,
      databaseUrl: pipeline.databaseUrl,
      emulatorEndpoint: pipeline.emulatorEndpoint,
      webSqsProxy: pipeline.webSqsProxy!,
      workerSqsProxy: pipeline.workerSqsProxy!,
      workerDatabaseProxy: pipeline.workerDatabaseProxy!,
      web: pipeline.web!,
      webUrl: pipeline.webUrl!,
      workers: pipeline.workers,
      sqs,
      formQueue: pipeline.queues.form,
      invalidQueue: pipeline.queues.invalid,
      formQueueUrl: await queueUrl(sqs, pipeline.queues.form),
      invalidQueueUrl: await queueUrl(sqs, pipeline.queues.invalid),
      env: pipeline.env,
      restartWorker: (slot) => pipeline.restartWorker(slot),
      stop,
      killAll: () => pipeline.killAll(),
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
