/**
 * The form table through Knex. Errors are wrapped in DatabaseError with the message ids.
 */
import type { Knex } from '../common/db.ts';
import { DatabaseError } from '../common/errors.ts';
import type { FormData } from '../common/form-schema.ts';

/** A form to store under its SQS message id. */
export interface FormRow {
  messageId: string;
  data: FormData;
}

export class FormRepository {
  private readonly db: Knex;

  constructor(db: Knex) {
    this.db = db;
  }

  /**
   * Inserts all rows in one statement; a message id already stored is skipped.
   * Resolves with the ids inserted now (the others were duplicates).
   */
  async insertMany(rows: readonly FormRow[]): Promise<Set<string>> {
    if (rows.length === 0) return new Set();
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
