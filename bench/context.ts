/**
 * What every part of the benchmark shares: the emulator and the proxy (each a
 * process of its own), a direct client to the emulator, and a PostgreSQL
 * database of the benchmark's own (dropped at the end).
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createDatabase, type Knex } from '../services/common/db.ts';
import { migrationConfig } from '../migrations/config.ts';
import { createTestDatabase, stopTestServer, type TestDatabase } from '../harness/postgres.ts';
import { startEmulatorProcess, startProxyProcess, type Child, type ProxyProcess } from './processes.ts';
import { directClient } from './sqs.ts';

export const BENCH_SECRET = 'bench-ui-secret-of-at-least-32-characters';

export interface BenchContext {
  emulator: Child & { url: string };
  proxy: ProxyProcess;
  /** Client straight to the emulator (not counted, not delayed). */
  direct: SQSClient;
  database: TestDatabase;
  /** Knex on the benchmark database, for counting and truncating. */
  db: Knex;
  delayMs: number;
  /** Environment for the services: everything at its default except where to find SQS and PostgreSQL. */
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
    const db = createDatabase({ url: database.url, poolMax: 2, timeoutMs: 60_000 });
    cleanups.push(() => db.destroy());
    await db.migrate.latest(migrationConfig());
    return {
      emulator,
      proxy,
      direct,
      database,
      db,
      delayMs,
      env: (overrides = {}) => ({
        SQS_ENDPOINT_URL: proxy.url,
        DATABASE_URL: database.url,
        UI_SECRET: BENCH_SECRET,
        PORT: '0',
        HEALTH_PORT: '0',
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
        SHUTDOWN_DELAY_MS: '0',
        ...overrides,
      }),
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
