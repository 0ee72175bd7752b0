/**
 * What one test owns: a database of its own (migrated), queue names of its
 * own on the shared emulator, and the configuration that points at them.
 */
import { randomBytes } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { loadConfig, type Config } from '../../services/common/config.ts';
import { createDatabase, type Knex } from '../../services/common/db.ts';
import { migrationConfig } from '../../migrations/config.ts';
import { createLogger } from '../../services/common/logger.ts';
import { resolveQueueUrls } from '../../services/common/sqs.ts';
import { createTestDatabase, type TestDatabase } from '../../harness/postgres.ts';
import { observerClient, queueUrl } from '../../harness/sqs.ts';
import { TEST_SECRET } from '../../harness/forms.ts';

export { eventually } from './eventually.ts';

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
  const suffix = randomBytes(4).toString('hex');
  const formQueue = `form-${suffix}`;
  const invalidQueue = `invalid-${suffix}`;
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    SQS_ENDPOINT_URL: endpoint,
    SQS_CREATE_QUEUES: 'true',
    SQS_FORM_DATA_QUEUE_NAME: formQueue,
    SQS_INVALID_MESAGES_QUEUE_NAME: invalidQueue,
    SQS_WAIT_TIME: '1',
    SQS_VISIBILITY_TIMEOUT: '30',
    UI_SECRET: TEST_SECRET,
    PORT: '0',
    HEALTH_PORT: '0',
    LOG_LEVEL: 'silent',
    SHUTDOWN_DELAY_MS: '0',
    ...overrides,
  };
  const db = createDatabase({ url: database.url, poolMax: 2, timeoutMs: 5000 });
  if (options.migrate ?? true) await db.migrate.latest(migrationConfig());
  const sqs = observerClient(endpoint);
  const config = loadConfig(env);
  // The same creation the services do with SQS_CREATE_QUEUES, so tests can send before a service starts.
  if (config.sqs.createQueues) await resolveQueueUrls(sqs, config.sqs, createLogger('silent', 'test'));
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
