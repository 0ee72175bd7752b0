/**
 * The form table through Knex. Errors are wrapped in DatabaseError with the message ids.
 */
import { withTimeouts, type Knex } from '../common/db.ts';
import { DatabaseError } from '../common/errors.ts';
import type { FormData, JsonValue } from '../common/form-schema.ts';
import { ATTR, noTracing, type Tracing } from '../common/tracing.ts';

/** A form to store under its SQS message id. */
export interface FormRow {
  messageId: string;
  /** A validated form, or a body of the replaced service stored whole, as its worker stored it (services/common/original-message.ts). */
  data: FormData | { [key: string]: JsonValue };
  /** The submission id the web gave it; undefined for messages of the replaced service. */
  submissionId?: string | undefined;
}

/**
 * Why a row was not inserted: `duplicate` (its message, or its submission with
 * the same form, is stored), `conflict` (its submission id is stored with another
 * form: an Idempotency-Key reused), `unknown` (neither is stored any more: the key
 * expired in between; hand it back).
 */
export type SkipReason = 'duplicate' | 'conflict' | 'unknown';

/** Columns of a new row. */
function toRecord(row: FormRow): Record<string, string | null> {
  const submission = row.submissionId ?? null;
  return {
    data: JSON.stringify(row.data),
    sqs_message_id: row.messageId,
    submission_id: submission,
    submission_key: submission,
  };
}

/** Anything that stores rows the way `FormRepository.insertMany` does (the repository, the coalescing writer). */
export interface FormInserter {
  insertMany(rows: readonly FormRow[]): Promise<Set<string>>;
}

/** Tells why rows that `insertMany` skipped were skipped (`FormRepository.classifySkipped`). */
export interface SkipClassifier {
  classifySkipped(skipped: readonly FormRow[]): Promise<Map<string, SkipReason>>;
}

/** What the batch handler stores through: an inserter and a classifier of what it skipped. */
export type FormStore = FormInserter & SkipClassifier;

export class FormRepository implements FormInserter, SkipClassifier {
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
   * with `SET LOCAL` timeouts; a row whose message id or live submission key is
   * already stored (or comes earlier in the same statement) is skipped.
   * Resolves, once committed, with the message ids inserted now.
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
    const connection = (this.db.client as { config?: { connection?: { connectionString?: unknown } } }).config
      ?.connection;
    try {
      const url = new URL(String(connection?.connectionString));
      return {
        [ATTR.dbNamespace]: decodeURIComponent(url.pathname.slice(1)) || undefined,
        [ATTR.serverAddress]: url.hostname,
        [ATTR.serverPort]: Number(url.port || 5432),
      };
    } catch {
      return {};
    }
  }

  private async insert(rows: readonly FormRow[]): Promise<Set<string>> {
    try {
      // No conflict target: both unique keys (sqs_message_id, submission_key) skip a row.
      const inserted = await withTimeouts(this.db, this.timeoutMs, (trx) =>
        trx('form_form')
          .insert(rows.map(toRecord))
          .onConflict()
          .ignore()
          .returning<{ sqs_message_id: string }[]>('sqs_message_id'),
      );
      return new Set(inserted.map((r) => r.sqs_message_id));
    } catch (error) {
      throw new DatabaseError(
        'insert into form_form',
        error,
        rows.map((r) => r.messageId),
      );
    }
  }

  /** Why each of `skipped` (rows insertMany did not insert) was skipped, by message id. */
  async classifySkipped(skipped: readonly FormRow[]): Promise<Map<string, SkipReason>> {
    const reasons = new Map<string, SkipReason>();
    const withKey = skipped.filter((r) => r.submissionId !== undefined);
    // Without a submission id only the message id can have matched.
    for (const row of skipped) if (row.submissionId === undefined) reasons.set(row.messageId, 'duplicate');
    if (withKey.length === 0) return reasons;
    const input = JSON.stringify(
      withKey.map((r) => ({ message_id: r.messageId, submission_id: r.submissionId, data: r.data })),
    );
    try {
      type Found = { message_id: string; same_message: boolean; same_form: boolean | null };
      const result = await this.db.raw<{ rows: Found[] }>(
        `SELECT i.message_id,
           EXISTS (SELECT 1 FROM form_form f WHERE f.sqs_message_id = i.message_id) AS same_message,
           (SELECT f.data = i.data FROM form_form f WHERE f.submission_key = i.submission_id) AS same_form
         FROM jsonb_to_recordset(?::jsonb) AS i(message_id text, submission_id uuid, data jsonb)`,
        [input],
      );
      for (const r of result.rows) {
        const duplicate = r.same_message || r.same_form === true;
        reasons.set(r.message_id, duplicate ? 'duplicate' : r.same_form === false ? 'conflict' : 'unknown');
      }
      return reasons;
    } catch (error) {
      throw new DatabaseError(
        'look up skipped rows in form_form',
        error,
        withKey.map((r) => r.messageId),
      );
    }
  }

  /**
   * Releases submission keys stored more than `lifetimeSeconds` ago, at most
   * `limit` rows per statement, until none is left. The rows keep their
   * submission id. Resolves with the number released.
   */
  async expireKeys(lifetimeSeconds: number, limit = 5000): Promise<number> {
    let released = 0;
    try {
      for (;;) {
        const result = await this.db.raw<{ rowCount: number }>(
          `UPDATE form_form SET submission_key = NULL
           WHERE id IN (SELECT id FROM form_form
                        WHERE submission_key IS NOT NULL AND created < now() - make_interval(secs => ?)
                        LIMIT ?)`,
          [lifetimeSeconds, limit],
        );
        released += result.rowCount;
        if (result.rowCount < limit) return released;
      }
    } catch (error) {
      throw new DatabaseError('expire submission keys in form_form', error);
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
