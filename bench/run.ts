/**
 * The benchmark run behind `npm run bench` (entry: bench/main.ts): web, worker, end-to-end and memory figures of this
 * machine in one run, next to the alternatives, through a proxy that adds
 * the SQS round trip and counts requests. Prints a table, then one JSON line
 * with every figure (the last line of stdout). Progress goes to stderr.
 *
 * Flags: --messages N (worker queue size, 20000), --delay-ms (15),
 * --duration-s (web load per measurement, 8), --rounds (3), --smoke (a
 * tiny run for the test suite), --connections (64), --memory-messages
 * (100000), --baseline-s (time cap of one slow-baseline run, 10),
 * --warmup-s (2), --e2e-s (load time of the end-to-end run, 5),
 * --no-extras (skip the informative variants), --only web,worker,e2e,latency,memory,tracing,
 * --latency-rate (forms/s of the POST → row run, 20), --latency-forms (200), --cold-starts (5),
 * --worker-node-options '<NODE_OPTIONS of the compiled worker; default the chart's worker.nodeOptions>',
 * --web-node-options '<NODE_OPTIONS of the compiled web of the latency part; default the chart's web.nodeOptions>'.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { createBenchContext, type BenchContext } from './context.ts';
import { runEndToEnd, type E2eRun } from './e2e-bench.ts';
import { buildDist } from './dist.ts';
import { runLatency, type LatencyRun } from './latency-bench.ts';
import { runMemory, type MemoryRun } from './memory-bench.ts';
import type { WebMode } from './processes.ts';
import { median, round } from './stats.ts';
import { runWebMode, startWebServers, WEB_MODES, type WebRun } from './web-bench.ts';
import { runWorkerVariant, type WorkerRun, type WorkerVariant } from './worker-bench.ts';
import { runTracing, type TracingSummary } from './tracing-bench.ts';

export interface BenchOptions {
  messages: number;
  delayMs: number;
  durationS: number;
  rounds: number;
  connections: number;
  memoryMessages: number;
  baselineS: number;
  warmupS: number;
  e2eS: number;
  extras: boolean;
  smoke: boolean;
  latencyRate: number;
  latencyForms: number;
  coldStarts: number;
  only: Set<string>;
  /** NODE_OPTIONS of the worker process of the memory run (default: the chart's worker.nodeOptions, as deployed). */
  workerNodeOptions: string;
  /** NODE_OPTIONS of the compiled web of the latency part (default: the chart's web.nodeOptions). */
  webNodeOptions: string;
}

const PARTS = ['web', 'worker', 'e2e', 'latency', 'memory', 'tracing'] as const;

/** A component's NODE_OPTIONS as the Helm chart deploys it, so that the process runs as in production. */
function chartNodeOptions(component: 'web' | 'worker'): string {
  const values = parseYaml(readFileSync(new URL('../charts/form-data/values.yaml', import.meta.url), 'utf8')) as Record<
    string,
    { nodeOptions?: string } | undefined
  >;
  return values[component]?.nodeOptions ?? '';
}

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string' },
      'delay-ms': { type: 'string' },
      'duration-s': { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      'memory-messages': { type: 'string' },
      'baseline-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      'e2e-s': { type: 'string' },
      'no-extras': { type: 'boolean' },
      only: { type: 'string' },
      'worker-node-options': { type: 'string' },
      'web-node-options': { type: 'string' },
      'latency-rate': { type: 'string' },
      'latency-forms': { type: 'string' },
      'cold-starts': { type: 'string' },
      smoke: { type: 'boolean' },
    },
    strict: true,
  });
  const smoke = values.smoke ?? false;
  const num = (name: string, given: string | undefined, full: number, tiny: number, min = 0): number => {
    if (given === undefined) return smoke ? tiny : full;
    const n = Number(given);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}, got ${given}`);
    return n;
  };
  const only = new Set(
    (values.only ?? PARTS.join(','))
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const part of only)
    if (!(PARTS as readonly string[]).includes(part))
      throw new Error(`--only: unknown part ${part}; expected ${PARTS.join(', ')}`);
  return {
    messages: Math.round(num('messages', values.messages, 20_000, 200, 10)),
    delayMs: num('delay-ms', values['delay-ms'], 15, 2),
    durationS: num('duration-s', values['duration-s'], 8, 1, 1),
    rounds: Math.round(num('rounds', values.rounds, 3, 1, 1)),
    connections: Math.round(num('connections', values.connections, 64, 8, 1)),
    memoryMessages: Math.round(num('memory-messages', values['memory-messages'], 100_000, 1000, 10)),
    baselineS: num('baseline-s', values['baseline-s'], 10, 1, 1),
    warmupS: num('warmup-s', values['warmup-s'], 2, 0),
    e2eS: num('e2e-s', values['e2e-s'], 5, 1, 1),
    extras: !(values['no-extras'] ?? smoke),
    latencyRate: num('latency-rate', values['latency-rate'], 20, 20, 1),
    latencyForms: Math.round(num('latency-forms', values['latency-forms'], 200, 10, 1)),
    coldStarts: Math.round(num('cold-starts', values['cold-starts'], 5, 1, 1)),
    smoke,
    only,
    workerNodeOptions: values['worker-node-options'] ?? chartNodeOptions('worker'),
    webNodeOptions: values['web-node-options'] ?? chartNodeOptions('web'),
  };
}

const log = (message: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
};

/** The i-th rotation of a list, so that no variant always runs first. */
function rotate<T>(items: readonly T[], i: number): T[] {
  const k = i % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function machine(): Record<string, unknown> {
  let commit: string;
  try {
    const git = (...args: string[]): string =>
      execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = git('rev-parse', '--short', 'HEAD');
    if (git('status', '--porcelain', '--', 'services', 'migrations') !== '')
      commit += ' (+ uncommitted changes in services/ or migrations/)';
  } catch {
    commit = 'unknown';
  }
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    commit,
  };
}

export interface WebSummary {
  modes: Record<
    WebMode,
    {
      requestsPerSecond: number;
      p50Ms: number;
      p99Ms: number;
      sendsPer1000: number;
      failed: number;
      webCpuMsPer1000: number;
      sqsSideCpuMsPer1000: number;
    }
  >;
  onVsNoop: number;
  onVsOff: number;
  runs: WebRun[];
}

export interface WorkerSummary {
  variants: Partial<
    Record<
      WorkerVariant,
      {
        messagesPerSecond: number;
        receivePer1000: number;
        deletePer1000: number;
        capped: boolean;
        messages: number;
        cpuMsPer1000: number;
        /** Most pool connections at once (largest over rounds). */
        connections: number | undefined;
        insertsPer1000: number | undefined;
      }
    >
  >;
  /** Ours (the coalescing writer, pool 2) over the design before it (pool 10, one INSERT per batch), same run. */
  oursVsBefore: number;
  oursVsNaive: number;
  oursVsSqsConsumer: number;
  oursVsCeiling: number;
  breakdown: WorkerRun['breakdown'];
  runs: WorkerRun[];
}

export interface EndToEndSummary extends E2eRun {
  costPerMillionForms: number;
  /** The replaced design, from this run's figures: SendMessage per form + the naive worker's receives and deletes. */
  replacedRequestsPerForm: number;
  replacedCostPerMillionForms: number;
}

export interface BenchResult {
  settings: Omit<BenchOptions, 'only'> & { only: string[] };
  machine: Record<string, unknown>;
  loadAverage: { start: number[]; end: number[] };
  durationS: number;
  web?: WebSummary;
  worker?: WorkerSummary;
  endToEnd?: EndToEndSummary;
  /** Cold start, POST → row latency and process memory, on the compiled build. */
  latency?: LatencyRun;
  memory?: MemoryRun;
  /** Tracing off and on, side by side. */
  tracing?: TracingSummary;
  targets: { name: string; value: number; target: string; met: boolean }[];
}

/** Median over rounds of a per-round ratio a/b. */
function ratio<T>(
  rounds: readonly T[][],
  a: (r: T[]) => number | undefined,
  b: (r: T[]) => number | undefined,
): number {
  return median(rounds.map((r) => (a(r) ?? Number.NaN) / (b(r) ?? Number.NaN)));
}

async function benchWeb(ctx: BenchContext, o: BenchOptions): Promise<WebSummary> {
  const web = await startWebServers(ctx);
  const rounds: WebRun[][] = [];
  try {
    const modes = Object.keys(WEB_MODES) as WebMode[];
    for (let r = 0; r < o.rounds; r++) {
      const round: WebRun[] = [];
      for (const mode of rotate(modes, r)) {
        log(`web round ${r + 1}/${o.rounds}: ${mode}, ${o.connections} connections, ${o.durationS} s`);
        const run = await runWebMode(ctx, web, mode, {
          connections: o.connections,
          durationS: o.durationS,
          warmupS: o.warmupS,
        });
        log(
          `  ${Math.round(run.requestsPerSecond)} req/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, ${round2(run.sendsPer1000)} sends/1000 forms, web CPU ${Math.round(run.cpuMsPer1000.web)} ms/1000 forms`,
        );
        round.push(run);
      }
      rounds.push(round);
    }
  } finally {
    await web.close();
  }
  const all = rounds.flat();
  const of = (mode: WebMode) => {
    const runs = all.filter((r) => r.mode === mode);
    return {
      requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
      p50Ms: median(runs.map((r) => r.p50Ms)),
      p99Ms: median(runs.map((r) => r.p99Ms)),
      sendsPer1000: median(runs.map((r) => r.sendsPer1000)),
      failed: runs.reduce((s, r) => s + r.failed, 0),
      webCpuMsPer1000: median(runs.map((r) => r.cpuMsPer1000.web)),
      sqsSideCpuMsPer1000: median(runs.map((r) => r.cpuMsPer1000.proxy + r.cpuMsPer1000.emulator)),
    };
  };
  const rps = (mode: WebMode) => (r: WebRun[]) => r.find((x) => x.mode === mode)?.requestsPerSecond;
  return {
    modes: { batching: of('batching'), direct: of('direct'), noop: of('noop') },
    onVsNoop: ratio(rounds, rps('batching'), rps('noop')),
    onVsOff: ratio(rounds, rps('batching'), rps('direct')),
    runs: all,
  };
}

async function benchWorker(ctx: BenchContext, o: BenchOptions): Promise<WorkerSummary> {
  const variants: WorkerVariant[] = ['ours', 'oursBefore', 'naive', 'sqsConsumer', 'pgCeiling', 'pgCeiling100'];
  if (o.extras) variants.push('oursConcurrency4', 'sqsConsumerBatch10');
  const rounds: WorkerRun[][] = [];
  for (let r = 0; r < o.rounds; r++) {
    const round: WorkerRun[] = [];
    for (const variant of rotate(variants, r)) {
      log(`worker round ${r + 1}/${o.rounds}: ${variant}, ${o.messages} messages`);
      const run = await runWorkerVariant(ctx, variant, { messages: o.messages, baselineCapMs: o.baselineS * 1000 });
      log(
        `  ${Math.round(run.messagesPerSecond)} msg/s (${run.messages} in ${Math.round(run.elapsedMs)} ms${run.capped ? ', time cap' : ''})`,
      );
      round.push(run);
    }
    rounds.push(round);
  }
  const all = rounds.flat();
  const summary: WorkerSummary['variants'] = {};
  for (const variant of variants) {
    const runs = all.filter((r) => r.variant === variant);
    summary[variant] = {
      messagesPerSecond: median(runs.map((r) => r.messagesPerSecond)),
      receivePer1000: median(runs.map((r) => r.receivePer1000)),
      deletePer1000: median(runs.map((r) => r.deletePer1000)),
      capped: runs.some((r) => r.capped),
      messages: median(runs.map((r) => r.messages)),
      cpuMsPer1000: median(runs.map((r) => r.cpuMsPer1000.worker)),
      connections: runs.some((r) => r.connections !== undefined)
        ? Math.max(...runs.map((r) => r.connections ?? 0))
        : undefined,
      insertsPer1000: runs.some((r) => r.insertsPer1000 !== undefined)
        ? median(runs.map((r) => r.insertsPer1000 ?? Number.NaN))
        : undefined,
    };
  }
  const rate = (variant: WorkerVariant) => (r: WorkerRun[]) => r.find((x) => x.variant === variant)?.messagesPerSecond;
  const oursRuns = all.filter((r) => r.variant === 'ours' && r.breakdown);
  const mid = oursRuns.sort((a, b) => a.messagesPerSecond - b.messagesPerSecond)[Math.floor(oursRuns.length / 2)];
  return {
    variants: summary,
    oursVsBefore: ratio(rounds, rate('ours'), rate('oursBefore')),
    oursVsNaive: ratio(rounds, rate('ours'), rate('naive')),
    oursVsSqsConsumer: ratio(rounds, rate('ours'), rate('sqsConsumer')),
    oursVsCeiling: ratio(rounds, rate('ours'), rate('pgCeiling')),
    breakdown: mid?.breakdown,
    runs: all,
  };
}

const round2 = (x: number): number => round(x, 2);

/** Resident memory targets, MiB: either service idle, and the worker while draining. */
const IDLE_RSS_MIB = 100;
const DRAINING_RSS_MIB = 160;
const mibOf = (bytes: number | undefined): number | undefined => (bytes === undefined ? undefined : bytes / 2 ** 20);

function targets(result: BenchResult): BenchResult['targets'] {
  const out: BenchResult['targets'] = [];
  const add = (name: string, value: number | undefined, target: string, met: (v: number) => boolean): void => {
    if (value === undefined || Number.isNaN(value)) return;
    out.push({ name, value: round(value, 3), target, met: met(value) });
  };
  add('worker: ours / before (pool 10, INSERT per batch)', result.worker?.oursVsBefore, '≥ 0.95', (v) => v >= 0.95);
  add('worker: database connections (ours)', result.worker?.variants.ours?.connections, '≤ 2', (v) => v <= 2);
  add('worker: ours / naive', result.worker?.oursVsNaive, '≥ 20', (v) => v >= 20);
  add('worker: ours / sqs-consumer', result.worker?.oursVsSqsConsumer, '≥ 4', (v) => v >= 4);
  add('worker: ours / PostgreSQL ceiling', result.worker?.oursVsCeiling, '≥ 0.5', (v) => v >= 0.5);
  add('web: coalescing on / no-op ceiling', result.web?.onVsNoop, '≥ 0.9', (v) => v >= 0.9);
  add('web: coalescing on / off', result.web?.onVsOff, '≥ 1.5', (v) => v >= 1.5);
  add('web: p99 with coalescing on (ms)', result.web?.modes.batching.p99Ms, '≤ 60', (v) => v <= 60);
  add('end to end: SQS requests per stored form', result.endToEnd?.requestsPerForm, '≤ 0.35', (v) => v <= 0.35);
  add('worker RSS: end / after first 10 %', result.memory?.growth, '≤ 1.2', (v) => v <= 1.2);
  add('worker: tracing on / off', result.tracing?.worker.onVsOff, '≥ 0.9', (v) => v >= 0.9);
  add('web: tracing on / off', result.tracing?.web.onVsOff, '≥ 0.85', (v) => v >= 0.85);
  const l = result.latency;
  add('worker cold start to first stored row, median (ms)', l?.coldStart.distMedianMs, '≤ 1000', (v) => v <= 1000);
  if (l)
    add(
      'POST → row p99 (ms)',
      l.postToRow.rowMs.p99,
      `≤ ${l.postToRow.targetP99Ms}`,
      (v) => v <= l.postToRow.targetP99Ms,
    );
  const idle = (name: string, bytes: number | undefined): void =>
    add(name, mibOf(bytes), `≤ ${IDLE_RSS_MIB}`, (v) => v <= IDLE_RSS_MIB);
  const draining = (name: string, bytes: number | undefined): void =>
    add(name, mibOf(bytes), `≤ ${DRAINING_RSS_MIB}`, (v) => v <= DRAINING_RSS_MIB);
  idle('web RSS idle (MiB)', l?.memory.web.idleBytes);
  idle('worker RSS idle (MiB)', l?.memory.worker.idleBytes);
  draining('worker RSS peak under the load run (MiB)', l?.memory.worker.loadPeakBytes);
  idle('worker RSS idle, memory run (MiB)', result.memory?.rssStartBytes);
  draining('worker RSS peak while draining (MiB)', result.memory?.rssPeakBytes);
  return out;
}

export async function runBenchmark(o: BenchOptions): Promise<BenchResult> {
  const started = performance.now();
  const result: BenchResult = {
    settings: { ...o, only: [...o.only] },
    machine: machine(),
    loadAverage: { start: loadavg().map((x) => round(x, 2)), end: [] },
    durationS: 0,
    targets: [],
  };
  log(`starting: ${JSON.stringify(result.settings)}`);
  const ctx = await createBenchContext(o.delayMs);
  try {
    if (o.only.has('web')) result.web = await benchWeb(ctx, o);
    if (o.only.has('worker')) result.worker = await benchWorker(ctx, o);
    if (o.only.has('e2e')) {
      log(`end to end: web (coalescing on) + worker (defaults), ${o.connections} connections, ${o.e2eS} s`);
      const e2e = await runEndToEnd(ctx, { connections: o.connections, durationS: o.e2eS, drainTimeoutMs: 300_000 });
      const directSends = result.web ? result.web.modes.direct.sendsPer1000 / 1000 : 1;
      const naive = result.worker?.variants.naive;
      const replaced = directSends + (naive ? (naive.receivePer1000 + naive.deletePer1000) / 1000 : 1.1);
      result.endToEnd = {
        ...e2e,
        costPerMillionForms: e2e.requestsPerForm * 0.4,
        replacedRequestsPerForm: replaced,
        replacedCostPerMillionForms: replaced * 0.4,
      };
      log(`  ${round2(e2e.requestsPerForm)} SQS requests per stored form (${e2e.stored} forms)`);
    }
    const buildMs = o.only.has('latency') || o.only.has('memory') ? await buildDist() : 0;
    if (o.only.has('latency')) {
      log(
        `latency (dist/): ${o.coldStarts} cold starts, ${o.latencyForms} forms at ${o.latencyRate}/s, load ${o.connections} connections ${o.e2eS} s`,
      );
      result.latency = await runLatency(ctx, {
        buildMs,
        coldStarts: o.coldStarts,
        rateHz: o.latencyRate,
        forms: o.latencyForms,
        connections: o.connections,
        loadS: o.e2eS,
        workerNodeOptions: o.workerNodeOptions,
        webNodeOptions: o.webNodeOptions,
        log,
      });
    }
    if (o.only.has('memory')) {
      log(`memory: worker process draining ${o.memoryMessages} messages`);
      result.memory = await runMemory(ctx, {
        messages: o.memoryMessages,
        timeoutMs: 900_000,
        nodeOptions: o.workerNodeOptions,
      });
      log(
        `  RSS ${mb(result.memory.rssStartBytes)} → ${mb(result.memory.rssCheckpointBytes)} → ${mb(result.memory.rssEndBytes)} MiB`,
      );
    }
    if (o.only.has('tracing')) {
      log(`tracing: web and worker with tracing off and on, ${o.rounds} rounds`);
      result.tracing = await runTracing(ctx, {
        rounds: o.rounds,
        connections: o.connections,
        durationS: o.durationS,
        warmupS: o.warmupS,
        messages: o.messages,
        log,
      });
    }
  } finally {
    await ctx.close();
  }
  result.loadAverage.end = loadavg().map((x) => round(x, 2));
  result.durationS = round((performance.now() - started) / 1000, 1);
  result.targets = targets(result);
  return result;
}

const mb = (bytes: number): number => round(bytes / 2 ** 20, 1);

/** The result as one JSON line: every figure, per-round runs included, numbers rounded to 3 decimals. */
export function toJsonLine(result: BenchResult): string {
  return JSON.stringify(result, (_key, value: unknown) =>
    typeof value === 'number' && !Number.isInteger(value) ? round(value, 3) : value,
  );
}
