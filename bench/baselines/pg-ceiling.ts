/**
 * The PostgreSQL ceiling: the same rows inserted with the same statement
 * (FormRepository.insertMany) in batches of `rowsPerInsert`, `concurrency` at a
 * time, with no SQS at all.
 */
import { randomUUID } from 'node:crypto';
import type { FormRepository, FormRow } from '../../services/worker/repository.ts';
import { decodeFormMessage } from '../../services/common/message.ts';
import { formMessageBody } from '../sqs.ts';

/** Decoded rows as the worker would build them from the queue's messages. */
export function ceilingRows(count: number): FormRow[] {
  return Array.from({ length: count }, (_, i) => {
    const decoded = decodeFormMessage(formMessageBody(i));
    if (!decoded.ok) throw new Error(decoded.reason);
    return { messageId: randomUUID(), data: decoded.data };
  });
}

/** Inserts all rows; resolves with the elapsed time in ms. */
export async function insertAll(
  repository: FormRepository,
  rows: readonly FormRow[],
  concurrency: number,
  rowsPerInsert: number,
  onProcessed: (n: number) => void,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  const lane = async (): Promise<void> => {
    while (next < rows.length) {
      const batch = rows.slice(next, next + rowsPerInsert);
      next += batch.length;
      await repository.insertMany(batch);
      onProcessed(batch.length);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return performance.now() - started;
}
