/**
 * A worker built on the npm package `sqs-consumer` with `handleMessageBatch`
 * and the package's default settings (batchSize 1, waitTimeSeconds 20, no
 * polling pause), storing with the same INSERT as ours; the package deletes
 * the returned messages with DeleteMessageBatch.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { Consumer } from 'sqs-consumer';
import type { FormRepository, FormRow } from '../../services/worker/repository.ts';
import { decodeFormMessage } from '../../services/common/message.ts';
import type { BenchWorker, OnProcessed } from './types.ts';

export interface SqsConsumerWorkerOptions {
  sqs: SQSClient;
  queueUrl: string;
  repository: FormRepository;
  onProcessed: OnProcessed;
  /** Overrides of the package's defaults (none for the baseline). */
  overrides?: { batchSize?: number };
}

export function sqsConsumerWorker(options: SqsConsumerWorkerOptions): BenchWorker {
  const { repository, onProcessed } = options;
  const consumer = Consumer.create({
    queueUrl: options.queueUrl,
    sqs: options.sqs,
    ...options.overrides,
    handleMessageBatch: async (messages) => {
      const rows: FormRow[] = [];
      for (const m of messages) {
        const decoded = decodeFormMessage(m.Body);
        if (decoded.ok && m.MessageId) rows.push({ messageId: m.MessageId, data: decoded.data });
      }
      await repository.insertMany(rows);
      return messages;
    },
  });
  consumer.on('message_processed', () => onProcessed(1));
  consumer.on('error', () => undefined);
  consumer.on('processing_error', () => undefined);
  let stopped: Promise<void> | undefined;
  return {
    start: () => consumer.start(),
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        consumer.once('stopped', () => resolve());
        consumer.stop();
      });
      return stopped;
    },
  };
}
