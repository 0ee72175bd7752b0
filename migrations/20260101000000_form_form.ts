/**
 * The form table, compatible with the replaced Django service: on an empty
 * database it is created; an existing `form_form` (with its rows) is adopted
 * in place. Rolling back never drops form data.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE IF NOT EXISTS form_form (
      id serial PRIMARY KEY,
      created timestamptz NOT NULL DEFAULT now(),
      data jsonb NOT NULL,
      sqs_message_id varchar(255) NULL,
      CONSTRAINT form_form_sqs_message_id_key UNIQUE (sqs_message_id)
    )`);
  // Django sets `created` in Python; the new worker relies on the database default.
  await knex.raw('ALTER TABLE form_form ALTER COLUMN created SET DEFAULT now()');
  const unique = await knex.raw<{ rows: unknown[] }>(`
    SELECT 1 FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = 'form_form'::regclass AND i.indisunique AND i.indnkeyatts = 1
      AND a.attname = 'sqs_message_id' AND i.indpred IS NULL`);
  if (unique.rows.length === 0) {
    await knex.raw('CREATE UNIQUE INDEX form_form_sqs_message_id_uniq ON form_form (sqs_message_id)');
  }
  await knex.raw('CREATE INDEX IF NOT EXISTS form_form_created_idx ON form_form (created)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS form_form_created_idx');
}
