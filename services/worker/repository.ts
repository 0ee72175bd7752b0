/**
 * The form table through Knex. Errors are wrapped in DatabaseError with the message ids.
 */
import type { Knex } from '../common/db.ts';
import { DatabaseError } from '../common/errors.ts';
import type { FormData } from '../common/form-schema.ts';
import { ATTR, noTracing, type Tracing } from '../common/tracing.ts';

/** A form to store under its SQS message id. */
export interface FormRow {
  messageId: string;
  data: FormData;
}

export class FormRepository {
  private readonly db: Knex;
  private readonly tracing: Tracing;

  /** `tracing`: a CLIENT span per INSERT (no statement, no parameters). Default: off. */
  constructor(db: Knex, tracing: Tracing = noTracing) {
    this.db = db;
    this.tracing = tracing;
  }

  /**
   * Inserts all rows in one statement; a message id already stored is skipped.
   * Resolves with the ids inserted now (the others were duplicates).
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
      const inserted = await this.db('form_form')
        .insert(rows.map((r) => ({ data: JSON.stringify(r.data), sqs_message_id: r.messageId })))
        .onConflict('sqs_message_id')
        .ignore()
        .returning<{ sqs_message_id: string }[]>('sqs_message_id');
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
