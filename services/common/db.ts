/**
 * The Knex factory of every part: Knex with explicit pool and timeout bounds, safe behind a
 * transaction-pooling PgBouncer (or RDS Proxy, pgcat): no startup parameter a
 * pooler refuses, no session state. Server-side timeouts are set with
 * `SET LOCAL` inside the transaction that needs them (`withTimeouts`).
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
  const timeouts = options.longStatements ? {} : { query_timeout: config.timeoutMs + 1000 };
  return knex({
    client: 'pg',
    connection: {
      connectionString: config.url,
      connectionTimeoutMillis: config.timeoutMs,
      // Client-side bound of every query; `statement_timeout` here would be a startup parameter PgBouncer refuses.
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

/**
 * Runs `fn` in a transaction whose statements time out on the server after
 * `timeoutMs` (statement and lock timeouts, `SET LOCAL`: they end with the
 * transaction, so a pooler can hand the connection on).
 */
export async function withTimeouts<T>(
  db: Knex,
  timeoutMs: number,
  fn: (trx: Knex.Transaction) => Promise<T>,
): Promise<T> {
  const ms = Math.max(1, Math.trunc(timeoutMs));
  return db.transaction(async (trx) => {
    // One round trip (a simple query, no bindings); both settings end at COMMIT or ROLLBACK.
    await trx.raw(`SET LOCAL statement_timeout = ${ms}; SET LOCAL lock_timeout = ${ms}`);
    return fn(trx);
  });
}
