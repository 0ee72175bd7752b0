/**
 * What the worker does with one received batch: valid forms stored in one
 * statement, invalid messages copied to the invalid queue, the handled ones
 * deleted, the rest handed back after a backoff.
 */
import { DatabaseError, SqsError, errorSummary } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { decodeFormMessage, type InvalidReason } from '../common/message.ts';
import type { OriginalDecodeResult } from '../common/original-message.ts';
import type { FormRow, FormStore, SkipReason } from './repository.ts';
import type { InvalidCopy, Received, WorkerQueue } from './queue.ts';
import { noTracing, type Tracing } from '../common/tracing.ts';
import { FormSpans } from './form-spans.ts';
import { LOG_CODES } from '../common/log-codes.ts';

/** The `reason` of a message whose submission id is stored with another form. */
export const KEY_REUSED = 'submission id (Idempotency-Key) already used for a different form; not stored';

/** What happened to a batch. */
export interface BatchResult {
  received: number;
  stored: number;
  duplicates: number;
  invalid: number;
  /** Handed back to be retried later. */
  retried: number;
  /** Handled but not deleted (they will come back and be recognised as duplicates). */
  notDeleted: number;
  /** The database failed: the poll loop should back off. */
  databaseFailed: boolean;
  /** SQS failed while handling: the poll loop should back off. */
  sqsFailed: boolean;
  /** Invalid messages moved to the invalid queue, by reason. */
  invalidByReason: Partial<Record<InvalidReason, number>>;
}

/** A batch whose forms are stored (or refused) and whose handled messages still await deletion. */
export interface StoredBatch {
  result: BatchResult;
  /** Messages to delete. */
  done: Received[];
}

export interface BatchHandlerOptions {
  queue: WorkerQueue;
  /** Where valid forms go (the worker's coalescing FormWriter, or the repository itself) and how skipped rows are told apart. */
  repository: FormStore;
  logger: Logger;
  /** Visibility backoff of a retried message: base × 2^(receive count − 1), capped; seconds. */
  backoffBaseSeconds: number;
  backoffMaxSeconds: number;
  /** A process span per form. Default: off. */
  tracing?: Tracing;
  /** Largest serialised form stored (MAX_BODY_BYTES, as the web enforces). Default: its default. */
  maxFormBytes?: number;
  /** How bodies are decoded: decodeFormMessage, or decodeOriginalMessage on the replaced service's queue. */
  decode?: (body: string | undefined) => OriginalDecodeResult;
}

/** Visibility delay of a message received `receiveCount` times: base × 2^(receiveCount − 1), at most `maxSeconds`. */
export function backoffSeconds(receiveCount: number, baseSeconds: number, maxSeconds: number): number {
  const doublings = Math.min(Math.max(0, receiveCount - 1), 20);
  return Math.min(baseSeconds * 2 ** doublings, maxSeconds);
}

/** Handles one batch; never throws for a failure of a message, SQS or the database. */
export class BatchHandler {
  private readonly options: BatchHandlerOptions;

  constructor(options: BatchHandlerOptions) {
    this.options = options;
  }

  /** Delay before a retried message is visible again. */
  backoffSeconds(message: Received): number {
    return backoffSeconds(message.receiveCount, this.options.backoffBaseSeconds, this.options.backoffMaxSeconds);
  }

  /** Stores a batch and deletes what it handled. */
  async handle(messages: readonly Received[]): Promise<BatchResult> {
    return this.acknowledge(await this.store(messages));
  }

  /**
   * Stores the valid forms, copies the invalid messages and hands back what
   * failed; the handled messages are left for `acknowledge` to delete, so a
   * poll loop can overlap that delete with its next poll.
   */
  async store(messages: readonly Received[]): Promise<StoredBatch> {
    const spans = new FormSpans(this.options.tracing ?? noTracing, this.options.queue.formQueue, messages);
    try {
      return await this.storeBatch(messages, spans);
    } finally {
      spans.end();
    }
  }

  private async storeBatch(messages: readonly Received[], spans: FormSpans): Promise<StoredBatch> {
    const { queue, repository, logger } = this.options;
    const result: BatchResult = {
      received: messages.length,
      stored: 0,
      duplicates: 0,
      invalid: 0,
      retried: 0,
      notDeleted: 0,
      databaseFailed: false,
      sqsFailed: false,
      invalidByReason: {},
    };
    const rows: FormRow[] = [];
    const byId = new Map<string, Received>();
    const requestIds = new Map<string, string | undefined>();
    const invalid: InvalidCopy[] = [];
    const decode =
      this.options.decode ?? ((body: string | undefined) => decodeFormMessage(body, this.options.maxFormBytes));
    for (const message of messages) {
      byId.set(message.messageId, message);
      const decoded = decode(message.body);
      if (decoded.ok) {
        rows.push({ messageId: message.messageId, data: decoded.data, submissionId: decoded.submissionId });
        requestIds.set(message.messageId, decoded.requestId);
      } else invalid.push({ message, reason: decoded.reason, code: decoded.code, requestId: decoded.requestId });
    }

    const done: Received[] = [];
    const retry: Received[] = [];

    if (rows.length > 0) {
      let inserted: Set<string> | undefined;
      try {
        inserted = await repository.insertMany(rows);
        result.stored = inserted.size;
        const skipped = rows.filter((row) => !inserted!.has(row.messageId));
        const reasons = skipped.length > 0 ? await repository.classifySkipped(skipped) : new Map<string, SkipReason>();
        for (const row of rows) {
          const message = byId.get(row.messageId)!;
          const fields = {
            messageId: row.messageId,
            submissionId: row.submissionId,
            requestId: requestIds.get(row.messageId),
            receiveCount: message.receiveCount,
            ...spans.fields(row.messageId),
          };
          const reason = inserted.has(row.messageId) ? 'stored' : reasons.get(row.messageId);
          if (reason === 'stored') {
            spans.outcome(row.messageId, 'stored', fields.requestId);
            logger.info({ ...fields, code: LOG_CODES.formStored }, 'form stored');
          } else if (reason === 'duplicate') {
            result.duplicates += 1;
            spans.outcome(row.messageId, 'duplicate', fields.requestId);
            logger.info(
              { ...fields, code: LOG_CODES.duplicateDelivery },
              'duplicate delivery skipped; the form was already stored',
            );
          } else if (reason === 'conflict') {
            // Its span's outcome is set with the invalid copies below.
            invalid.push({ message, reason: KEY_REUSED, code: 'idempotency_key_reused', requestId: fields.requestId });
            continue;
          } else {
            spans.outcome(row.messageId, 'retried', fields.requestId);
            logger.warn(fields, 'form skipped but neither its message nor its submission is stored; handing it back');
            retry.push(message);
            continue;
          }
          done.push(message);
        }
      } catch (error) {
        if (!(error instanceof DatabaseError)) throw error;
        result.databaseFailed = true;
        // Rows inserted before a failed look-up are committed: only the others go back.
        const back = rows.filter((row) => !inserted?.has(row.messageId));
        logger.warn(
          { err: errorSummary(error), messageIds: error.messageIds, code: LOG_CODES.storeFailed },
          'could not store forms; handing them back',
        );
        for (const row of back) {
          spans.outcome(row.messageId, 'retried', requestIds.get(row.messageId));
          retry.push(byId.get(row.messageId)!);
        }
        if (inserted) {
          for (const row of rows) if (inserted.has(row.messageId)) done.push(byId.get(row.messageId)!);
        }
      }
    }

    if (invalid.length > 0) {
      let accepted = new Set<string>();
      try {
        accepted = await queue.copyInvalid(invalid);
      } catch (error) {
        if (!(error instanceof SqsError)) throw error;
        result.sqsFailed = true;
        logger.warn(
          { err: errorSummary(error), messageIds: error.messageIds },
          'could not copy invalid messages; handing them back',
        );
      }
      for (const copy of invalid) {
        if (accepted.has(copy.message.messageId)) {
          done.push(copy.message);
          result.invalidByReason[copy.code] = (result.invalidByReason[copy.code] ?? 0) + 1;
          spans.outcome(copy.message.messageId, 'invalid', copy.requestId, copy.code);
          logger.info(
            {
              messageId: copy.message.messageId,
              requestId: copy.requestId,
              reason: copy.reason,
              code: LOG_CODES.invalidMoved,
              ...spans.fields(copy.message.messageId),
            },
            'invalid message moved to the invalid queue',
          );
        } else {
          spans.outcome(copy.message.messageId, 'retried', copy.requestId, copy.code);
          retry.push(copy.message);
        }
      }
      result.invalid = accepted.size;
    }

    if (retry.length > 0) {
      result.retried = retry.length;
      try {
        await queue.handBack(retry, (m) => this.backoffSeconds(m));
      } catch (error) {
        if (!(error instanceof SqsError)) throw error;
        result.sqsFailed = true;
        logger.warn(
          { err: errorSummary(error), messageIds: error.messageIds },
          'could not hand messages back; they return after the visibility timeout',
        );
      }
    }
    return { result, done };
  }

  /** Deletes the messages a stored batch handled (their rows are committed, or their copies accepted). */
  async acknowledge({ result, done }: StoredBatch): Promise<BatchResult> {
    const { queue, logger } = this.options;
    if (done.length === 0) return result;
    try {
      const failed = await queue.delete(done);
      result.notDeleted = failed.length;
      if (failed.length > 0)
        logger.warn(
          { messageIds: failed },
          'handled messages could not be deleted; they will be seen again as duplicates',
        );
    } catch (error) {
      if (!(error instanceof SqsError)) throw error;
      result.sqsFailed = true;
      result.notDeleted = done.length;
      logger.warn(
        { err: errorSummary(error), messageIds: error.messageIds },
        'handled messages could not be deleted; they will be seen again as duplicates',
      );
    }
    return result;
  }
}
