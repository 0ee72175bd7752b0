/**
 * The export's own failures (the database's are common/errors.ts
 * DatabaseError).
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

/** A bad command line; the message is one line without the usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Why a text is not an Instant; `message` says what is expected. */
export class InstantError extends Error {
  override name = 'InstantError';
}

/** A data key missing from the header: the key pass and the row pass saw different rows. */
export class HeaderMismatchError extends Error {
  override name = 'HeaderMismatchError';
}
