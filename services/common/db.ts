/**
 * The Knex factory of every part: explicit pool and timeout bounds.
 */
import knex, { type Knex } from 'knex';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';

export type { Knex };

/** How a part's connections differ from the services'. */
export interface DatabaseOptions {
  /** `application_name` of the connections; default `form-data`. */
  applicationName?: string;
  /**
   * Statements may run as long as they need (the CSV export): no statement or
   * client-side query timeout, so `timeoutMs` bounds only connecting and
   * acquiring a connection. Default false.
   */
  longStatements?: boolean;
}

/** Builds (without connecting) a Knex instance for PostgreSQL; Knex's own warnings go to `logger`. */
export function createDatabase(config: Config['database'], logger?: Logger, options: DatabaseOptions = {}): Knex {
  const timeouts = options.longStatements ? {} : { statement_timeout: config.timeoutMs, query_timeout: config.timeoutMs + 1000 };
  return knex({
    client: 'pg',
    connection: {
      connectionString: config.url,
      connectionTimeoutMillis: config.timeoutMs,
      ...timeouts,
      application_name: options.applicationName ?? 'form-data',
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
