/**
 * The documented bounds of each call in a silent fault, derived from the
 * configuration the services run with (README, "Bounds that are not
 * settings"), and the figures measured against them.
 */
import { expect } from 'chai';
import { appendFileSync } from 'node:fs';
import type { Config } from '../../services/common/config.ts';
import { BACKOFF_MAX_MS, DATABASE_BACKOFF_MAX_MS } from '../../services/worker/consumer.ts';

export interface Bound {
  ms: number;
  /** How the bound is derived, as the docs write it. */
  formula: string;
}

/**
 * What a measured time may exceed its bound by: the SDK's pause between two
 * attempts (at most 200 ms for the second), timers firing late and the
 * event loop of a loaded 2-core machine.
 */
export const MARGIN_MS = 1500;

/** The bounds of `config`. */
export function bounds(config: Config): {
  webSend: Bound;
  poll: Bound;
  workerCall: Bound;
  statement: Bound;
  insert: Bound;
  /** From the start of a fault that makes `call` fail to liveness answering 503. */
  livenessRed: (call: Bound) => Bound;
  /** From the heal of SQS to liveness answering 200: a poll under way gives up, the loop's longest backoff, a poll. */
  livenessGreenSqs: Bound;
  /** From the heal of PostgreSQL to liveness answering 200: a check under way gives up, the longest database backoff, a check. */
  livenessGreenDatabase: Bound;
} {
  const { requestTimeoutMs, maxAttempts, waitTimeSeconds } = config.sqs;
  const statement = config.database.timeoutMs + 1000;
  const workerCall = maxAttempts * (waitTimeSeconds * 1000 + requestTimeoutMs);
  const insert = config.database.timeoutMs + statement;
  return {
    webSend: { ms: requestTimeoutMs * maxAttempts, formula: 'SQS_REQUEST_TIMEOUT_MS × SQS_MAX_ATTEMPTS' },
    poll: { ms: workerCall, formula: 'SQS_MAX_ATTEMPTS × (SQS_WAIT_TIME + SQS_REQUEST_TIMEOUT_MS)' },
    workerCall: { ms: workerCall, formula: 'SQS_MAX_ATTEMPTS × (SQS_WAIT_TIME + SQS_REQUEST_TIMEOUT_MS)' },
    statement: { ms: statement, formula: 'DATABASE_TIMEOUT_MS + 1 s (client-side query timeout)' },
    insert: {
      ms: insert,
      formula: '2 × DATABASE_TIMEOUT_MS + 1 s: acquiring or opening a connection, then one statement',
    },
    livenessRed: (call) => ({
      ms: call.ms + config.worker.livenessOutageMs,
      formula: `the first failed call (${call.ms} ms), then WORKER_LIVENESS_OUTAGE_SECONDS`,
    }),
    livenessGreenSqs: {
      ms: 2 * workerCall + BACKOFF_MAX_MS,
      formula: `2 × the poll's bound + the loops' longest backoff (${BACKOFF_MAX_MS} ms)`,
    },
    livenessGreenDatabase: {
      ms: 2 * insert + DATABASE_BACKOFF_MAX_MS,
      formula: `2 × (2 × DATABASE_TIMEOUT_MS + 1 s) + the longest database backoff (${DATABASE_BACKOFF_MAX_MS} ms)`,
    },
  };
}

export interface Measured {
  fault: string;
  target: 'SQS' | 'PostgreSQL';
  part: string;
  measuredMs: number;
  bound: Bound;
}

const measured: Measured[] = [];

/** Keeps a measured figure for `printBounds`, and appends it as a JSON line to `$FAULT_BOUNDS_OUT` when set. */
export function recordBound(figure: Measured): void {
  measured.push(figure);
  const out = process.env.FAULT_BOUNDS_OUT;
  if (out) appendFileSync(out, JSON.stringify({ ...figure, measuredMs: Math.round(figure.measuredMs) }) + '\n');
}

/** Records `figure` and fails unless it is within its bound plus MARGIN_MS (and, given `atLeastMs`, not below it). */
export function expectWithin(figure: Measured, atLeastMs?: number): void {
  recordBound(figure);
  const what = `${figure.part}: ${figure.bound.formula}`;
  expect(figure.measuredMs, what).to.be.at.most(figure.bound.ms + MARGIN_MS);
  if (atLeastMs !== undefined) expect(figure.measuredMs, what).to.be.at.least(atLeastMs);
}

/** The figures measured since the last call, one line each. */
export function boundsTable(): string[] {
  return measured
    .splice(0)
    .map(
      (m) =>
        `${m.fault} · ${m.target} · ${m.part}: ${Math.round(m.measuredMs)} ms (bound ${m.bound.ms} ms = ${m.bound.formula}, margin ${MARGIN_MS} ms)`,
    );
}
