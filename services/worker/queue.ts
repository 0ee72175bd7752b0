/**
 * The worker's SQS data access: receive, delete, hand back with a delay, and
 * copy to the invalid messages queue. Every SDK error is wrapped in SqsError
 * with the queue and message ids.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type Message,
  type QueueAttributeName,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { SqsError } from '../common/errors.ts';
import type { InvalidReason } from '../common/message.ts';
import { SQS_MAX_MESSAGE_BYTES } from '../common/sqs.ts';
import {
  ATTR,
  AWS_SQS,
  CARRIER_FIELDS,
  attributesBytes,
  carrierOf,
  noTracing,
  withTraceAttributes,
  type Carrier,
  type Tracing,
} from '../common/tracing.ts';

/** A received message with what the worker needs of it. */
export interface Received {
  messageId: string;
  receiptHandle: string;
  body: string | undefined;
  receiveCount: number;
  /** When SQS received the message (SentTimestamp), in ms since the epoch. */
  sentAt: number | undefined;
  /** The form's creation context (traceparent, tracestate message attributes); empty for messages without them. */
  trace: Carrier;
}

/** Approximate message counts of a queue (GetQueueAttributes). */
export interface QueueDepth {
  visible: number;
  inFlight: number;
  delayed: number;
}

/** Observers of the SQS requests a WorkerQueue makes (metrics, benchmark). */
export interface QueueHooks {
  /** Called once per SQS request with its action name. */
  onRequest?: (action: string) => void;
  /** Called once per failed SQS request (or entry retried alone) with its action name. */
  onError?: (action: string) => void;
  /** Spans of DeleteMessageBatch, ChangeMessageVisibilityBatch and the invalid-queue send. Default: off. */
  tracing?: Tracing;
}

/** An invalid message to copy, with the reason it was refused. */
export interface InvalidCopy {
  message: Received;
  reason: string;
  /** The reason as a bounded code (metrics). */
  code: InvalidReason;
  /** The web's request id, when the body carries one. */
  requestId: string | undefined;
}

export interface ReceiveOptions {
  waitTimeSeconds: number;
  maxNumberOfMessages: number;
  visibilityTimeoutSeconds: number;
}

/** SQS operations of the worker on its two queues. */
export class WorkerQueue {
  private readonly client: SQSClient;
  private readonly formUrl: string;
  private readonly invalidUrl: string;
  private readonly onRequest: (action: string) => void;
  private readonly onError: (action: string) => void;
  private readonly tracing: Tracing;
  /** Queue names, for span names and attributes. */
  readonly formQueue: string;
  private readonly invalidQueue: string;

  /** Largest message (and batch) the invalid queue takes, attributes included. */
  private readonly maxMessageBytes: number;

  /** `maxMessageBytes`: the invalid queue's MaximumMessageSize. Default: SQS's 256 KiB. */
  constructor(
    client: SQSClient,
    urls: { form: string; invalid: string },
    hooks: QueueHooks = {},
    maxMessageBytes = SQS_MAX_MESSAGE_BYTES,
  ) {
    this.client = client;
    this.maxMessageBytes = maxMessageBytes;
    this.formUrl = urls.form;
    this.invalidUrl = urls.invalid;
    this.onRequest = hooks.onRequest ?? (() => {});
    this.onError = hooks.onError ?? (() => {});
    this.tracing = hooks.tracing ?? noTracing;
    this.formQueue = urls.form.slice(urls.form.lastIndexOf('/') + 1);
    this.invalidQueue = urls.invalid.slice(urls.invalid.lastIndexOf('/') + 1);
  }

  /** Runs an SQS call in a span `<operation> <queue>` with the messaging attributes. */
  private traced<T>(
    operation: string,
    type: 'settle' | 'send',
    queue: string,
    count: number,
    fn: () => Promise<T>,
  ): Promise<T> {
    if (!this.tracing.enabled) return fn();
    return this.tracing.inSpan(
      `${operation} ${queue}`,
      {
        kind: type === 'send' ? 'producer' : 'client',
        attributes: {
          [ATTR.messagingSystem]: AWS_SQS,
          [ATTR.messagingOperationType]: type,
          [ATTR.messagingOperationName]: operation,
          [ATTR.messagingDestination]: queue,
          [ATTR.messagingBatchCount]: count,
        },
      },
      fn,
    );
  }

  /** Approximate depth of the form queue and of the invalid queue. */
  async depth(which: 'form' | 'invalid'): Promise<QueueDepth> {
    const queue = which === 'form' ? this.formUrl : this.invalidUrl;
    this.onRequest('GetQueueAttributes');
    try {
      const out = await this.client.send(
        new GetQueueAttributesCommand({
          QueueUrl: queue,
          AttributeNames: [
            'ApproximateNumberOfMessages',
            'ApproximateNumberOfMessagesNotVisible',
            'ApproximateNumberOfMessagesDelayed',
          ],
        }),
      );
      const count = (name: QueueAttributeName): number => Number(out.Attributes?.[name] ?? 0) || 0;
      return {
        visible: count('ApproximateNumberOfMessages'),
        inFlight: count('ApproximateNumberOfMessagesNotVisible'),
        delayed: count('ApproximateNumberOfMessagesDelayed'),
      };
    } catch (error) {
      this.onError('GetQueueAttributes');
      throw new SqsError({ operation: 'GetQueueAttributes', queue }, error);
    }
  }

  /** One long poll. Never aborted: messages it was handed would stay invisible. */
  async receive(options: ReceiveOptions): Promise<Received[]> {
    this.onRequest('ReceiveMessage');
    let messages: Message[];
    try {
      const out = await this.client.send(
        new ReceiveMessageCommand({
          QueueUrl: this.formUrl,
          WaitTimeSeconds: options.waitTimeSeconds,
          MaxNumberOfMessages: options.maxNumberOfMessages,
          VisibilityTimeout: options.visibilityTimeoutSeconds,
          MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
          MessageAttributeNames: [...CARRIER_FIELDS],
        }),
      );
      messages = out.Messages ?? [];
    } catch (error) {
      this.onError('ReceiveMessage');
      throw new SqsError({ operation: 'ReceiveMessage', queue: this.formUrl }, error);
    }
    const received: Received[] = [];
    for (const m of messages) {
      if (!m.MessageId || !m.ReceiptHandle) continue;
      received.push({
        messageId: m.MessageId,
        receiptHandle: m.ReceiptHandle,
        body: m.Body,
        receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1') || 1,
        sentAt: Number(m.Attributes?.SentTimestamp) || undefined,
        trace: carrierOf(m.MessageAttributes),
      });
    }
    return received;
  }

  /**
   * Deletes messages with DeleteMessageBatch; entries the batch failed are
   * retried one by one. Resolves with the ids that could not be deleted.
   */
  delete(messages: readonly Received[]): Promise<string[]> {
    if (messages.length === 0) return Promise.resolve([]);
    return this.traced('DeleteMessageBatch', 'settle', this.formQueue, messages.length, () =>
      this.deleteBatch(messages),
    );
  }

  private async deleteBatch(messages: readonly Received[]): Promise<string[]> {
    const ids = messages.map((m) => m.messageId);
    this.onRequest('DeleteMessageBatch');
    let failedIndexes: number[];
    try {
      const out = await this.client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.formUrl,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.receiptHandle })),
        }),
      );
      failedIndexes = (out.Failed ?? []).map((f) => Number(f.Id));
    } catch (error) {
      this.onError('DeleteMessageBatch');
      throw new SqsError({ operation: 'DeleteMessageBatch', queue: this.formUrl, messageIds: ids }, error);
    }
    const stillFailed: string[] = [];
    if (failedIndexes.length > 0) this.onError('DeleteMessageBatch');
    for (const i of failedIndexes) {
      const message = messages[i];
      if (!message) continue;
      try {
        this.onRequest('DeleteMessage');
        await this.client.send(
          new DeleteMessageCommand({ QueueUrl: this.formUrl, ReceiptHandle: message.receiptHandle }),
        );
      } catch {
        this.onError('DeleteMessage');
        stillFailed.push(message.messageId);
      }
    }
    return stillFailed;
  }

  /** Makes messages visible again after a per-message delay, in seconds. */
  handBack(messages: readonly Received[], delaySeconds: (m: Received) => number): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    return this.traced('ChangeMessageVisibilityBatch', 'settle', this.formQueue, messages.length, () =>
      this.changeVisibility(messages, delaySeconds),
    );
  }

  private async changeVisibility(messages: readonly Received[], delaySeconds: (m: Received) => number): Promise<void> {
    this.onRequest('ChangeMessageVisibilityBatch');
    try {
      await this.client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.formUrl,
          Entries: messages.map((m, i) => ({
            Id: String(i),
            ReceiptHandle: m.receiptHandle,
            VisibilityTimeout: delaySeconds(m),
          })),
        }),
      );
    } catch (error) {
      this.onError('ChangeMessageVisibilityBatch');
      throw new SqsError(
        {
          operation: 'ChangeMessageVisibilityBatch',
          queue: this.formUrl,
          messageIds: messages.map((m) => m.messageId),
        },
        error,
      );
    }
  }

  /**
   * Copies invalid messages, bodies unchanged, to the invalid messages queue
   * with their original id, the reason and their trace context as message
   * attributes, in batches within SQS's size limit. A message too large to
   * carry the attributes is copied without them. Resolves with the ids SQS accepted.
   */
  async copyInvalid(copies: readonly InvalidCopy[]): Promise<Set<string>> {
    const accepted = new Set<string>();
    for (const group of groupBySize(copies, this.maxMessageBytes)) {
      const tooLarge = group.length === 1 && entrySize(group[0]!) > this.maxMessageBytes;
      const sent = await this.traced('SendMessageBatch', 'send', this.invalidQueue, group.length, () =>
        this.sendInvalid(group, !tooLarge),
      );
      for (const id of sent) accepted.add(id);
    }
    return accepted;
  }

  private async sendInvalid(copies: readonly InvalidCopy[], withAttributes: boolean): Promise<string[]> {
    this.onRequest('SendMessageBatch');
    try {
      const out = await this.client.send(
        new SendMessageBatchCommand({
          QueueUrl: this.invalidUrl,
          Entries: copies.map(({ message, reason }, i) => ({
            Id: String(i),
            // SQS refuses empty bodies, so an empty one cannot reach here.
            MessageBody: message.body ?? '',
            ...(withAttributes ? { MessageAttributes: copyAttributes(message, reason) } : {}),
          })),
        }),
      );
      if ((out.Successful ?? []).length < copies.length) this.onError('SendMessageBatch');
      return (out.Successful ?? []).flatMap((ok) => {
        const copy = copies[Number(ok.Id)];
        return copy ? [copy.message.messageId] : [];
      });
    } catch (error) {
      this.onError('SendMessageBatch');
      throw new SqsError(
        { operation: 'SendMessageBatch', queue: this.invalidUrl, messageIds: copies.map((c) => c.message.messageId) },
        error,
      );
    }
  }
}

/** Characters of the `reason` attribute. */
const MAX_REASON = 512;

/** Message attributes of an invalid message's copy: its original id, the reason, and its trace context when there is room. */
function copyAttributes(message: Received, reason: string): Record<string, { DataType: string; StringValue: string }> {
  const own = {
    original_message_id: { DataType: 'String', StringValue: message.messageId },
    reason: { DataType: 'String', StringValue: reason.slice(0, MAX_REASON) },
  };
  return withTraceAttributes(own, message.trace);
}

/** Size of a copy as SQS counts it: body plus each attribute's name, data type and value. */
function entrySize(copy: InvalidCopy): number {
  return (
    Buffer.byteLength(copy.message.body ?? '', 'utf8') + attributesBytes(copyAttributes(copy.message, copy.reason))
  );
}

/** Groups of at most 10 copies whose sizes add up to at most `limit` (a larger one goes alone). */
function groupBySize(copies: readonly InvalidCopy[], limit: number): InvalidCopy[][] {
  const groups: InvalidCopy[][] = [];
  let current: InvalidCopy[] = [];
  let bytes = 0;
  for (const copy of copies) {
    const size = entrySize(copy);
    if (current.length > 0 && (current.length === 10 || bytes + size > limit)) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(copy);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * The queue's MaximumMessageSize (worker only: the web's IAM role may not read queue attributes) (bytes), or `fallback` when it cannot be read.
 */
export async function maxMessageBytes(client: SQSClient, url: string, fallback: number): Promise<number> {
  try {
    const out = await client.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['MaximumMessageSize'] }),
    );
    const size = Number(out.Attributes?.MaximumMessageSize);
    return Number.isSafeInteger(size) && size > 0 ? size : fallback;
  } catch {
    return fallback;
  }
}
