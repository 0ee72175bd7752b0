/** What the worker benchmark needs of every variant. */
export interface BenchWorker {
  /** Starts consuming. */
  start(): void;
  /** Stops starting new work; resolves once the loops have returned (the caller releases pending long polls). */
  stop(): Promise<void>;
}

/** Called with the number of messages stored and deleted. */
export type OnProcessed = (count: number) => void;
