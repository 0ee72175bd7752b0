/**
 * The replaced service's way of consuming, as a baseline: one loop; one
 * ReceiveMessage of up to 10; then, per message, one INSERT and one
 * DeleteMessage, one after the other.
 */
import { DeleteMessageCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from '../../services/common/db.ts';
import { decodeFormMessage } from '../../services/common/message.ts';
import type { BenchWorker, OnProcessed } from './types.ts';

export interface NaiveWorkerOptions {
  sqs: SQSClient;
  queueUrl: string;
  db: Knex;
  waitTimeSeconds: number;
  visibilityTimeoutSeconds: number;
  onProcessed: OnProcessed;
}

export function naiveWorker(options: NaiveWorkerOptions): BenchWorker {
  const { sqs, queueUrl, db, onProcessed } = options;
  let stopping = false;
  let loop: Promise<void> | undefined;

  const run = async (): Promise<void> => {
    while (!stopping) {
      let messages;
      try {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: options.waitTimeSeconds,
            VisibilityTimeout: options.visibilityTimeoutSeconds,
          }),
        );
        messages = out.Messages ?? [];
      } catch {
        if (!stopping) await sleep(100);
        continue;
      }
      for (const message of messages) {
        if (stopping) break;
        try {
          const decoded = decodeFormMessage(message.Body);
          if (decoded.ok) {
            await db('form_form')
              .insert({ data: JSON.stringify(decoded.data), sqs_message_id: message.MessageId })
              .onConflict('sqs_message_id')
              .ignore();
          }
          await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
          onProcessed(1);
        } catch {
          // The message comes back after its visibility timeout (or the run is being stopped).
          if (stopping) break;
        }
      }
    }
  };

  return {
    start: () => {
      loop ??= run();
    },
    stop: async () => {
      stopping = true;
      await loop;
    },
  };
}
