/**
 * Typed errors shared by both services. Each names what failed and carries the
 * third-party error as `cause`.
 */
import { redactValue } from './env.ts';

/** A configuration variable is malformed or out of range; `value` is shown as `redactValue` allows. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly variable: string;
  /** The value as shown (redacted). */
  readonly value: string;
  readonly allowed: string;

  constructor(variable: string, value: string, allowed: string) {
    const shown = redactValue(variable, value);
    super(`invalid configuration: ${variable}=${JSON.stringify(shown)} is not allowed; expected ${allowed}`);
    this.variable = variable;
    this.value = shown;
    this.allowed = allowed;
  }
}

/** Context attached to SQS failures. */
export interface SqsErrorContext {
  operation: string;
  queue: string;
  messageIds?: readonly string[];
}

/** An SQS call failed. `retryable` is false for errors a retry cannot mend (e.g. a missing queue). */
export class SqsError extends Error {
  override name = 'SqsError';
  readonly operation: string;
  readonly queue: string;
  readonly messageIds: readonly string[];
  readonly retryable: boolean;

  constructor(context: SqsErrorContext, cause: unknown) {
    super(`SQS ${context.operation} on ${context.queue} failed: ${errorSummary(cause)}`, { cause });
    this.operation = context.operation;
    this.queue = context.queue;
    this.messageIds = context.messageIds ?? [];
    this.retryable = !isPermanentSqsError(cause);
  }
}

/** A database call failed; always worth retrying later. */
export class DatabaseError extends Error {
  override name = 'DatabaseError';
  readonly operation: string;
  readonly messageIds: readonly string[];

  constructor(operation: string, cause: unknown, messageIds: readonly string[] = []) {
    super(`database ${operation} failed: ${errorSummary(cause)}`, { cause });
    this.operation = operation;
    this.messageIds = messageIds;
  }
}

/** One-line description of any thrown value. */
export function errorSummary(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

const PERMANENT_SQS_ERRORS = new Set([
  'QueueDoesNotExist',
  'AWS.SimpleQueueService.NonExistentQueue',
  'AccessDenied',
  'AccessDeniedException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
]);

function isPermanentSqsError(cause: unknown): boolean {
  return cause instanceof Error && PERMANENT_SQS_ERRORS.has(cause.name);
}
