/**
 * What every part of the benchmark shares: the emulator and the proxy (each a
 * process of its own), a direct client to the emulator, and a PostgreSQL
 * database of the benchmark's own (dropped at the end).
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createDatabase, type Knex } from '../services/common/db.ts';
import { pipelineEnv, preparePipeline } from '../harness/pipeline.ts';
import { createTestDatabase, stopTestServer, type TestDatabase } from '../harness/postgres.ts';
import { startEmulatorProcess, startProxyProcess, type Child, type ProxyProcess } from './processes.ts';
import { directClient } from './sqs.ts';

export interface BenchContext {
  emulator: Child & { url: string };
  proxy: ProxyProcess;
  /** Client straight to the emulator (not counted, not delayed). */
  direct: SQSClient;
  database: TestDatabase;
  /** Knex on the benchmark database, for counting and truncating. */
  db: Knex;
  delayMs: number;
  /**
   * Environment for the services (harness/pipeline.ts's, signed with its secret): everything at its default except
   * where to find SQS (through the proxy) and PostgreSQL; the benchmark makes its queues itself.
   */
  env(overrides?: Record<string, string>): Record<string, string>;
  rowCount(): Promise<number>;
  truncate(): Promise<void>;
  close(): Promise<void>;
}

export async function createBenchContext(delayMs: number): Promise<BenchContext> {
  const cleanups: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    const emulator = await startEmulatorProcess();
    cleanups.push(() => emulator.stop());
    const proxy = await startProxyProcess(emulator.url, delayMs);
    cleanups.push(() => proxy.stop());
    const direct = directClient(emulator.url);
    cleanups.push(async () => direct.destroy());
    const database = await createTestDatabase();
    cleanups.push(async () => {
      await database.drop();
      await stopTestServer();
    });
    const env = (overrides: Record<string, string> = {}): Record<string, string> =>
      pipelineEnv({
        databaseUrl: database.url,
        sqsEndpoint: proxy.url,
        createQueues: false,
        overrides: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', ...overrides },
      });
    await preparePipeline(env());
    const db = createDatabase({ url: database.url, poolMax: 2, timeoutMs: 60_000 });
    cleanups.push(() => db.destroy());
    return {
      emulator,
      proxy,
      direct,
      database,
      db,
      delayMs,
      env,
      rowCount: async () => {
        const row = (await db('form_form').count<{ count: string }[]>({ count: '*' }))[0];
        return Number(row?.count ?? 0);
      },
      truncate: async () => {
        await db.raw('TRUNCATE form_form RESTART IDENTITY');
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
