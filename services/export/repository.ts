/**
 * The export's reads of form_form, all inside one REPEATABLE READ, READ ONLY
 * transaction so that every pass sees the same snapshot.
 */
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { Config } from '../common/config.ts';
import { createDatabase, type Knex } from '../common/db.ts';
import { DatabaseError } from '../common/errors.ts';
import type { Instant } from './arguments.ts';
import { MESSAGE_KEYS } from './records.ts';

/** Rows holding a whole queue message body (records.ts, unwrapMessageBody); their keys are the body's, not the form's. */
// CASE: the key list is only built for rows that have a `data` key (forms have none, as a rule).
const MESSAGE_BODY = `(CASE WHEN jsonb_typeof(data) = 'object' AND data -> 'data' IS NOT NULL
  THEN ARRAY(SELECT jsonb_object_keys(data)) <@ ARRAY[${MESSAGE_KEYS.map((k) => `'${k}'`).join(', ')}]::text[]
  ELSE false END)`;

/**
 * The export's Knex instance (without connecting): one connection, and no
 * statement timeout, which would end a long export; DATABASE_TIMEOUT_MS bounds
 * only connecting and acquiring the connection. Failures surface as errors where
 * the call is made; stdout carries the CSV, so Knex logs nothing.
 */
export function createExportDatabase(config: Config['database']): Knex {
  return createDatabase({ ...config, poolMax: 1 }, undefined, {
    applicationName: 'form-data-export',
    longStatements: true,
  });
}

/** The rows exported: `since <= created < until`. */
export interface Bounds {
  /** Inclusive start. */
  since: Instant;
  /** Exclusive end; undefined means none. */
  until: Instant | undefined;
}

/** A row as the row pass reads it. */
export interface StoredRow {
  id: number;
  /** ISO-8601 UTC with microseconds, formatted by PostgreSQL. */
  created: string;
  /** `jsonb_typeof(data)`. */
  kind: string;
  /** `data::text`, or for a JSON string the string itself. */
  text: string;
}

/** A row of the replaced service: its data a JSON string, or an object holding a whole message body. */
export interface LegacyRow {
  id: number;
  /** `jsonb_typeof(data)`. */
  kind: string;
  /** For a string, the string (expected to be the JSON text of an object); for an object, `data::text`. */
  text: string;
}

/** Rows fetched per round trip of a cursor. */
const BATCH_SIZE = 1000;

const CREATED_ISO = `to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** The passes of one export over one snapshot. */
export class FormSnapshot {
  private readonly trx: Knex.Transaction;
  private readonly where: string;
  private readonly bindings: readonly string[];
  private readonly lost: AbortSignal;

  /** @param lost aborts, with the cause as reason, when the transaction's connection ends */
  constructor(trx: Knex.Transaction, bounds: Bounds, lost: AbortSignal) {
    this.trx = trx;
    this.lost = lost;
    this.where = bounds.until ? 'created >= ?::timestamptz AND created < ?::timestamptz' : 'created >= ?::timestamptz';
    this.bindings = bounds.until ? [bounds.since.iso, bounds.until.iso] : [bounds.since.iso];
  }

  /** Number of rows in the bounds (whatever their data). */
  async count(): Promise<number> {
    try {
      const result = await this.trx.raw<{ rows: { n: string }[] }>(
        `SELECT count(*) AS n FROM form_form WHERE ${this.where}`,
        [...this.bindings],
      );
      return Number(result.rows[0]?.n ?? 0);
    } catch (error) {
      throw new DatabaseError('count of form_form', error);
    }
  }

  /** The distinct keys of the rows whose data is a JSON object holding a form (not a message body). */
  async objectKeys(): Promise<string[]> {
    try {
      const result = await this.trx.raw<{ rows: { key: string }[] }>(
        `SELECT DISTINCT jsonb_object_keys(data) AS key FROM form_form
         WHERE jsonb_typeof(data) = 'object' AND NOT ${MESSAGE_BODY} AND ${this.where}`,
        [...this.bindings],
      );
      return result.rows.map((r) => r.key);
    } catch (error) {
      throw new DatabaseError('key pass over form_form', error);
    }
  }

  /** Streams the rows of the replaced service (a JSON string, or a whole message body), for their keys. */
  legacyRows(): Readable {
    return this.stream(
      `SELECT id, jsonb_typeof(data) AS kind,
              CASE WHEN jsonb_typeof(data) = 'string' THEN data #>> '{}' ELSE data::text END AS text
       FROM form_form WHERE (jsonb_typeof(data) = 'string' OR ${MESSAGE_BODY}) AND ${this.where} ORDER BY id`,
    );
  }

  /** Streams every row in the bounds, ordered by created, then id. */
  rows(): Readable {
    return this.stream(`
      SELECT id, ${CREATED_ISO} AS created, jsonb_typeof(data) AS kind,
             CASE WHEN jsonb_typeof(data) = 'string' THEN data #>> '{}' ELSE data::text END AS text
      FROM form_form WHERE ${this.where} ORDER BY created, id`);
  }

  /**
   * A cursor through Knex. When the connection ends, pg-query-stream neither
   * errors nor closes (its cursor waits for the server's reply), so the
   * stream Knex returns is failed here instead.
   */
  private stream(sql: string): Readable {
    const stream = this.trx.raw(sql, [...this.bindings]).stream({ batchSize: BATCH_SIZE });
    const fail = (): void => {
      stream.destroy(this.lost.reason instanceof Error ? this.lost.reason : new Error(String(this.lost.reason)));
    };
    if (this.lost.aborted) fail();
    this.lost.addEventListener('abort', fail, { once: true });
    stream.once('close', () => this.lost.removeEventListener('abort', fail));
    return stream;
  }
}

/** Aborts when the connection (a pg Client) reports an error or ends. */
function watchConnection(connection: EventEmitter): { lost: AbortSignal; stop(): void } {
  const controller = new AbortController();
  const onError = (error: unknown): void => controller.abort(error);
  const onEnd = (): void => controller.abort(new Error('the database connection ended'));
  connection.on('error', onError);
  connection.on('end', onEnd);
  return {
    lost: controller.signal,
    stop: () => {
      connection.off('error', onError);
      connection.off('end', onEnd);
    },
  };
}

/**
 * Runs `fn` in a REPEATABLE READ, READ ONLY transaction with no statement or
 * idle-in-transaction timeout (a consumer that reads slowly leaves the session
 * idle between fetches), then commits.
 */
export async function withSnapshot<T>(
  db: Knex,
  bounds: Bounds,
  fn: (snapshot: FormSnapshot) => Promise<T>,
): Promise<T> {
  let begun = false;
  // When fn fails on a lost connection, the ROLLBACK fails too; fn's error names the cause.
  let failure: { error: unknown } | undefined;
  try {
    return await db.transaction(
      async (trx) => {
        await trx.raw('SET LOCAL statement_timeout = 0');
        await trx.raw('SET LOCAL idle_in_transaction_session_timeout = 0');
        // Inside a transaction Knex hands out the transaction's own connection.
        const watch = watchConnection((await trx.client.acquireConnection()) as EventEmitter);
        begun = true;
        try {
          return await fn(new FormSnapshot(trx, bounds, watch.lost));
        } catch (error) {
          failure = { error };
          throw error;
        } finally {
          watch.stop();
        }
      },
      { isolationLevel: 'repeatable read', readOnly: true },
    );
  } catch (error) {
    if (failure) throw failure.error;
    if (begun) throw new DatabaseError('commit of the export transaction', error);
    throw new DatabaseError('open snapshot', error);
  }
}
