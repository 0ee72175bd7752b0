/**
 * A task run now and then again `intervalMs` after each run ends (never two
 * runs at once), until stopped; the timer does not keep the process alive.
 * The worker's key expiry and queue-depth poller run on it.
 */
export class PeriodicTask {
  private readonly task: () => Promise<void>;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  /** `task` must not reject (it handles its own failures); an interval of 0 never runs it. */
  constructor(task: () => Promise<void>, intervalMs: number) {
    this.task = task;
    this.intervalMs = intervalMs;
  }

  /** Runs now, then every interval; does nothing when started or stopped already. */
  start(): void {
    if (this.intervalMs === 0 || this.timer || this.running || this.stopped) return;
    const tick = (): void => {
      this.running = this.task().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs).unref();
      });
    };
    tick();
  }

  /** Stops, and waits for a run under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
