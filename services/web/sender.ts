/**
 * Puts form messages on the form data queue. The batching sender coalesces
 * concurrent submissions into SendMessageBatch; each caller still waits for
 * its own entry's result.
 */
import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { SqsError } from '../common/errors.ts';
import { SQS_MAX_MESSAGE_BYTES } from '../common/sqs.ts';

/** Sends one message body; resolves with the SQS message id once SQS has accepted it. */
export interface FormSender {
  send(body: string): Promise<string>;
  /** Sends what is pending and waits for every send under way. */
  close(): Promise<void>;
}

/** Observer of each send request (metrics): entries sent, entries failed, duration in seconds. */
export type BatchObserver = (entries: number, failed: number, seconds: number) => void;

/** One SendMessage per form. */
export class DirectSender implements FormSender {
  private readonly client: SQSClient;
  private readonly queueUrl: string;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly observe: BatchObserver;

  constructor(client: SQSClient, queueUrl: string, observe: BatchObserver = () => {}) {
    this.client = client;
    this.queueUrl = queueUrl;
    this.observe = observe;
  }

  async send(body: string): Promise<string> {
    const started = performance.now();
    const call = this.client.send(new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: body }));
    this.inflight.add(call);
    try {
      const out = await call;
      if (!out.MessageId) throw new Error('no MessageId in response');
      this.observe(1, 0, (performance.now() - started) / 1000);
      return out.MessageId;
    } catch (error) {
      this.observe(1, 1, (performance.now() - started) / 1000);
      throw new SqsError({ operation: 'SendMessage', queue: this.queueUrl }, error);
    } finally {
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
  bytes: number;
  resolve: (messageId: string) => void;
  reject: (error: Error) => void;
}

/** Coalesces sends arriving within `windowMs` (0: the same event-loop turn) into one SendMessageBatch. */
export class BatchingSender implements FormSender {
  private readonly client: SQSClient;
  private readonly queueUrl: string;
  private readonly windowMs: number;
  private readonly observe: BatchObserver;
  private pending: Entry[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private readonly inflight = new Set<Promise<void>>();

  constructor(client: SQSClient, queueUrl: string, windowMs: number, observe: BatchObserver = () => {}) {
    this.client = client;
    this.queueUrl = queueUrl;
    this.windowMs = windowMs;
    this.observe = observe;
  }

  send(body: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const bytes = Buffer.byteLength(body, 'utf8');
      if (this.pendingBytes + bytes > SQS_MAX_MESSAGE_BYTES) this.flush();
      this.pending.push({ body, bytes, resolve, reject });
      this.pendingBytes += bytes;
      if (this.pending.length >= MAX_BATCH_ENTRIES) this.flush();
      else if (this.timer === undefined) {
        this.timer = this.windowMs === 0 ? setImmediate(() => this.flush()) : setTimeout(() => this.flush(), this.windowMs);
      }
    });
  }

  async close(): Promise<void> {
    this.flush();
    await Promise.allSettled([...this.inflight]);
  }

  private flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return;
    const entries = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const done = this.sendBatch(entries).finally(() => this.inflight.delete(done));
    this.inflight.add(done);
  }

  private async sendBatch(entries: Entry[]): Promise<void> {
    let failed = 0;
    const started = performance.now();
    try {
      const out = await this.client.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: entries.map((entry, i) => ({ Id: String(i), MessageBody: entry.body })),
        }),
      );
      const settled = new Set<number>();
      for (const ok of out.Successful ?? []) {
        const entry = entries[Number(ok.Id)];
        if (!entry || !ok.MessageId) continue;
        settled.add(Number(ok.Id));
        entry.resolve(ok.MessageId);
      }
      entries.forEach((entry, i) => {
        if (settled.has(i)) return;
        failed += 1;
        const reason = out.Failed?.find((f) => f.Id === String(i));
        const cause = new Error(reason ? `${reason.Code ?? 'error'}: ${reason.Message ?? ''}` : 'entry missing from SendMessageBatch response');
        entry.reject(new SqsError({ operation: 'SendMessageBatch', queue: this.queueUrl }, cause));
      });
    } catch (error) {
      failed = entries.length;
      const wrapped = new SqsError({ operation: 'SendMessageBatch', queue: this.queueUrl }, error);
      for (const entry of entries) entry.reject(wrapped);
    } finally {
      this.observe(entries.length, failed, (performance.now() - started) / 1000);
    }
  }
}
