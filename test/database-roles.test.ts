/**
 * One database identity per component, on PostgreSQL: the migrations CLI,
 * asked by DATABASE_WORKER_ROLE and DATABASE_EXPORT_ROLE, creates and grants
 * the roles; the worker's role stores, classifies and releases keys through
 * the real repository and cannot alter, drop, delete or rewrite; the export's
 * runs the real export and cannot write.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { createDatabase, type Knex } from '../services/common/db.ts';
import { parseInstant } from '../services/export/arguments.ts';
import { createExportDatabase } from '../services/export/repository.ts';
import { runExport } from '../services/export/run.ts';
import { FormRepository } from '../services/worker/repository.ts';
import { contentId } from '../services/common/submission-id.ts';
import type { FormData } from '../services/common/form-schema.ts';
import { startProcess } from '../harness/process.ts';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.ts';
import { validForm } from '../harness/forms.ts';

const NODE = process.execPath;

describe('database roles per component (DATABASE_WORKER_ROLE, DATABASE_EXPORT_ROLE)', function () {
  this.timeout(120_000);
  const suffix = randomBytes(4).toString('hex');
  const workerRole = `fd_worker_${suffix}`;
  const exportRole = `fd_export_${suffix}`;
  const password = randomBytes(12).toString('hex');
  let database: TestDatabase;
  let admin: Knex;
  let worker: Knex;
  let exporter: Knex;

  const urlAs = (role: string): string => {
    const url = new URL(database.url);
    url.username = role;
    url.password = password;
    return url.toString();
  };

  async function migrate(env: Record<string, string>): Promise<void> {
    const run = startProcess(NODE, ['migrations/cli.ts', 'latest'], { DATABASE_URL: database.url, ...env });
    const { code } = await run.exited;
    expect(code, [...run.text, ...run.logs.map((l) => JSON.stringify(l))].join('\n')).to.equal(0);
  }

  before(async () => {
    database = await createTestDatabase();
    admin = createDatabase({ url: database.url, poolMax: 1, timeoutMs: 5000 });
    // Twice: the grants are idempotent.
    for (let i = 0; i < 2; i++) await migrate({ DATABASE_WORKER_ROLE: workerRole, DATABASE_EXPORT_ROLE: exportRole });
    for (const role of [workerRole, exportRole]) await admin.raw(`ALTER ROLE ${role} LOGIN PASSWORD '${password}'`);
    worker = createDatabase({ url: urlAs(workerRole), poolMax: 1, timeoutMs: 5000 });
    exporter = createDatabase({ url: urlAs(exportRole), poolMax: 1, timeoutMs: 5000 });
  });
  after(async () => {
    await worker?.destroy();
    await exporter?.destroy();
    await admin?.destroy();
    await database?.drop();
    const cleanup = createDatabase({ url: database.url.replace(/\/[^/]*$/, '/postgres'), poolMax: 1, timeoutMs: 5000 });
    try {
      for (const role of [workerRole, exportRole]) await cleanup.raw(`DROP ROLE IF EXISTS ${role}`);
    } finally {
      await cleanup.destroy();
    }
  });

  it('creates the roles without login, so nothing can connect as them until an operator allows it', async () => {
    const roles = await admin.raw<{ rows: { rolname: string; rolsuper: boolean; rolcreaterole: boolean }[] }>(
      'SELECT rolname, rolsuper, rolcreaterole FROM pg_roles WHERE rolname IN (?, ?) ORDER BY rolname',
      [exportRole, workerRole],
    );
    expect(roles.rows).to.deep.equal([
      { rolname: exportRole, rolsuper: false, rolcreaterole: false },
      { rolname: workerRole, rolsuper: false, rolcreaterole: false },
    ]);
  });

  it("the worker's role stores, classifies and releases keys through the real repository", async () => {
    const repository = new FormRepository(worker, 5000);
    await repository.ping();
    const data = validForm({ company_name: 'Least privilege Ltd' }) as FormData;
    const row = { messageId: 'm-1', data, submissionId: contentId(data) };
    expect([...(await repository.insertMany([row]))]).to.deep.equal(['m-1']);
    expect([...(await repository.insertMany([{ ...row, messageId: 'm-2' }]))]).to.deep.equal([]);
    expect(await repository.classifySkipped([{ ...row, messageId: 'm-2' }])).to.deep.equal(
      new Map([['m-2', 'duplicate']]),
    );
    await admin.raw(`UPDATE form_form SET created = now() - interval '2 days'`);
    expect(await repository.expireKeys(86_400)).to.equal(1);
  });

  const refused = async (db: Knex, statement: string): Promise<string> => {
    try {
      await db.raw(statement);
    } catch (error) {
      return String((error as Error).message);
    }
    throw new Error(`${statement} was allowed`);
  };

  for (const statement of [
    'ALTER TABLE form_form ADD COLUMN x int',
    'DROP TABLE form_form',
    'DROP INDEX form_form_submission_key_uniq',
    'TRUNCATE form_form',
    'DELETE FROM form_form',
    `UPDATE form_form SET data = '{}'::jsonb`,
    `UPDATE form_form SET submission_id = NULL`,
    'CREATE INDEX form_form_x ON form_form (created)',
    'SELECT * FROM knex_migrations',
  ]) {
    it(`the worker's role cannot: ${statement}`, async () => {
      expect(await refused(worker, statement)).to.match(/permission denied|must be owner|must be the owner/);
    });
  }

  it("the export's role runs the real export", async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    const db = createExportDatabase({ url: urlAs(exportRole), poolMax: 1, timeoutMs: 5000 });
    try {
      const summary = await runExport(
        { since: parseInstant('2016-07-21'), until: undefined },
        { db, output: out, stderr: new PassThrough() },
      );
      expect(summary.rows).to.equal(1);
    } finally {
      await db.destroy();
    }
    expect(Buffer.concat(chunks).toString('utf8')).to.contain('Least privilege Ltd');
  });

  for (const statement of [
    `INSERT INTO form_form (data) VALUES ('{}'::jsonb)`,
    `UPDATE form_form SET submission_key = NULL`,
    'DELETE FROM form_form',
    'TRUNCATE form_form',
    'ALTER TABLE form_form ADD COLUMN x int',
    'DROP TABLE form_form',
  ]) {
    it(`the export's role cannot: ${statement}`, async () => {
      expect(await refused(exporter, statement)).to.match(/permission denied|must be owner|must be the owner/);
    });
  }

  it('refuses a role name that is not a plain identifier, naming the variable', async () => {
    const run = startProcess(NODE, ['migrations/cli.ts', 'latest'], {
      DATABASE_URL: database.url,
      DATABASE_WORKER_ROLE: 'x; DROP TABLE form_form',
    });
    const { code } = await run.exited;
    expect(code).to.not.equal(0);
    expect([...run.text, ...run.logs.map((l) => JSON.stringify(l))].join('\n')).to.contain('DATABASE_WORKER_ROLE');
    expect(await admin.raw('SELECT count(*) FROM form_form')).to.have.nested.property('rows[0].count', '1');
  });
});
