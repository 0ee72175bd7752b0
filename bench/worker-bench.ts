/**
 * Worker throughput: each variant drains a queue pre-filled with N valid
 * messages (or runs until a time cap, for the slow baselines) through the
 * delaying proxy, in this process; the emulator and the proxy run in
 * processes of their own.
 */
import { SETTINGS } from '../services/common/config.ts';
import type { Knex } from 'knex';
import { loadConfig } from '../services/common/config.ts';
import { createDatabase } from '../services/common/db.ts';
import { createSqsClient } from '../services/common/sqs.ts';
import { pino } from 'pino';
import { createWorkerService } from '../services/worker/service.ts';
import { FormRepository } from '../services/worker/repository.ts';
import type { BenchContext } from './context.ts';
import { naiveWorker } from './baselines/naive-worker.ts';
import { sqsConsumerWorker } from './baselines/sqs-consumer-worker.ts';
import { ceilingRows, insertAll } from './baselines/pg-ceiling.ts';
import type { BenchWorker } from './baselines/types.ts';
import { cpuMsOf } from './processes.ts';
import { createQueue, deleteQueue, fillQueue, queueName } from './sqs.ts';
import { Progress, sumActions } from './stats.ts';

export type WorkerVariant =
  | 'ours'
  | 'oursBefore'
  | 'naive'
  | 'sqsConsumer'
  | 'pgCeiling'
  | 'pgCeiling100'
  | 'oursConcurrency4'
  | 'sqsConsumerBatch10'
  | 'oursTraced';

const defaultOf = (name: string): string => SETTINGS.find((s) => s.names[0] === name)?.default ?? '?';

/** The settings of the design before the coalescing writer: a pool of 10, one INSERT per received batch. */
const BEFORE_ENV = { DATABASE_POOL_MAX: '10', WORKER_INSERT_MAX_ROWS: '10', WORKER_INSERT_WINDOW_MS: '0' };

/** Our worker's variants (createWorkerService) and the settings each runs with. */
const OURS: Partial<Record<WorkerVariant, Record<string, string>>> = {
  ours: {},
  oursBefore: BEFORE_ENV,
  oursConcurrency4: { WORKER_CONCURRENCY: '4' },
  oursTraced: {},
};

export const WORKER_VARIANTS: Record<WorkerVariant, { label: string; target: boolean }> = {
  ours: {
    label: `ours (defaults: WORKER_CONCURRENCY=${defaultOf('WORKER_CONCURRENCY')}, pool ${defaultOf('DATABASE_POOL_MAX')}, ≤ ${defaultOf('WORKER_INSERT_MAX_ROWS')} rows per INSERT)`,
    target: true,
  },
  oursBefore: { label: 'before: pool 10, one INSERT per received batch', target: true },
  naive: { label: 'naive (replaced design)', target: true },
  sqsConsumer: { label: 'sqs-consumer (defaults)', target: true },
  pgCeiling: { label: 'PostgreSQL ceiling (no SQS), 10 rows per INSERT', target: true },
  pgCeiling100: {
    label: `PostgreSQL ceiling (no SQS), ${defaultOf('WORKER_INSERT_MAX_ROWS')} rows per INSERT`,
    target: true,
  },
  oursConcurrency4: { label: 'ours, WORKER_CONCURRENCY=4', target: false },
  sqsConsumerBatch10: { label: 'sqs-consumer, batchSize=10', target: false },
  oursTraced: { label: 'ours, tracing on (OTLP to a local receiver)', target: false },
};

export interface WorkerRun {
  variant: WorkerVariant;
  messages: number;
  elapsedMs: number;
  messagesPerSecond: number;
  /** True when the run hit the time cap before draining the queue. */
  capped: boolean;
  receivePer1000: number;
  deletePer1000: number;
  requests: Record<string, number>;
  /** CPU time per 1000 messages of this process (the worker under test), the emulator and the proxy, in ms. */
  cpuMsPer1000: { worker: number; emulator: number; proxy: number };
  /** Most database connections the pool held at once (ours and the ceilings; sampled every 10 ms). */
  connections?: number;
  /** INSERT statements per 1000 messages. */
  insertsPer1000?: number;
  /** Where a batch's time goes (ours only), in ms per batch: the full cycle of one poll loop and its parts. */
  breakdown?: {
    batches: number;
    avgBatch: number;
    cycleMs: number;
    receiveMs: number;
    handleMs: number;
    insertMs: number;
    deleteAndOtherMs: number;
    emulatorReceiveMs: number;
    emulatorDeleteMs: number;
  };
}

export interface WorkerBenchOptions {
  messages: number;
  /** Cap on one run of a slow baseline, in ms. */
  baselineCapMs: number;
  /** OTLP/HTTP base URL for the oursTraced variant. */
  otlpEndpoint?: string;
}

/** Times every INSERT on a knex instance. */
function timeInserts(db: Knex): { count: number; totalMs: number } {
  const stats = { count: 0, totalMs: 0 };
  const started = new Map<string, number>();
  db.on('query', (q: { __knexQueryUid: string }) => started.set(q.__knexQueryUid, performance.now()));
  db.on('query-response', (_r: unknown, q: { __knexQueryUid: string; sql: string }) => {
    const t = started.get(q.__knexQueryUid);
    started.delete(q.__knexQueryUid);
    if (t !== undefined && q.sql.startsWith('insert')) {
      stats.count += 1;
      stats.totalMs += performance.now() - t;
    }
  });
  return stats;
}

export async function runWorkerVariant(
  ctx: BenchContext,
  variant: WorkerVariant,
  options: WorkerBenchOptions,
): Promise<WorkerRun> {
  const n = options.messages;
  await ctx.truncate();
  if (variant === 'pgCeiling') return runCeiling(ctx, n, 10, variant);
  if (variant === 'pgCeiling100') return runCeiling(ctx, n, Number(defaultOf('WORKER_INSERT_MAX_ROWS')), variant);

  const name = queueName(`bench-${variant}`);
  const invalidName = `${name}-invalid`;
  const formUrl = await createQueue(ctx.direct, name);
  const invalidUrl = await createQueue(ctx.direct, invalidName);
  await fillQueue(ctx.emulator.url, formUrl, n);
  const config = loadConfig(
    ctx.env({
      SQS_FORM_DATA_QUEUE_NAME: name,
      SQS_INVALID_MESAGES_QUEUE_NAME: invalidName,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent',
      ...OURS[variant],
      ...(variant === 'oursTraced' && options.otlpEndpoint
        ? { OTEL_EXPORTER_OTLP_ENDPOINT: options.otlpEndpoint }
        : {}),
    }),
  );
  const ours = OURS[variant] !== undefined;
  const capMs = ours ? 600_000 : options.baselineCapMs;
  const db = createDatabase(config.database);
  const inserts = timeInserts(db);
  const pool = watchPool(db);
  const sqs = createSqsClient(config.sqs, {
    extraTimeoutMs: config.sqs.waitTimeSeconds * 1000,
    maxSockets: config.worker.concurrency * 2 + 4,
  });
  let worker: BenchWorker;
  let progress = new Progress(n);
  const batches = { count: 0, handleMs: 0 };
  if (ours) {
    // Logs are written (to /dev/null) at BENCH_LOG_LEVEL, to measure what logging costs.
    const logger = pino(
      { level: config.logLevel, base: { service: 'worker' }, timestamp: pino.stdTimeFunctions.isoTime },
      pino.destination('/dev/null'),
    );
    const service = await createWorkerService(config, { db, sqs, logger });
    service.consumer.on('batch', (r) => {
      batches.count += 1;
      batches.handleMs += r.durationMs;
      progress.add(r.stored + r.duplicates + r.invalid - r.notDeleted);
    });
    worker = {
      start: () => void service.start(),
      stop: async () => {
        await service.stop();
      },
    };
  } else if (variant === 'naive') {
    const w = naiveWorker({
      sqs,
      queueUrl: formUrl,
      db,
      waitTimeSeconds: config.sqs.waitTimeSeconds,
      visibilityTimeoutSeconds: config.sqs.visibilityTimeoutSeconds,
      onProcessed: (k) => progress.add(k),
    });
    worker = {
      start: () => w.start(),
      stop: async () => {
        await w.stop();
        sqs.destroy();
        await db.destroy();
      },
    };
  } else {
    const w = sqsConsumerWorker({
      sqs,
      queueUrl: formUrl,
      repository: new FormRepository(db, config.database.timeoutMs),
      onProcessed: (k) => progress.add(k),
      ...(variant === 'sqsConsumerBatch10' ? { overrides: { batchSize: 10 } } : {}),
    });
    worker = {
      start: () => w.start(),
      stop: async () => {
        await w.stop();
        sqs.destroy();
        await db.destroy();
      },
    };
  }

  await ctx.proxy.reset();
  const pids = { emulator: ctx.emulator.handle.child.pid!, proxy: ctx.proxy.handle.child.pid! };
  const cpu0 = { worker: process.cpuUsage(), emulator: await cpuMsOf(pids.emulator), proxy: await cpuMsOf(pids.proxy) };
  progress = new Progress(n);
  worker.start();
  const { count, elapsedMs, capped } = await progress.wait(capMs);
  const stats = await ctx.proxy.stats();
  const workerCpu = process.cpuUsage(cpu0.worker);
  const cpu = {
    worker: (workerCpu.user + workerCpu.system) / 1000,
    emulator: (await cpuMsOf(pids.emulator)) - cpu0.emulator,
    proxy: (await cpuMsOf(pids.proxy)) - cpu0.proxy,
  };
  // Stop: no new polls; deleting the queue ends the long polls still waiting.
  const connections = pool.stop();
  const stopped = worker.stop();
  await deleteQueue(ctx.direct, formUrl);
  await stopped;
  await deleteQueue(ctx.direct, invalidUrl);

  const stored = await ctx.rowCount();
  if (!capped && stored < n) throw new Error(`${variant}: ${n} messages reported done but ${stored} rows stored`);
  const per1000 = (x: number): number => (count > 0 ? (x * 1000) / count : Number.NaN);
  const run: WorkerRun = {
    variant,
    messages: count,
    elapsedMs,
    messagesPerSecond: count / (elapsedMs / 1000),
    capped,
    receivePer1000: per1000(sumActions(stats.counts, ['ReceiveMessage'])),
    deletePer1000: per1000(sumActions(stats.counts, ['DeleteMessage', 'DeleteMessageBatch'])),
    requests: stats.counts,
    cpuMsPer1000: { worker: per1000(cpu.worker), emulator: per1000(cpu.emulator), proxy: per1000(cpu.proxy) },
    connections,
    insertsPer1000: per1000(inserts.count),
  };
  if (ours && batches.count > 0) {
    const loops = config.worker.concurrency;
    const cycleMs = (elapsedMs * loops) / batches.count;
    const handleMs = batches.handleMs / batches.count;
    const insertMs = inserts.count > 0 ? inserts.totalMs / inserts.count : 0;
    const up = stats.upstream;
    run.breakdown = {
      batches: batches.count,
      avgBatch: count / batches.count,
      cycleMs,
      receiveMs: cycleMs - handleMs,
      handleMs,
      insertMs,
      deleteAndOtherMs: handleMs - insertMs,
      emulatorReceiveMs: up.ReceiveMessage ? up.ReceiveMessage.totalMs / up.ReceiveMessage.n : 0,
      emulatorDeleteMs: up.DeleteMessageBatch ? up.DeleteMessageBatch.totalMs / up.DeleteMessageBatch.n : 0,
    };
  }
  return run;
}

/** Samples the most connections a Knex pool holds at once, every 10 ms, until stopped. */
function watchPool(db: Knex): { stop(): number } {
  const pool = (db.client as { pool?: { numUsed(): number; numFree(): number } }).pool;
  let peak = 0;
  const sample = (): void => {
    if (pool) peak = Math.max(peak, pool.numUsed() + pool.numFree());
  };
  const timer = setInterval(sample, 10);
  return {
    stop: () => {
      sample();
      clearInterval(timer);
      return peak;
    },
  };
}

/**
 * The same rows through FormRepository.insertMany, `rowsPerInsert` per
 * statement, as many statements at a time as the default pool allows
 * (DATABASE_POOL_MAX), with no SQS.
 */
async function runCeiling(
  ctx: BenchContext,
  n: number,
  rowsPerInsert: number,
  variant: WorkerVariant,
): Promise<WorkerRun> {
  const config = loadConfig(ctx.env());
  const rows = ceilingRows(n);
  const db = createDatabase(config.database);
  const pool = watchPool(db);
  const inserts = timeInserts(db);
  try {
    const repository = new FormRepository(db, config.database.timeoutMs);
    await repository.ping();
    const cpu0 = process.cpuUsage();
    const elapsedMs = await insertAll(repository, rows, config.database.poolMax, rowsPerInsert, () => undefined);
    const cpu = process.cpuUsage(cpu0);
    const stored = await ctx.rowCount();
    if (stored !== n) throw new Error(`${variant}: ${stored} rows stored, expected ${n}`);
    return {
      variant,
      connections: pool.stop(),
      insertsPer1000: (inserts.count * 1000) / n,
      messages: n,
      elapsedMs,
      messagesPerSecond: n / (elapsedMs / 1000),
      capped: false,
      receivePer1000: 0,
      deletePer1000: 0,
      requests: {},
      cpuMsPer1000: { worker: ((cpu.user + cpu.system) / 1000) * (1000 / n), emulator: 0, proxy: 0 },
    };
  } finally {
    pool.stop();
    await db.destroy();
  }
}
