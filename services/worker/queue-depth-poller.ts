/**
 * Reads the depth of the form and invalid queues at an interval, for the
 * metrics. A failed read removes that queue's gauges rather than leave stale
 * values; the failure is counted and logged at debug (the poll loops report
 * SQS outages).
 */
import { errorSummary } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { PeriodicTask } from '../common/periodic.ts';
import type { WorkerMetrics } from './metrics.ts';
import type { WorkerQueue } from './queue.ts';

export interface QueueDepthPollerOptions {
  queue: WorkerQueue;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Queue names, the `queue` label. */
  names: { form: string; invalid: string };
  /** Interval between reads, in ms; 0 reads nothing. */
  intervalMs: number;
}

/** Polls the queues' depth (GetQueueAttributes) at an interval, feeding the queue depth gauges. */
export class QueueDepthPoller {
  private readonly options: QueueDepthPollerOptions;
  private readonly periodic: PeriodicTask;

  constructor(options: QueueDepthPollerOptions) {
    this.options = options;
    this.periodic = new PeriodicTask(() => this.read(), options.intervalMs);
  }

  /** Reads now, then every interval (never with an interval of 0). */
  start(): void {
    this.periodic.start();
  }

  /** Stops reading and waits for a read under way. */
  stop(): Promise<void> {
    return this.periodic.stop();
  }

  /** Reads both queues once. */
  async read(): Promise<void> {
    const { queue, metrics, logger, names } = this.options;
    await Promise.all(
      (['form', 'invalid'] as const).map(async (which) => {
        const labels = { queue: names[which] };
        try {
          const depth = await queue.depth(which);
          metrics.queueVisible.set(labels, depth.visible);
          metrics.queueInFlight.set(labels, depth.inFlight);
          metrics.queueDelayed.set(labels, depth.delayed);
        } catch (error) {
          metrics.queueVisible.remove(labels);
          metrics.queueInFlight.remove(labels);
          metrics.queueDelayed.remove(labels);
          logger.debug({ err: errorSummary(error), queue: names[which] }, 'could not read the queue depth');
        }
      }),
    );
  }
}
