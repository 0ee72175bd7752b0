/**
 * The worker's liveness rule (docs/operating.md, "Worker liveness"): it fails when
 * the poll loops make no progress (a hung loop), or when SQS or the database
 * has failed every call for WORKER_LIVENESS_OUTAGE_SECONDS (a worker that may
 * be wedged on stale connections or DNS); it passes again as soon as both answer.
 */
import type { Dependency } from './consumer.ts';

/** What the rule reads, at one instant. */
export interface LivenessInput {
  /** Now, in ms since the epoch. */
  now: number;
  /** The poll loops run (started, not stopping). */
  running: boolean;
  /** When the poll loops last made progress (ms since the epoch). */
  lastProgress: number;
  /** Per failing dependency, when its first failed call since it last answered gave up (ms since the epoch). */
  failingSince: ReadonlyMap<Dependency, number>;
}

export interface LivenessBounds {
  /** How long the poll loops may go without progress (livenessBoundMs). */
  stalledMs: number;
  /** How long a dependency may fail every call (WORKER_LIVENESS_OUTAGE_SECONDS); 0: never fails liveness. */
  outageMs: number;
}

/** Why liveness fails, as the probe's answer and the log carry it. */
export type LivenessFailure =
  | { check: 'poll-loop-stalled'; idleMs: number; boundMs: number }
  | { check: 'dependency-outage'; failing: Dependency[]; outageMs: number; boundMs: number };

/** The verdict of the rule: undefined when live (and always while the loops do not run: before start, while stopping). */
export function livenessFailure(input: LivenessInput, bounds: LivenessBounds): LivenessFailure | undefined {
  if (!input.running) return undefined;
  const idleMs = input.now - input.lastProgress;
  if (idleMs > bounds.stalledMs) return { check: 'poll-loop-stalled', idleMs, boundMs: bounds.stalledMs };
  if (bounds.outageMs === 0 || input.failingSince.size === 0) return undefined;
  const since = Math.min(...input.failingSince.values());
  const outageMs = input.now - since;
  if (outageMs < bounds.outageMs) return undefined;
  const failing = [...input.failingSince.keys()].sort();
  return { check: 'dependency-outage', failing, outageMs, boundMs: bounds.outageMs };
}
