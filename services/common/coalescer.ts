/**
 * Coalescing of concurrent callers' work into batches, for the web's
 * SendMessageBatch (services/web/sender.ts) and the worker's multi-row INSERT
 * (services/worker/writer.ts). Items wait in arrival order; a batch starts when
 * the waiting items fill one (`maxWeight`, or `maxSize` when given), or
 * `windowMs` after the first of them arrived (0: at the end of this event-loop
 * turn), with at most `parallel` batches under way; items arriving while every
 * batch is busy wait for the next. A batch takes whole items, up to both
 * limits; an item heavier than a batch goes alone. `run` settles each item's
 * caller itself.
 */

export interface CoalescerOptions<T> {
  /** Most weight per batch (entries, rows). */
  maxWeight: number;
  /** Weight of an item. Default 1. */
  weight?: (item: T) => number;
  /** Most size per batch (bytes); with `size`. Default: no such limit. */
  maxSize?: number;
  size?: (item: T) => number;
  /** How long the first waiting item waits for more, in ms; 0: until the end of this event-loop turn. */
  windowMs: number;
  /** Most batches under way. Default: no limit. */
  parallel?: number;
  /** Handles one batch (settling each item's caller); a rejection is a bug of `run`. */
  run: (batch: T[]) => Promise<void>;
}

/** Batches items of concurrent callers (see the module comment). */
export class Coalescer<T> {
  private readonly options: CoalescerOptions<T>;
  private readonly weightOf: (item: T) => number;
  private readonly sizeOf: (item: T) => number;
  private queue: T[] = [];
  private queuedWeight = 0;
  private queuedSize = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private readonly batches = new Set<Promise<void>>();
  private closing = false;

  constructor(options: CoalescerOptions<T>) {
    if (options.maxWeight < 1 || (options.parallel ?? 1) < 1)
      throw new RangeError('maxWeight and parallel must be at least 1');
    this.options = options;
    this.weightOf = options.weight ?? (() => 1);
    this.sizeOf = options.size ?? (() => 0);
  }

  /** Weight of the items waiting for a batch. */
  get waiting(): number {
    return this.queuedWeight;
  }

  add(item: T): void {
    this.queue.push(item);
    this.queuedWeight += this.weightOf(item);
    this.queuedSize += this.sizeOf(item);
    this.schedule();
  }

  /** Starts the waiting items at once and resolves when every batch has settled. */
  async close(): Promise<void> {
    this.closing = true;
    this.schedule();
    while (this.batches.size > 0 || this.queue.length > 0) {
      await Promise.all([...this.batches]);
      this.schedule();
    }
  }

  private get full(): boolean {
    const { maxSize } = this.options;
    return this.queuedWeight >= this.options.maxWeight || (maxSize !== undefined && this.queuedSize > maxSize);
  }

  private schedule(): void {
    while (this.inFlight < (this.options.parallel ?? Infinity) && this.queue.length > 0) {
      if (!this.full && !this.closing) {
        this.timer ??=
          this.options.windowMs === 0 ? setImmediate(this.onTimer) : setTimeout(this.onTimer, this.options.windowMs);
        return;
      }
      this.start();
    }
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.start();
    this.schedule();
  };

  private clearTimer(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = undefined;
  }

  /** Takes whole items up to both limits (at least one) into a batch and runs it. */
  private start(): void {
    if (this.queue.length === 0 || this.inFlight >= (this.options.parallel ?? Infinity)) return;
    this.clearTimer();
    const { maxWeight, maxSize } = this.options;
    const taken: T[] = [];
    let weight = 0;
    let size = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      const w = this.weightOf(next);
      const s = this.sizeOf(next);
      if (taken.length > 0 && (weight + w > maxWeight || (maxSize !== undefined && size + s > maxSize))) break;
      taken.push(next);
      weight += w;
      size += s;
      this.queue.shift();
    }
    this.queuedWeight -= weight;
    this.queuedSize -= size;
    this.inFlight += 1;
    const batch = this.options.run(taken).finally(() => {
      this.inFlight -= 1;
      this.batches.delete(batch);
      this.schedule();
    });
    this.batches.add(batch);
  }
}
