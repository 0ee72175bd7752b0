/**
 * Puts form messages on the form data queue. The batching sender coalesces
 * concurrent submissions into SendMessageBatch; each caller still waits for
 * its own entry's result.
 */
import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { Coalescer } from '../common/coalescer.ts';
import { SqsError } from '../common/errors.ts';
import { SQS_MAX_MESSAGE_BYTES } from '../common/sqs.ts';
import {
  ATTR,
  AWS_SQS,
  attributesBytes,
  noTracing,
  withTraceAttributes,
  type StringAttribute,
  type TraceSpan,
  type Tracing,
} from '../common/tracing.ts';

/** Sends one message body; resolves with the SQS message id once SQS has accepted it. */
export interface FormSender {
  send(body: string): Promise<string>;
  /** Sends what is pending and waits for every send under way. */
  close(): Promise<void>;
}

/** Observer of each send request (metrics): entries sent, entries failed, duration in seconds. */
export type BatchObserver = (entries: number, failed: number, seconds: number) => void;

/** Name of a queue from its URL. */
function queueName(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

/**
 * A PRODUCER span for one form's enqueue (a child of the active request
 * span) and the message attributes carrying its context. The trace
 * attributes are left out when they would not fit (count or size): the form
 * is always sent.
 */
function producerSpan(
  tracing: Tracing,
  queueUrl: string,
  operation: string,
  body: string,
): { span: TraceSpan; attributes: Record<string, StringAttribute> | undefined; bytes: number } {
  const bytes = Buffer.byteLength(body, 'utf8');
  if (!tracing.enabled) return { span: tracing.start(''), attributes: undefined, bytes };
  const queue = queueName(queueUrl);
  const span = tracing.start(`${operation} ${queue}`, {
    kind: 'producer',
    attributes: {
      [ATTR.messagingSystem]: AWS_SQS,
      [ATTR.messagingOperationType]: 'send',
      [ATTR.messagingOperationName]: operation,
      [ATTR.messagingDestination]: queue,
    },
  });
  const attributes = withTraceAttributes<StringAttribute>({}, span.carrier());
  const extra = attributesBytes(attributes);
  if (Object.keys(attributes).length === 0 || bytes + extra > SQS_MAX_MESSAGE_BYTES)
    return { span, attributes: undefined, bytes };
  return { span, attributes, bytes: bytes + extra };
}

/** One SendMessage per form. */
export class DirectSender implements FormSender {
  private readonly client: SQSClient;
  private readonly queueUrl: string;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly observe: BatchObserver;
  private readonly tracing: Tracing;

  /** `tracing`: a PRODUCER span per form. Default: off. */
  constructor(client: SQSClient, queueUrl: string, observe: BatchObserver = () => {}, tracing: Tracing = noTracing) {
    this.client = client;
    this.queueUrl = queueUrl;
    this.observe = observe;
    this.tracing = tracing;
  }

  async send(body: string): Promise<string> {
    const started = performance.now();
    const { span, attributes } = producerSpan(this.tracing, this.queueUrl, 'SendMessage', body);
    const call = this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: body,
        ...(attributes ? { MessageAttributes: attributes } : {}),
      }),
    );
    this.inflight.add(call);
    try {
      const out = await call;
      if (!out.MessageId) throw new Error('no MessageId in response');
      this.observe(1, 0, (performance.now() - started) / 1000);
      span.setAttributes({ [ATTR.messagingMessageId]: out.MessageId });
      return out.MessageId;
    } catch (error) {
      this.observe(1, 1, (performance.now() - started) / 1000);
      span.fail('SqsError');
      throw new SqsError({ operation: 'SendMessage', queue: this.queueUrl }, error);
    } finally {
      span.end();
      this.inflight.delete(call);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }
}

/** SendMessageBatch limits. */
export const MAX_BATCH_ENTRIES = 10;

interface Entry {
  body: string;
  /** Body and message attributes, as SQS counts them. */
  bytes: number;
  attributes: Record<string, StringAttribute> | undefined;
  span: TraceSpan;
  resolve: (messageId: string) => void;
  reject: (error: Error) => void;
}

/**
 * Coalesces sends arriving within `windowMs` (0: the same event-loop turn) into one SendMessageBatch of at most
 * MAX_BATCH_ENTRIES entries and SQS_MAX_MESSAGE_BYTES (services/common/coalescer.ts).
 */
export class BatchingSender implements FormSender {
  private readonly client: SQSClient;
  private readonly queueUrl: string;
  private readonly observe: BatchObserver;
  private readonly tracing: Tracing;
  private readonly coalescer: Coalescer<Entry>;

  /** `tracing`: a PRODUCER span per form. Default: off. */
  constructor(
    client: SQSClient,
    queueUrl: string,
    windowMs: number,
    observe: BatchObserver = () => {},
    tracing: Tracing = noTracing,
  ) {
    this.client = client;
    this.queueUrl = queueUrl;
    this.observe = observe;
    this.tracing = tracing;
    this.coalescer = new Coalescer<Entry>({
      maxWeight: MAX_BATCH_ENTRIES,
      maxSize: SQS_MAX_MESSAGE_BYTES,
      size: (entry) => entry.bytes,
      windowMs,
      run: (entries) => this.sendBatch(entries),
    });
  }

  send(body: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const { span, attributes, bytes } = producerSpan(this.tracing, this.queueUrl, 'SendMessageBatch', body);
      this.coalescer.add({ body, bytes, attributes, span, resolve, reject });
    });
  }

  close(): Promise<void> {
    return this.coalescer.close();
  }

  private async sendBatch(entries: Entry[]): Promise<void> {
    let failed = 0;
    const started = performance.now();
    try {
      const out = await this.client.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: entries.map((entry, i) => ({
            Id: String(i),
            MessageBody: entry.body,
            ...(entry.attributes ? { MessageAttributes: entry.attributes } : {}),
          })),
        }),
      );
      const settled = new Set<number>();
      for (const ok of out.Successful ?? []) {
        const entry = entries[Number(ok.Id)];
        if (!entry || !ok.MessageId) continue;
        settled.add(Number(ok.Id));
        entry.span.setAttributes({ [ATTR.messagingMessageId]: ok.MessageId });
        entry.resolve(ok.MessageId);
      }
      entries.forEach((entry, i) => {
        if (settled.has(i)) return;
        failed += 1;
        const reason = out.Failed?.find((f) => f.Id === String(i));
        const cause = new Error(
          reason
            ? `${reason.Code ?? 'error'}: ${reason.Message ?? ''}`
            : 'entry missing from SendMessageBatch response',
        );
        entry.span.fail(reason?.Code ?? 'SqsError');
        entry.reject(new SqsError({ operation: 'SendMessageBatch', queue: this.queueUrl }, cause));
      });
    } catch (error) {
      failed = entries.length;
      const wrapped = new SqsError({ operation: 'SendMessageBatch', queue: this.queueUrl }, error);
      for (const entry of entries) {
        entry.span.fail('SqsError');
        entry.reject(wrapped);
      }
    } finally {
      this.observe(entries.length, failed, (performance.now() - started) / 1000);
      for (const entry of entries) {
        entry.span.setAttributes({ [ATTR.messagingBatchCount]: entries.length });
        entry.span.end();
      }
    }
  }
}
