import { expect } from 'chai';
import { createDatabase, type Knex } from '../services/common/db.ts';
import { migrationConfig } from '../migrations/config.ts';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.ts';
import { DJANGO_TABLE } from './support/django.ts';

const KEY = '0f8fad5b-d9cb-469f-a165-70867728950e';

describe('migrations', () => {
  let database: TestDatabase;
  let db: Knex;
  beforeEach(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, poolMax: 2, timeoutMs: 5000 });
  });
  afterEach(async () => {
    await db.destroy();
    await database.drop();
  });

  async function indexes(): Promise<string[]> {
    const r = await db.raw<{ rows: { indexdef: string }[] }>(
      "select indexdef from pg_indexes where tablename = 'form_form' order by indexname",
    );
    return r.rows.map((x) => x.indexdef);
  }

  it('creates the table on an empty database, with the created index and a unique message id', async () => {
    await db.migrate.latest(migrationConfig());
    const columns = await db('information_schema.columns')
      .where({ table_name: 'form_form' })
      .select('column_name', 'data_type', 'is_nullable', 'column_default');
    expect(
      Object.fromEntries(columns.map((c: { column_name: string; data_type: string }) => [c.column_name, c.data_type])),
    ).to.deep.equal({
      id: 'integer',
      created: 'timestamp with time zone',
      data: 'jsonb',
      sqs_message_id: 'character varying',
      submission_id: 'uuid',
      submission_key: 'uuid',
    });
    expect((await indexes()).join('\n'))
      .to.match(/UNIQUE INDEX .* \(sqs_message_id\)/)
      .and.match(/INDEX form_form_created_idx .* \(created\)/);
    await db('form_form').insert({ data: JSON.stringify({ a: 1 }), sqs_message_id: 'm1' });
    const conflict = await db('form_form')
      .insert({ data: JSON.stringify({ a: 2 }), sqs_message_id: 'm1' })
      .onConflict('sqs_message_id')
      .ignore()
      .returning('id');
    expect(conflict).to.have.length(0);
  });

  it('adopts an existing table of the replaced service in place, keeping its rows, and is idempotent', async () => {
    await db.raw(DJANGO_TABLE);
    await db('form_form').insert([
      {
        created: new Date('2019-05-01T10:00:00Z'),
        data: JSON.stringify({ company_name: 'Old Ltd' }),
        sqs_message_id: 'old-1',
      },
      {
        created: new Date('2019-05-02T10:00:00Z'),
        data: JSON.stringify({ company_name: 'Older Ltd' }),
        sqs_message_id: null,
      },
    ]);
    await db.migrate.latest(migrationConfig());
    const rows = await db('form_form').orderBy('id').select('data', 'sqs_message_id');
    expect(rows.map((r: { data: { company_name: string } }) => r.data.company_name)).to.deep.equal([
      'Old Ltd',
      'Older Ltd',
    ]);
    // The worker relies on the database default for created.
    const [row] = await db('form_form')
      .insert({ data: JSON.stringify({ company_name: 'New Ltd' }), sqs_message_id: 'new-1' })
      .returning(['created']);
    expect((row as { created: Date }).created).to.be.instanceOf(Date);
    const uniques = (await indexes()).filter((d) => d.includes('UNIQUE') && d.includes('sqs_message_id'));
    expect(uniques, "no second unique index beside Django's").to.have.length(1);

    const adopted = await db('form_form').whereIn('sqs_message_id', ['old-1']).first('submission_id', 'submission_key');
    expect(adopted).to.deep.equal({ submission_id: null, submission_key: null });
    await db('form_form').insert({
      data: JSON.stringify({ company_name: 'Keyed Ltd' }),
      sqs_message_id: 'new-2',
      submission_id: KEY,
      submission_key: KEY,
    });

    await db.migrate.rollback(migrationConfig());
    expect(await db('form_form').count({ n: '*' })).to.deep.equal([{ n: '4' }]);
    await db.migrate.latest(migrationConfig());
    expect((await indexes()).join('\n'))
      .to.contain('form_form_created_idx')
      .and.contain('form_form_submission_key_uniq');
    expect(await db('form_form').where({ sqs_message_id: 'new-2' }).first('submission_id')).to.deep.equal({
      submission_id: KEY,
    });
  });

  describe('the submission id migration', () => {
    const upToFirst = async (): Promise<void> => {
      await db.migrate.up({ ...migrationConfig(), name: '20260101000000_form_form' });
    };

    it('on an empty database: a unique key on live submission keys only, NULLs allowed', async () => {
      await db.migrate.latest(migrationConfig());
      expect((await indexes()).join('\n')).to.match(
        /UNIQUE INDEX form_form_submission_key_uniq .* \(submission_key\) WHERE \(submission_key IS NOT NULL\)/,
      );
      await db('form_form').insert([
        { data: '{}', sqs_message_id: 'a', submission_id: KEY, submission_key: KEY },
        { data: '{}', sqs_message_id: 'b' },
        { data: '{}', sqs_message_id: 'c' },
      ]);
      const again = await db('form_form')
        .insert({ data: '{}', sqs_message_id: 'd', submission_id: KEY, submission_key: KEY })
        .onConflict()
        .ignore()
        .returning('id');
      expect(again, 'a second row under a live key').to.have.length(0);
      await db('form_form').where({ sqs_message_id: 'a' }).update({ submission_key: null });
      const expired = await db('form_form')
        .insert({ data: '{}', sqs_message_id: 'e', submission_id: KEY, submission_key: KEY })
        .onConflict()
        .ignore()
        .returning('id');
      expect(expired, 'a new row once the key is released').to.have.length(1);
    });

    it('on a database of the earlier migration with rows: adds in place, keeps rows; rollback drops only the index', async () => {
      await upToFirst();
      await db('form_form').insert([
        { data: JSON.stringify({ company_name: 'One Ltd' }), sqs_message_id: 'm1' },
        { data: JSON.stringify({ company_name: 'Two Ltd' }), sqs_message_id: 'm2' },
      ]);
      const before = await db('form_form').orderBy('id').select('id', 'created', 'data', 'sqs_message_id');
      await db.migrate.latest(migrationConfig());
      const after = await db('form_form')
        .orderBy('id')
        .select('id', 'created', 'data', 'sqs_message_id', 'submission_id', 'submission_key');
      expect(after).to.deep.equal(
        before.map((r: Record<string, unknown>) => ({ ...r, submission_id: null, submission_key: null })),
      );
      await db('form_form').insert({ data: '{}', sqs_message_id: 'm3', submission_id: KEY, submission_key: KEY });

      const [, rolledBack] = (await db.migrate.rollback(migrationConfig())) as [number, string[]];
      expect(rolledBack).to.deep.equal(['20260201000000_submission_id']);
      expect(await db('form_form').count({ n: '*' })).to.deep.equal([{ n: '3' }]);
      expect(
        await db('form_form').where({ sqs_message_id: 'm3' }).first('submission_id'),
        'the row keeps its submission id',
      ).to.deep.equal({ submission_id: KEY });
      expect((await indexes()).join('\n')).not.to.contain('submission_key');
      await db.migrate.latest(migrationConfig());
      expect((await indexes()).join('\n')).to.contain('form_form_submission_key_uniq');
    });
  });
});
