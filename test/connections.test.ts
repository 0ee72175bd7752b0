/**
 * Many workers, one small PostgreSQL: four workers at their defaults drain a
 * backlog from a server started by the test with a small max_connections,
 * every form stored once and no database error anywhere.
 */
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { migrationConfig } from '../migrations/config.ts';
import { loadConfig } from '../services/common/config.ts';
import { createDatabase } from '../services/common/db.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../harness/embedded-postgres.ts';
import { freePort } from '../harness/ports.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, queueEmptied } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';

/** Client connections the server allows: four workers at the default pool (2) take 8; the test's own 2 + 1 sampler. */
const MAX_CONNECTIONS = 12;
const WORKERS = 4;
const FORMS = 4000;

describe('four workers at their defaults on a PostgreSQL with max_connections = 12', function () {
  this.timeout(240_000);
  const emulator = useEmulator();
  let dir: string;
  let server: EmbeddedPostgres;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'form-data-small-pg-'));
    server = await startEmbeddedPostgres({
      dir,
      port: await freePort(),
      flags: ['-c', `max_connections=${MAX_CONNECTIONS}`, '-c', 'superuser_reserved_connections=0'],
    });
  });
  after(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('drains a 4,000-form backlog: every form once, zero database errors, at most 2 connections per worker', async () => {
    const url = await server.createDatabase('small');
    const setup = createDatabase({ url, poolMax: 2, timeoutMs: 10_000 });
    const t = await createTestEnv(emulator.endpoint);
    const sampler = new pg.Client({ connectionString: url, application_name: 'test-sampler' });
    const workers: WorkerService[] = [];
    try {
      await setup.migrate.latest(migrationConfig());
      expect(
        (await setup.raw<{ rows: { max_connections: string }[] }>('SHOW max_connections')).rows[0]?.max_connections,
      ).to.equal(String(MAX_CONNECTIONS));
      const { form } = await t.queueUrls();
      const bodies = Array.from({ length: FORMS }, (_, i) =>
        JSON.stringify({ data: validForm({ company_name: `small ${i}` }), request_id: `small-${i}` }),
      );
      for (let i = 0; i < FORMS; i += 10) {
        await t.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: form,
            Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })),
          }),
        );
      }
      // Everything at its default but where SQS and the database are.
      const config = loadConfig({ ...t.env, DATABASE_URL: url, SQS_CREATE_QUEUES: 'false' });
      expect(config.database.poolMax).to.equal(2);
      let backoffs = 0;
      let failedBatches = 0;
      for (let i = 0; i < WORKERS; i++) {
        const worker = await createWorkerService(config);
        worker.consumer.on('backoff', () => (backoffs += 1));
        worker.consumer.on('batch', (r) => (failedBatches += r.databaseFailed ? 1 : 0));
        workers.push(worker);
      }
      // The test's own connections from here on: the sampler only (it has another application_name).
      await setup.destroy();
      await sampler.connect();
      await Promise.all(workers.map((w) => w.start()));
      let peak = 0;
      await eventually(
        async () => {
          const active = await sampler.query<{ n: string }>(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'form-data'",
          );
          peak = Math.max(peak, Number(active.rows[0]?.n));
          const stored = await sampler.query<{ n: string }>('SELECT count(*) AS n FROM form_form');
          return Number(stored.rows[0]?.n) >= FORMS ? true : undefined;
        },
        180_000,
        `${FORMS} rows`,
      );
      await queueEmptied(t.sqs, form, 30_000, 'the queue emptied');
      const databaseErrors = await Promise.all(
        workers.map(async (w) => (await w.metrics.databaseErrors.get()).values.reduce((sum, v) => sum + v.value, 0)),
      );
      await Promise.all(workers.splice(0).map((w) => w.stop()));
      expect(databaseErrors, 'form_data_worker_database_errors_total of each worker').to.deep.equal(
        Array.from({ length: WORKERS }, () => 0),
      );

      const counts = await sampler.query<{ total: string; distinct: string }>(
        'SELECT count(*) AS total, count(DISTINCT sqs_message_id) AS distinct FROM form_form',
      );
      expect(counts.rows[0]).to.deep.equal({ total: String(FORMS), distinct: String(FORMS) });
      expect(failedBatches, 'batches that failed on the database').to.equal(0);
      expect(backoffs, 'poll-loop backoffs').to.equal(0);
      expect(peak, 'worker connections seen by the server').to.be.at.most(WORKERS * config.database.poolMax);
      expect(peak).to.be.greaterThan(0);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await sampler.end().catch(() => undefined);
      await setup.destroy();
      await t.cleanup();
    }
  });
});
