/**
 * Failures of the export other than the database's (common/errors.ts
 * DatabaseError) and the command line's (args.ts UsageError).
 */
import { errorSummary } from '../common/errors.ts';

/** Writing the CSV failed. */
export class OutputError extends Error {
  override name = 'OutputError';
  /** The reader of the output went away (EPIPE), e.g. `| head`. */
  readonly closedEarly: boolean;

  constructor(destination: string, cause: unknown) {
    super(`writing ${destination} failed: ${errorSummary(cause)}`, { cause });
    this.closedEarly = typeof cause === 'object' && cause !== null && (cause as { code?: unknown }).code === 'EPIPE';
  }
}

/** The export was stopped by a signal. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
  readonly signal: NodeJS.Signals;

  constructor(signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
    this.signal = signal;
  }
}
