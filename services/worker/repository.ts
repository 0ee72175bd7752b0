/**
 * The form table through Knex. Errors are wrapped in DatabaseError with the message ids.
 */
import { withTimeouts, type Knex } from '../common/db.ts';
import { DatabaseError } from '../common/errors.ts';
import type { FormData } from '../common/form-schema.ts';
import { ATTR, noTracing, type Tracing } from '../common/tracing.ts';

/** A form to store under its SQS message id. */
export interface FormRow {
  messageId: string;
  data: FormData;
}

/** Anything that stores rows the way `FormRepository.insertMany` does (the repository, the coalescing writer). */
export interface FormInserter {
  insertMany(rows: readonly FormRow[]): Promise<Set<string>>;
}

export class FormRepository implements FormInserter {
  private readonly db: Knex;
  private readonly timeoutMs: number;
  private readonly tracing: Tracing;

  /**
   * @param timeoutMs server-side statement and lock timeout of each insert (DATABASE_TIMEOUT_MS)
   * @param tracing a CLIENT span per INSERT (no statement, no parameters). Default: off.
   */
  constructor(db: Knex, timeoutMs: number, tracing: Tracing = noTracing) {
    this.db = db;
    this.timeoutMs = timeoutMs;
    this.tracing = tracing;
  }

  /**
   * Inserts all rows in one multi-row statement, in a transaction of its own
   * with `SET LOCAL` timeouts; a message id already stored is skipped.
   * Resolves, once committed, with the ids inserted now (the others conflicted).
   */
  insertMany(rows: readonly FormRow[]): Promise<Set<string>> {
    if (rows.length === 0) return Promise.resolve(new Set());
    if (!this.tracing.enabled) return this.insert(rows);
    return this.tracing.inSpan(
      'INSERT form_form',
      {
        kind: 'client',
        attributes: {
          [ATTR.dbSystem]: 'postgresql',
          [ATTR.dbOperation]: 'INSERT',
          [ATTR.dbCollection]: 'form_form',
          [ATTR.dbQuerySummary]: 'INSERT form_form',
          [ATTR.dbBatchSize]: rows.length > 1 ? rows.length : undefined,
          ...this.server(),
        },
      },
      () => this.insert(rows),
    );
  }

  /** Database name, host and port of the connection string (never the user or password). */
  private server(): Record<string, string | number | undefined> {
    const connection = (this.db.client as { config?: { connection?: { connectionString?: unknown } } }).config?.connection;
    try {
      const url = new URL(String(connection?.connectionString));
      return { [ATTR.dbNamespace]: decodeURIComponent(url.pathname.slice(1)) || undefined, [ATTR.serverAddress]: url.hostname, [ATTR.serverPort]: Number(url.port || 5432) };
    } catch {
      return {};
    }
  }

  private async insert(rows: readonly FormRow[]): Promise<Set<string>> {
    try {
      const inserted = await withTimeouts(this.db, this.timeoutMs, (trx) =>
        trx('form_form')
          .insert(rows.map((r) => ({ data: JSON.stringify(r.data), sqs_message_id: r.messageId })))
          .onConflict('sqs_message_id')
          .ignore()
          .returning<{ sqs_message_id: string }[]>('sqs_message_id'),
      );
      return new Set(inserted.map((r) => r.sqs_message_id));
    } catch (error) {
      throw new DatabaseError('insert into form_form', error, rows.map((r) => r.messageId));
    }
  }

  /** Checks the database answers. */
  async ping(): Promise<void> {
    try {
      await this.db.raw('select 1');
    } catch (error) {
      throw new DatabaseError('ping', error);
    }
  }
}
