/**
 * Releases expired submission keys at an interval (docs/exactly-once.md): a key
 * keeps later copies of its submission out for `lifetimeSeconds` after its row
 * was stored, and is released within one interval after that, so the unique
 * index holds only live keys. Every worker runs it; the update is idempotent.
 */
import { errorSummary } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { FormRepository } from './repository.ts';

export interface KeyExpiryOptions {
  repository: FormRepository;
  logger: Logger;
  /** Seconds a key lives after its row was stored. */
  lifetimeSeconds: number;
  /** Called with the number of keys each run released. */
  onReleased?: (count: number) => void;
}

/** Interval between runs: a quarter of the lifetime, from 1 s to 60 s. */
export function expiryIntervalMs(lifetimeSeconds: number): number {
  return Math.min(60_000, Math.max(1000, Math.floor((lifetimeSeconds * 1000) / 4)));
}

/** The periodic release of expired submission keys. */
export class KeyExpiry {
  private readonly options: KeyExpiryOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(options: KeyExpiryOptions) {
    this.options = options;
  }

  /** Runs now, then every interval. */
  start(): void {
    if (this.timer || this.running || this.stopped) return;
    const tick = (): void => {
      this.running = this.run().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, expiryIntervalMs(this.options.lifetimeSeconds)).unref();
      });
    };
    tick();
  }

  /** Stops and waits for a run under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Releases the expired keys once; a database failure is logged and retried at the next run. */
  async run(): Promise<void> {
    const { repository, logger, lifetimeSeconds } = this.options;
    try {
      const released = await repository.expireKeys(lifetimeSeconds);
      this.options.onReleased?.(released);
      if (released > 0) logger.info({ released, lifetimeSeconds }, 'expired submission keys released');
    } catch (error) {
      logger.warn(
        { err: errorSummary(error) },
        'could not release expired submission keys; trying again at the next run',
      );
    }
  }
}
