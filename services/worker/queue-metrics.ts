/**
 * Reads the depth of the form and invalid queues at an interval, for the
 * metrics. A failed read removes that queue's gauges rather than leave stale
 * values; the failure is counted and logged at debug (the poll loops report
 * SQS outages).
 */
import { errorSummary } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { WorkerMetrics } from './metrics.ts';
import type { WorkerQueue } from './queue.ts';

export interface QueueMetricsOptions {
  queue: WorkerQueue;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Queue names, the `queue` label. */
  names: { form: string; invalid: string };
  /** Interval between reads, in ms; 0 reads nothing. */
  intervalMs: number;
}

/** Periodic GetQueueAttributes feeding the queue depth gauges. */
export class QueueMetrics {
  private readonly options: QueueMetricsOptions;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private stopped = false;

  constructor(options: QueueMetricsOptions) {
    this.options = options;
  }

  /** Reads now, then every interval. */
  start(): void {
    if (this.options.intervalMs === 0 || this.timer || this.stopped) return;
    const tick = (): void => {
      this.reading = this.read().finally(() => {
        this.reading = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs).unref();
      });
    };
    tick();
  }

  /** Stops reading and waits for a read under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.reading;
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
