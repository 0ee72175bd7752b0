/**
 * The worker's one writer per process: the poll loops hand it their valid
 * forms and it stores them with few connections (batched by
 * services/common/coalescer.ts). Rows waiting are inserted
 * together, up to `maxRows` per statement (`FormInserter.insertMany`: one
 * multi-row INSERT … ON CONFLICT DO NOTHING in a transaction of its own), at
 * most `parallel` statements at a time. A statement starts when `maxRows` rows
 * wait, or `windowMs` after the first of them arrived; rows arriving while
 * every statement is busy wait for the next. Each caller's promise settles
 * only when the statement holding its rows has committed (or failed), so a
 * loop deletes its messages only after their rows are stored.
 */
import { Coalescer } from '../common/coalescer.ts';
import { DatabaseError } from '../common/errors.ts';
import type { FormInserter, FormRow } from './repository.ts';

export interface FormWriterOptions {
  inserter: FormInserter;
  /** Most rows per statement (WORKER_INSERT_MAX_ROWS). */
  maxRows: number;
  /** How long the first waiting row waits for more before a statement starts, in ms (WORKER_INSERT_WINDOW_MS). */
  windowMs: number;
  /** Most statements in flight; the pool size (DATABASE_POOL_MAX). */
  parallel: number;
  /** Called after each statement with its row count and outcome (metrics, the benchmark). */
  onFlush?: (flush: { rows: number; ok: boolean; durationMs: number }) => void;
}

interface Pending {
  rows: readonly FormRow[];
  resolve: (inserted: Set<string>) => void;
  reject: (error: unknown) => void;
}

/** Coalesces the inserts of concurrent poll loops; implements the same `insertMany` as the repository. */
export class FormWriter implements FormInserter {
  private readonly options: FormWriterOptions;
  private readonly coalescer: Coalescer<Pending>;

  constructor(options: FormWriterOptions) {
    this.options = options;
    this.coalescer = new Coalescer<Pending>({
      maxWeight: options.maxRows,
      weight: (p) => p.rows.length,
      windowMs: options.windowMs,
      parallel: options.parallel,
      run: (taken) => this.flush(taken),
    });
  }

  /** Rows waiting for a statement. */
  get waitingRows(): number {
    return this.coalescer.waiting;
  }

  /**
   * Stores `rows` with other callers' rows; resolves, once committed, with the
   * ids of `rows` inserted now (the others were already stored). Rejects with
   * a DatabaseError naming exactly these rows' message ids.
   */
  insertMany(rows: readonly FormRow[]): Promise<Set<string>> {
    if (rows.length === 0) return Promise.resolve(new Set());
    return new Promise((resolve, reject) => this.coalescer.add({ rows, resolve, reject }));
  }

  /** Starts the waiting rows at once and resolves when every statement has settled. */
  close(): Promise<void> {
    return this.coalescer.close();
  }

  private async flush(taken: readonly Pending[]): Promise<void> {
    const count = taken.reduce((n, p) => n + p.rows.length, 0);
    const started = performance.now();
    let inserted: Set<string>;
    try {
      inserted = await this.options.inserter.insertMany(taken.flatMap((p) => p.rows));
    } catch (error) {
      this.options.onFlush?.({ rows: count, ok: false, durationMs: performance.now() - started });
      for (const p of taken) {
        const ids = p.rows.map((r) => r.messageId);
        // Each caller gets the error with its own message ids, the statement's failure as the cause.
        p.reject(error instanceof DatabaseError ? new DatabaseError(error.operation, error.cause, ids) : error);
      }
      return;
    }
    this.options.onFlush?.({ rows: count, ok: true, durationMs: performance.now() - started });
    // An id inserted now counts for its first row only; the same message handed twice (a redelivery in two loops)
    // is a duplicate the second time.
    const claimed = new Set<string>();
    for (const p of taken) {
      const mine = new Set<string>();
      for (const row of p.rows) {
        if (inserted.has(row.messageId) && !claimed.has(row.messageId)) {
          claimed.add(row.messageId);
          mine.add(row.messageId);
        }
      }
      p.resolve(mine);
    }
  }
}
