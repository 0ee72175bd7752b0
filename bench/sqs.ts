/**
 * Direct access to the emulator (not through the proxy, so not counted):
 * creating, filling and deleting the benchmark's queues.
 */
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  PurgeQueueCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { Agent, request as httpRequest } from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { encodeFormMessage } from '../services/common/message.ts';
import type { FormData } from '../services/common/form-schema.ts';
import { validForm } from '../harness/forms.ts';

export function directClient(endpoint: string): SQSClient {
  return new SQSClient({
    region: 'eu-west-1',
    endpoint,
    useQueueUrlAsEndpoint: false,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    requestHandler: { httpAgent: { keepAlive: true, maxSockets: 64 } },
  });
}

/** A queue name of its own for one measurement. */
export function queueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function createQueue(client: SQSClient, name: string): Promise<string> {
  const out = await client.send(new CreateQueueCommand({ QueueName: name }));
  return out.QueueUrl!;
}

export async function deleteQueue(client: SQSClient, url: string): Promise<void> {
  await client.send(new DeleteQueueCommand({ QueueUrl: url })).catch(() => undefined);
}

export async function purgeQueue(client: SQSClient, url: string): Promise<void> {
  await client.send(new PurgeQueueCommand({ QueueUrl: url })).catch(() => undefined);
}

export async function visibleCount(client: SQSClient, url: string): Promise<number> {
  const out = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }),
  );
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
}

/** Messages visible or in flight. */
export async function queuedCount(client: SQSClient, url: string): Promise<number> {
  const out = await client.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

/** A message body as the web writes it. */
export function formMessageBody(i: number): string {
  return encodeFormMessage({
    data: validForm({ contact_name: `Bench ${i}` }) as FormData,
    received_at: new Date().toISOString(),
    request_id: `bench-${i}`,
    // As the web sends them: the worker stores each under its unique live submission key.
    submission_id: randomUUID(),
  });
}

const fillAgent = new Agent({ keepAlive: true, maxSockets: 16 });

/** One unsigned AWS JSON protocol call straight to the emulator (the SDK costs ~1 ms of CPU per request). */
async function rawCall(endpoint: string, action: string, input: unknown): Promise<Record<string, unknown>> {
  const target = new URL(endpoint);
  const body = JSON.stringify(input);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        agent: fillAgent,
        host: target.hostname,
        port: target.port,
        method: 'POST',
        path: '/',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': `AmazonSQS.${action}`,
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`${action}: HTTP ${res.statusCode}: ${text}`));
          else resolve(text ? (JSON.parse(text) as Record<string, unknown>) : {});
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Puts `count` valid form messages on the queue with SendMessageBatch,
 * `parallel` requests at a time, straight to the emulator at `endpoint`.
 */
export async function fillQueue(endpoint: string, url: string, count: number, parallel = 4): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const start = next;
      const n = Math.min(10, count - start);
      next += n;
      const Entries = Array.from({ length: n }, (_, k) => ({ Id: String(k), MessageBody: formMessageBody(start + k) }));
      const out = await rawCall(endpoint, 'SendMessageBatch', { QueueUrl: url, Entries });
      const failed = (out.Failed as unknown[] | undefined) ?? [];
      if (failed.length > 0) throw new Error(`fill: ${failed.length} entries failed: ${JSON.stringify(failed[0])}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
}
