/**
 * The poll loops. Each long-polls, hands its batch to the BatchHandler and
 * goes on; on failures it backs off instead of spinning. Stopping starts no
 * new poll, lets polls in flight return and handles what they brought.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorSummary, SqsError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { BatchHandler, BatchResult, StoredBatch } from './batch.ts';
import type { ErrorReporter } from '../common/error-reporter.ts';
import type { Received, ReceiveOptions, WorkerQueue } from './queue.ts';
import { ATTR, AWS_SQS, noSpan, type TraceSpan, type Tracing } from '../common/tracing.ts';
import { LOG_CODES } from '../common/log-codes.ts';

export interface ConsumerOptions extends ReceiveOptions {
  queue: WorkerQueue;
  handler: BatchHandler;
  logger: Logger;
  /** Concurrent poll loops. */
  concurrency: number;
  /** Resolves when the database answers; while it does not, the loops do not poll. */
  checkDatabase: () => Promise<void>;
  /** First and largest pause of a loop after a failure, in ms. Defaults 500 and BACKOFF_MAX_MS. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Largest pause between database checks while the database is down, in ms. Default DATABASE_BACKOFF_MAX_MS. */
  databaseBackoffMaxMs?: number;
  /** Where unexpected errors (bugs, not outages) are reported besides the log. Default: nowhere. */
  reporter?: ErrorReporter;
  /** A CONSUMER span per received batch. Default: off. */
  tracing?: Tracing;
}

/** Default largest pause of a poll loop after a failure, in ms. */
export const BACKOFF_MAX_MS = 30_000;
/** Default largest pause between database checks while the database is down, in ms. */
export const DATABASE_BACKOFF_MAX_MS = 5_000;

/** The dependencies whose outage liveness watches. */
export type Dependency = 'sqs' | 'database';

/** Why a poll loop backs off: the database, SQS, or a bug (`error`). */
export type BackoffKind = 'database' | 'sqs' | 'error';

/** Events: `received` ({ loop, messages }) after each successful poll, `batch` (BatchResult), `backoff` ({ loop, ms, reason, kind }), `stopped` ({ drainMs }). */
export interface ConsumerEvents {
  received: [{ loop: number; messages: readonly Received[] }];
  batch: [BatchResult & { loop: number; durationMs: number }];
  /** `kind`: what failed; `error` is a bug, not an outage. */
  backoff: [{ loop: number; ms: number; reason: string; kind: BackoffKind }];
  stopped: [{ drainMs: number }];
}

export class Consumer extends EventEmitter<ConsumerEvents> {
  private readonly options: ConsumerOptions;
  private stopping = false;
  private stopRequestedAt = 0;
  private loops: Promise<void>[] = [];
  /** Aborted to end the loops' backoff sleeps early: on stop, and when the database answers again. */
  private sleeps = new AbortController();
  private database = true;
  private sqs = true;
  /** Per dependency: time (ms since the epoch) of its first failed call since its last success; absent while it answers. */
  private readonly failing = new Map<Dependency, number>();
  /**
   * How many loops may poll now: one more after each full batch, one fewer
   * after each poll that brought less (never below one). Loops past it wait,
   * so polls stay full (few requests per message) whatever WORKER_CONCURRENCY
   * is, and all loops poll while there is a backlog.
   */
  private allowed = 1;
  /** Aborted when `allowed` grows (or on stop): waiting loops look again. */
  private backlog = new AbortController();
  private waiting = 0;
  /** Time the loops last made progress (a poll returned, a batch was handled, a backoff ended). */
  lastProgress = Date.now();
  /** Time of the latest successful receive (ms since the epoch); 0 before the first. */
  lastPollAt = 0;

  /** Outcome of the latest receive; for readiness. */
  get sqsHealthy(): boolean {
    return this.sqs;
  }

  set sqsHealthy(healthy: boolean) {
    this.sqs = healthy;
    this.note('sqs', healthy);
  }

  /** Per failing dependency, the time of its first failed call since it last answered (ms since the epoch); for liveness. */
  get failingSince(): ReadonlyMap<Dependency, number> {
    return this.failing;
  }

  private note(dependency: Dependency, healthy: boolean): void {
    if (healthy) this.failing.delete(dependency);
    else if (!this.failing.has(dependency)) this.failing.set(dependency, Date.now());
  }

  /** Outcome of the latest store or database check; for readiness and the loops' database gate. */
  get databaseHealthy(): boolean {
    return this.database;
  }

  /** Records a database outcome; when it answers again, sleeping loops resume at once. */
  set databaseHealthy(healthy: boolean) {
    const recovered = healthy && !this.database;
    this.database = healthy;
    this.note('database', healthy);
    if (recovered) this.wake();
  }

  private wake(): void {
    this.sleeps.abort();
    if (!this.stopping) this.sleeps = new AbortController();
  }

  private noteReceived(count: number): void {
    if (count < this.options.maxNumberOfMessages) {
      this.allowed = Math.max(1, this.allowed - 1);
    } else if (this.allowed < this.options.concurrency) {
      this.allowed += 1;
      this.backlog.abort();
      this.backlog = new AbortController();
    }
  }

  /** Loops polling now (the others wait for a backlog). */
  get activeLoops(): number {
    return this.loops.length - this.waiting;
  }

  /** Resolves when more loops may poll or the consumer stops. */
  private async untilBacklog(): Promise<void> {
    this.waiting += 1;
    try {
      await this.backlogOrStop();
    } finally {
      this.waiting -= 1;
    }
  }

  private backlogOrStop(): Promise<void> {
    const signal = AbortSignal.any([this.backlog.signal, this.sleeps.signal]);
    return new Promise((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  constructor(options: ConsumerOptions) {
    super();
    this.options = options;
  }

  get running(): boolean {
    return this.loops.length > 0 && !this.stopping;
  }

  /** Starts the poll loops. */
  start(): void {
    if (this.loops.length > 0) return;
    this.lastProgress = Date.now();
    for (let i = 0; i < this.options.concurrency; i++) this.loops.push(this.loop(i));
  }

  /** Stops polling and resolves when every loop has handled what it received. */
  async stop(): Promise<{ drainMs: number }> {
    if (!this.stopping) {
      this.stopping = true;
      this.stopRequestedAt = Date.now();
      this.wake();
    }
    await Promise.all(this.loops);
    const drainMs = Date.now() - this.stopRequestedAt;
    if (this.loops.length > 0) {
      this.loops = [];
      this.emit('stopped', { drainMs });
    }
    return { drainMs };
  }

  private async loop(index: number): Promise<void> {
    const { queue, handler, logger } = this.options;
    const minMs = this.options.backoffMinMs ?? 500;
    const maxMs = this.options.backoffMaxMs ?? BACKOFF_MAX_MS;
    const databaseMaxMs = Math.min(maxMs, this.options.databaseBackoffMaxMs ?? DATABASE_BACKOFF_MAX_MS);
    let failures = 0;
    /** The delete of the previous batch; resolves true if SQS failed it. */
    let deleting: Promise<boolean> | undefined;
    while (!this.stopping) {
      if (index >= this.allowed) {
        await this.untilBacklog();
        continue;
      }
      let failure: { kind: BackoffKind; reason: string } | undefined;
      let messages: Awaited<ReturnType<WorkerQueue['receive']>> = [];
      if (!this.databaseHealthy) {
        // Polling now would only hand the messages back and raise their receive
        // counts towards the redrive limit: wait for the database first.
        try {
          await this.options.checkDatabase();
          this.databaseHealthy = true;
          logger.info({ loop: index }, 'database answers again; polling resumes');
        } catch (error) {
          failure = { kind: 'database', reason: `database unavailable: ${errorSummary(error)}` };
        }
      }
      if (failure === undefined) {
        try {
          messages = await queue.receive(this.options);
          this.noteReceived(messages.length);
          this.sqsHealthy = true;
          this.lastProgress = this.lastPollAt = Date.now();
          this.emit('received', { loop: index, messages });
        } catch (error) {
          this.sqsHealthy = false;
          failure = { kind: error instanceof SqsError ? 'sqs' : 'error', reason: errorSummary(error) };
        }
      }
      if (messages.length > 0) {
        const started = performance.now();
        const batch = this.batchSpan(messages);
        try {
          const stored = await batch.run(() => handler.store(messages));
          this.lastProgress = Date.now();
          this.databaseHealthy = !stored.result.databaseFailed;
          if (stored.result.databaseFailed)
            failure = { kind: 'database', reason: 'database unavailable: could not store a batch' };
          else if (stored.result.sqsFailed) failure = { kind: 'sqs', reason: 'SQS failed while handling a batch' };
          // One delete in flight per loop, overlapping the next poll.
          if (deleting && (await deleting)) failure ??= { kind: 'sqs', reason: 'SQS failed while deleting a batch' };
          deleting = batch.run(() => this.acknowledge(stored, index, started)).finally(() => batch.end());
        } catch (error) {
          batch.fail(error instanceof Error ? error.name : 'Error');
          batch.end();
          // A bug, not an outage: the messages return after their visibility timeout.
          logger.error({ err: error, messageIds: messages.map((m) => m.messageId) }, 'batch handling failed');
          this.options.reporter?.capture(error, { messageIds: messages.map((m) => m.messageId) });
          failure = { kind: error instanceof SqsError ? 'sqs' : 'error', reason: errorSummary(error) };
        }
      }
      if (failure === undefined) {
        failures = 0;
        continue;
      }
      failures += 1;
      const cap = this.databaseHealthy ? maxMs : databaseMaxMs;
      const ms = Math.min(cap, minMs * 2 ** Math.min(failures - 1, 16));
      logger.warn(
        { loop: index, backoffMs: ms, kind: failure.kind, reason: failure.reason, code: LOG_CODES.pollBackoff },
        'poll loop backing off',
      );
      this.emit('backoff', { loop: index, ms, ...failure });
      await sleep(ms, undefined, { signal: this.sleeps.signal }).catch(() => undefined);
      this.lastProgress = Date.now();
    }
    if (deleting) await deleting;
  }

  /** The CONSUMER span of a received batch (a trace of its own, linking each form's creation context). */
  private batchSpan(messages: readonly Received[]): TraceSpan {
    const tracing = this.options.tracing;
    if (!tracing?.enabled) return noSpan;
    const queue = this.options.queue.formQueue;
    return tracing.start(`receive ${queue}`, {
      kind: 'consumer',
      root: true,
      links: messages.map((m) => m.trace),
      attributes: {
        [ATTR.messagingSystem]: AWS_SQS,
        [ATTR.messagingOperationType]: 'receive',
        [ATTR.messagingOperationName]: 'ReceiveMessage',
        [ATTR.messagingDestination]: queue,
        [ATTR.messagingBatchCount]: messages.length,
      },
    });
  }

  /** Deletes what a stored batch handled and reports the batch; resolves true if SQS failed the delete. */
  private async acknowledge(stored: StoredBatch, loop: number, started: number): Promise<boolean> {
    try {
      const result = await this.options.handler.acknowledge(stored);
      this.emit('batch', { ...result, loop, durationMs: performance.now() - started });
      return result.sqsFailed;
    } catch (error) {
      this.options.logger.error(
        { err: error, messageIds: stored.done.map((m) => m.messageId) },
        'deleting a batch failed',
      );
      this.options.reporter?.capture(error, { messageIds: stored.done.map((m) => m.messageId) });
      return true;
    }
  }
}
