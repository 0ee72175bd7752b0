/**
 * Migrations are listed here rather than discovered on disk, so the same list
 * runs from the TypeScript sources and from the compiled `dist/`.
 */
import type { Knex } from 'knex';
import * as formForm from './20260101000000_form_form.ts';
import * as submissionId from './20260201000000_submission_id.ts';

const MIGRATIONS: ReadonlyArray<readonly [string, Knex.Migration]> = [
  ['20260101000000_form_form', formForm],
  ['20260201000000_submission_id', submissionId],
];

const source: Knex.MigrationSource<string> = {
  getMigrations: async () => MIGRATIONS.map(([name]) => name),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const found = MIGRATIONS.find(([n]) => n === name);
    if (!found) throw new Error(`unknown migration ${name}`);
    return found[1];
  },
};

/** Knex migration settings shared by the CLI, the knexfile and the tests. */
export function migrationConfig(): Knex.MigratorConfig {
  return { migrationSource: source, tableName: 'knex_migrations' };
}
