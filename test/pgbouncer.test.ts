/**
 * The worker, the migrations and the CSV export through a real PgBouncer in
 * transaction pooling with its default settings (test/support/pgbouncer.ts).
 */
import { expect } from 'chai';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { migrationConfig } from '../migrations/config.ts';
import { createDatabase, type Knex } from '../services/common/db.ts';
import { DatabaseError } from '../services/common/errors.ts';
import type { FormData } from '../services/common/form-schema.ts';
import { FormRepository } from '../services/worker/repository.ts';
import { createWorkerService } from '../services/worker/service.ts';
import { parseCsvObjects } from './support/csv.ts';
import { startPgBouncer, type PgBouncer } from './support/pgbouncer.ts';
import { requireTool, TOOLS } from './support/tools.ts';
import { createTestDatabase, testServer, type TestDatabase } from '../harness/postgres.ts';
import { queueCounts } from '../harness/sqs.ts';
import { runToEnd, type Finished } from '../harness/process.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually } from './support/stack.ts';
import { queueBody, validForm } from '../harness/forms.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Runs a TypeScript entry point of the project as a child process with `env` (plus PATH and HOME). */
function run(script: string, args: readonly string[], env: Record<string, string>): Promise<Finished> {
  return runToEnd(process.execPath, [path.join(ROOT, script), ...args], env, { cwd: ROOT });
}

describe('through PgBouncer (transaction pooling, default settings)', function () {
  this.timeout(120_000);
  const emulator = useEmulator();
  let bouncer: PgBouncer;
  before(async function () {
    const binary = await requireTool(this, TOOLS.pgbouncer);
    bouncer = await startPgBouncer(binary, (await testServer()).adminUrl);
  });
  after(async () => {
    await bouncer?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`pgbouncer log:\n${bouncer.log()}\n`);
  });

  it('refuses a statement_timeout startup parameter (the pooler under test is the strict one)', async () => {
    const database = await createTestDatabase();
    const client = new pg.Client({ connectionString: bouncer.via(database.url), statement_timeout: 1000 });
    try {
      await client.connect().then(
        () => expect.fail('PgBouncer accepted the startup parameter'),
        (error: unknown) => expect(String(error)).to.match(/unsupported startup parameter/),
      );
    } finally {
      await client.end().catch(() => undefined);
      await database.drop();
    }
  });

  it('runs the worker: forms stored once, the queue emptied, no startup parameter refused', async () => {
    const logFrom = bouncer.log().length;
    const t = await createTestEnv(emulator.endpoint);
    const worker = await createWorkerService(t.with({ DATABASE_URL: bouncer.via(t.database.url) }));
    try {
      await worker.start();
      const { form } = await t.queueUrls();
      for (let i = 0; i < 20; i++) {
        const Entries = Array.from({ length: 10 }, (_, j) => ({
          Id: String(j),
          MessageBody: queueBody(validForm({ company_name: `pooled ${i}.${j}` }), 'pgbouncer'),
        }));
        await t.sqs.send(new SendMessageBatchCommand({ QueueUrl: form, Entries }));
      }
      await eventually(
        async () => {
          const [row] = await t.db('form_form').count<{ n: string }[]>({ n: '*' });
          return Number(row?.n) === 200 ? true : undefined;
        },
        30_000,
        '200 rows',
      );
      await eventually(
        async () => {
          const c = await queueCounts(t.sqs, form);
          return c.visible + c.inFlight === 0 ? true : undefined;
        },
        30_000,
        'the queue emptied',
      );
      const [distinct] = await t.db('form_form').countDistinct<{ n: string }[]>({ n: 'sqs_message_id' });
      expect(Number(distinct?.n)).to.equal(200);
    } finally {
      await worker.stop();
      await t.cleanup();
    }
    expect(bouncer.log().slice(logFrom)).not.to.match(/unsupported startup parameter|pooler error/);
  });

  it('bounds an insert with SET LOCAL timeouts that end with its transaction', async () => {
    const database = await createTestDatabase();
    const direct = createDatabase({ url: database.url, poolMax: 1, timeoutMs: 5000 });
    // One server connection behind the pooler, so the check below runs on the connection the insert used.
    const pooled: Knex = createDatabase({ url: bouncer.via(database.url), poolMax: 1, timeoutMs: 5000 });
    const holder = new pg.Client({ connectionString: database.url });
    try {
      await direct.migrate.latest(migrationConfig());
      await holder.connect();
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE form_form IN ACCESS EXCLUSIVE MODE');
      const repository = new FormRepository(pooled, 300);
      const started = Date.now();
      const error = await repository.insertMany([{ messageId: 'locked', data: validForm() as FormData }]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(DatabaseError);
      expect((error as DatabaseError).messageIds).to.deep.equal(['locked']);
      expect(String((error as Error).message)).to.match(/lock timeout|statement timeout/);
      expect(Date.now() - started).to.be.lessThan(4000);
      await holder.query('ROLLBACK');
      const shown = await pooled.raw<{ rows: { statement_timeout: string; lock_timeout: string }[] }>(
        "SELECT current_setting('statement_timeout') AS statement_timeout, current_setting('lock_timeout') AS lock_timeout",
      );
      expect(shown.rows[0]).to.deep.equal({ statement_timeout: '0', lock_timeout: '0' });
      expect([...(await repository.insertMany([{ messageId: 'free', data: validForm() as FormData }]))]).to.deep.equal([
        'free',
      ]);
    } finally {
      await holder.end().catch(() => undefined);
      await pooled.destroy();
      await direct.destroy();
      await database.drop();
    }
  });

  it('runs the migrations (latest, status, rollback) through the pooler', async () => {
    const database: TestDatabase = await createTestDatabase();
    const env = { DATABASE_URL: bouncer.via(database.url), LOG_LEVEL: 'info' };
    const db = createDatabase({ url: database.url, poolMax: 1, timeoutMs: 5000 });
    try {
      const latest = await run('migrations/cli.ts', ['latest'], env);
      expect(latest.code, latest.stderr + latest.stdout).to.equal(0);
      expect(await db.schema.hasTable('form_form')).to.equal(true);
      const status = await run('migrations/cli.ts', ['status'], env);
      expect(status.code, status.stderr + status.stdout).to.equal(0);
      expect(status.stdout).to.match(/"pending":0/);
      const rollback = await run('migrations/cli.ts', ['rollback'], env);
      expect(rollback.code, rollback.stderr + rollback.stdout).to.equal(0);
      // Rolling back never drops form data; the migration is recorded as undone.
      expect(await db('knex_migrations').count<{ n: string }[]>({ n: '*' })).to.deep.equal([{ n: '0' }]);
    } finally {
      await db.destroy();
      await database.drop();
    }
  });

  it('exports the CSV through the pooler, more rows than one cursor fetch', async () => {
    const database = await createTestDatabase();
    const db = createDatabase({ url: database.url, poolMax: 1, timeoutMs: 5000 });
    try {
      await db.migrate.latest(migrationConfig());
      const n = 2500;
      await db.raw(
        `INSERT INTO form_form (created, data, sqs_message_id)
         SELECT timestamptz '2026-01-01T00:00:00Z' + i * interval '1 second', jsonb_build_object('company_name', 'Row ' || i), 'm' || i
         FROM generate_series(1, ?) AS i`,
        [n],
      );
      const out = await run('services/export/main.ts', ['--since', '2000-01-01'], {
        DATABASE_URL: bouncer.via(database.url),
      });
      expect(out.code, out.stderr).to.equal(0);
      const records = parseCsvObjects(out.stdout).rows;
      expect(records).to.have.length(n);
      expect(records[0]).to.include({ company_name: 'Row 1' });
      expect(records[n - 1]).to.include({ company_name: `Row ${n}` });
    } finally {
      await db.destroy();
      await database.drop();
    }
  });
});
