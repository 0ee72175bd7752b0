/**
 * Knex instance with explicit pool and timeout bounds.
 */
import knex, { type Knex } from 'knex';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';

export type { Knex };

/** Builds (without connecting) a Knex instance for PostgreSQL; Knex's own warnings go to `logger`. */
export function createDatabase(config: Config['database'], logger?: Logger): Knex {
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
    log: {
      // Connection failures surface as typed errors where the call is made; Knex's own echo of them is noise.
      warn: (message: unknown) => logger?.debug({ knex: String(message) }, 'knex warning'),
      error: (message: unknown) => logger?.error({ knex: String(message) }, 'knex error'),
      deprecate: (method: string, alternative: string) => logger?.debug({ method, alternative }, 'knex deprecation'),
      debug: () => undefined,
    },
  });
}
