/**
 * Releases expired submission keys at an interval (docs/exactly-once.md): a key
 * keeps later copies of its submission out for `lifetimeSeconds` after its row
 * was stored, and is released within one interval after that, so the unique
 * index holds only live keys. Every worker runs it; the update is idempotent.
 */
import { errorSummary } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { PeriodicTask } from '../common/periodic.ts';
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
  private readonly periodic: PeriodicTask;

  constructor(options: KeyExpiryOptions) {
    this.options = options;
    this.periodic = new PeriodicTask(() => this.run(), expiryIntervalMs(options.lifetimeSeconds));
  }

  /** Runs now, then every interval. */
  start(): void {
    this.periodic.start();
  }

  /** Stops and waits for a run under way. */
  stop(): Promise<void> {
    return this.periodic.stop();
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
