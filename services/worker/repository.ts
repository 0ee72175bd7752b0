/**
 * The form table through Knex. Errors are wrapped in DatabaseError with the message ids.
 */
import { withTimeouts, type Knex } from '../common/db.ts';
import { DatabaseError } from '../common/errors.ts';
import type { FormData } from '../common/form-schema.ts';

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

  /** @param timeoutMs server-side statement and lock timeout of each insert (DATABASE_TIMEOUT_MS) */
  constructor(db: Knex, timeoutMs: number) {
    this.db = db;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Inserts all rows in one multi-row statement, in a transaction of its own
   * with `SET LOCAL` timeouts; a message id already stored is skipped.
   * Resolves, once committed, with the ids inserted now (the others conflicted).
   */
  async insertMany(rows: readonly FormRow[]): Promise<Set<string>> {
    if (rows.length === 0) return new Set();
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
