/**
 * What one test owns: a database of its own (migrated), queue names of its
 * own on the shared emulator, and the configuration that points at them
 * (harness/pipeline.ts's environment and preparation).
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { loadConfig, type Config } from '../../services/common/config.ts';
import { createDatabase, type Knex } from '../../services/common/db.ts';
import { createTestDatabase, type TestDatabase } from '../../harness/postgres.ts';
import { observerClient, queueCounts, queueUrl } from '../../harness/sqs.ts';
import { pipelineEnv, preparePipeline, uniqueQueues } from '../../harness/pipeline.ts';
import { eventually } from './eventually.ts';

export { eventually };

export interface TestEnv {
  /** Environment variables for a service process or loadConfig. */
  env: Record<string, string>;
  config: Config;
  database: TestDatabase;
  /** Knex on the test database, for assertions. */
  db: Knex;
  /** The tests' own SQS client. */
  sqs: SQSClient;
  formQueue: string;
  invalidQueue: string;
  /** Config for a variant of the same environment. */
  with(overrides: Record<string, string>): Config;
  queueUrls(): Promise<{ form: string; invalid: string }>;
  cleanup(): Promise<void>;
}

export async function createTestEnv(
  endpoint: string,
  overrides: Record<string, string> = {},
  options: { migrate?: boolean } = {},
): Promise<TestEnv> {
  const database = await createTestDatabase();
  const queues = uniqueQueues('test');
  const formQueue = queues.form;
  const invalidQueue = queues.invalid;
  const env = pipelineEnv({
    databaseUrl: database.url,
    sqsEndpoint: endpoint,
    queues,
    overrides: { SQS_WAIT_TIME: '1', SQS_VISIBILITY_TIMEOUT: '30', LOG_LEVEL: 'silent', ...overrides },
  });
  const sqs = observerClient(endpoint);
  // Queues made as the services make them with SQS_CREATE_QUEUES, so tests can send before a service starts.
  const config = await preparePipeline(env, { ...options, sqs });
  const db = createDatabase({ url: database.url, poolMax: 2, timeoutMs: 5000 });
  return {
    env,
    config,
    database,
    db,
    sqs,
    formQueue,
    invalidQueue,
    with: (more) => loadConfig({ ...env, ...more }),
    queueUrls: async () => ({ form: await queueUrl(sqs, formQueue), invalid: await queueUrl(sqs, invalidQueue) }),
    cleanup: async () => {
      sqs.destroy();
      await db.destroy();
      await database.drop();
    },
  };
}

/** Waits until the queue at `url` holds no message, visible, in flight or delayed. */
export async function queueEmptied(
  sqs: SQSClient,
  url: string,
  timeoutMs = 30_000,
  what = 'the queue emptied',
): Promise<void> {
  await eventually(
    async () => {
      const c = await queueCounts(sqs, url);
      return c.visible + c.inFlight + c.delayed === 0 ? true : undefined;
    },
    timeoutMs,
    what,
  );
}
