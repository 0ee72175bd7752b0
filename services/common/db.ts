/**
 * Knex instance with explicit pool and timeout bounds.
 */
import knex, { type Knex } from 'knex';
import type { Config } from './config.ts';

export type { Knex };

/** Builds (without connecting) a Knex instance for PostgreSQL. */
export function createDatabase(config: Config['database']): Knex {
  return knex({
    client: 'pg',
    connection: {
      connectionString: config.url,
      connectionTimeoutMillis: config.timeoutMs,
      statement_timeout: config.timeoutMs,
      query_timeout: config.timeoutMs + 1000,
      application_name: 'form-data',
    },
    pool: { min: 0, max: config.poolMax, idleTimeoutMillis: 30_000 },
    acquireConnectionTimeout: config.timeoutMs,
  });
}
