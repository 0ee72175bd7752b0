/**
 * The submission identity (docs/exactly-once.md), added in place: `submission_id`
 * is the id the 202 named, kept for good; `submission_key` holds the same id
 * while it still keeps later copies out, and the worker clears it once the
 * key has expired, so the partial unique index holds only live keys. Both are
 * NULL on rows adopted from the replaced service and on messages without an
 * id. Rolling back drops the index only: the columns stay with their values.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Nullable columns without a default: a catalogue change, no table rewrite.
  await knex.raw('ALTER TABLE form_form ADD COLUMN IF NOT EXISTS submission_id uuid NULL');
  await knex.raw('ALTER TABLE form_form ADD COLUMN IF NOT EXISTS submission_key uuid NULL');
  await knex.raw(`
    CREATE UNIQUE INDEX IF NOT EXISTS form_form_submission_key_uniq
    ON form_form (submission_key) WHERE submission_key IS NOT NULL`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS form_form_submission_key_uniq');
}
