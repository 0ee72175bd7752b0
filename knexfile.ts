/** Knex CLI configuration: DATABASE_URL, migrations in ./migrations. */
import { loadConfig } from './services/common/config.ts';
import { migrationConfig } from './migrations/config.ts';

const config = loadConfig();

export default {
  client: 'pg',
  connection: config.database.url,
  migrations: migrationConfig(),
};
