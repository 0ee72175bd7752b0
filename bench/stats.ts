/** Small numeric helpers. */

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return Number.NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median of each numeric field over several results of the same shape. */
export function medianOf<T extends Record<string, unknown>>(
  runs: readonly T[],
  fields: readonly (keyof T & string)[],
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const field of fields) out[field] = median(runs.map((r) => Number(r[field])));
  return out;
}

export function round(value: number, digits = 0): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Sum of counts of the given actions. */
export function sumActions(counts: Record<string, number>, actions: readonly string[]): number {
  return actions.reduce((sum, a) => sum + (counts[a] ?? 0), 0);
}

/** Resolves when `done()` is true or after `timeoutMs`; `check` is called on every progress notification. */
export class Progress {
  count = 0;
  private readonly target: number;
  private resolve: (() => void) | undefined;
  readonly reached: Promise<void>;
  reachedAt = 0;
  readonly startedAt = performance.now();

  constructor(target: number) {
    this.target = target;
    this.reached = new Promise((r) => {
      this.resolve = r;
    });
  }

  add(n: number): void {
    this.count += n;
    if (this.count >= this.target && this.reachedAt === 0) {
      this.reachedAt = performance.now();
      this.resolve?.();
    }
  }

  /**
   * Waits for the target or `capMs`, whichever comes first; resolves with the
   * count and elapsed time at that moment. Rejects when the count has not
   * moved for `stallMs`.
   */
  async wait(capMs: number, stallMs = 60_000): Promise<{ count: number; elapsedMs: number; capped: boolean }> {
    let timer: NodeJS.Timeout | undefined;
    let watchdog: NodeJS.Timeout | undefined;
    let last = { count: -1, at: performance.now() };
    const capped = await Promise.race([
      this.reached.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), Math.max(0, capMs - (performance.now() - this.startedAt)));
      }),
      new Promise<boolean>((_, reject) => {
        watchdog = setInterval(() => {
          if (this.count !== last.count) last = { count: this.count, at: performance.now() };
          else if (performance.now() - last.at > stallMs)
            reject(new Error(`no progress for ${Math.round(stallMs / 1000)} s (${this.count} done)`));
        }, 1000);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      clearInterval(watchdog);
    });
    const end = capped ? performance.now() : this.reachedAt;
    return { count: this.count, elapsedMs: end - this.startedAt, capped };
  }
}
