/**
 * The export's Knex instance. Unlike services/common/db.ts it sets no
 * statement or client-side query timeout, which would end a long export;
 * DATABASE_TIMEOUT_MS bounds only connecting and acquiring the connection.
 */
import knex, { type Knex } from 'knex';
import type { Config } from '../common/config.ts';

/** Builds (without connecting) a one-connection Knex instance for the export. */
export function createExportDatabase(config: Config['database']): Knex {
  return knex({
    client: 'pg',
    connection: {
      connectionString: config.url,
      connectionTimeoutMillis: config.timeoutMs,
      application_name: 'form-data-export',
    },
    pool: { min: 0, max: 1 },
    acquireConnectionTimeout: config.timeoutMs,
    // Failures surface as errors where the call is made; stdout carries the CSV.
    log: { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined },
  });
}
