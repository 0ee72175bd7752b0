/**
 * The faults of a chaos run and what each one checks while it lasts.
 */
import { SendMessageCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Load } from './load.ts';
import { probe, scrapeCounter, type Stack, type WorkerSlot } from './stack.ts';
import { LOG_CODES } from '../services/common/log-codes.ts';
import { loadConfig } from '../services/common/config.ts';

/** Deterministic random numbers (mulberry32) so a run can be repeated with --seed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultContext {
  stack: Stack;
  load: Load;
  rng: () => number;
  /** Milliseconds since the run's epoch. */
  now: () => number;
  log: (message: string) => void;
  /** Settings the services run with (timeouts, for the bounds checked here). */
  settings: {
    sqsRequestTimeoutMs: number;
    sqsMaxAttempts: number;
    sendBatchWindowMs: number;
    workerConcurrency: number;
  };
}

export interface KillResult {
  kind: 'sigkill';
  at: number;
  workers: string[];
  /** Restarted and polling again. */
  restarted: boolean;
  error?: string;
}

export interface SigtermResult {
  kind: 'sigterm';
  at: number;
  worker: string;
  exitCode: number | null;
  signal: string | null;
  drainMs: number | undefined;
  drainedLogged: boolean;
  stoppedLogged: boolean;
  /** Whether the run restarts the worker afterwards (not at the end of the run). */
  restarted: boolean;
  ok: boolean;
  error?: string;
}

export interface DbOutageResult {
  kind: 'db-outage';
  at: number;
  downMs: number;
  /** Per worker: probes made, not-ready answers, liveness failures. */
  probes: {
    worker: string;
    ready: number;
    notReady: number;
    liveFailed: number;
    receivesPerSecond: number | undefined;
  }[];
  /** Messages handed back with a visibility backoff while the database was down (log lines). */
  handedBack: number;
  /** Poll-loop backoffs logged for the database while it was down, and the longest. */
  backoffs: number;
  longestBackoffMs: number;
  /** Time from the restart until every worker was ready again. */
  recoveryMs: number | undefined;
  /** Time from the restart until the first new row (undefined: none within 60 s, e.g. nothing was waiting). */
  storingAgainMs: number | undefined;
  ok: boolean;
  problems: string[];
}

export interface SqsOutageResult {
  kind: 'sqs-outage';
  at: number;
  downMs: number;
  /** Tries started and answered while the web's path to SQS was cut (probe forms included). */
  attemptsInside: number;
  probeForms: number;
  answered503: number;
  answered202: number;
  otherAnswers: number;
  slowest503Ms: number;
  /** Longest try started inside the window, whatever its answer and whenever it ended. */
  slowestTryMs: number;
  bound503Ms: number;
  /** Time from the restore until the first 202 of a try started after it. */
  recoveryMs: number | undefined;
  webRestarted: boolean;
  ok: boolean;
  problems: string[];
}

export interface LostAnswersResult {
  kind: 'lost-answers';
  at: number;
  durationMs: number;
  /** SQS answers to the web the proxy dropped (each request had reached the emulator). */
  lost: number;
  /** Tries started and answered while answers were being lost, and how they were answered. */
  attemptsInside: number;
  answered202: number;
  answered503: number;
  ok: boolean;
  problems: string[];
}

export interface PoisonMessage {
  kind: string;
  messageId: string;
  body: string;
  bytes: number;
}

export interface PoisonResult {
  kind: 'poison';
  at: number;
  messages: PoisonMessage[];
  maximumMessageSize: number;
}

export type FaultResult =
  | KillResult
  | SigtermResult
  | DbOutageResult
  | SqsOutageResult
  | SilentSqsResult
  | SilentWorkerResult
  | LostAnswersResult
  | PoisonResult;

/** Rows in form_form, or undefined when the database does not answer. */
async function countRows(databaseUrl: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    const out = await client.query<{ n: string }>('SELECT count(*) AS n FROM form_form');
    return Number(out.rows[0]?.n ?? 0);
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Whether the workers' liveness must stay 200 through a window of `windowMs`: the window is shorter than their
 * WORKER_LIVENESS_OUTAGE_SECONDS (or that rule is off); a longer one may fail it, as documented.
 */
function mustStayLive(ctx: FaultContext, windowMs: number): boolean {
  const outageMs = loadConfig(ctx.stack.env).worker.livenessOutageMs;
  return outageMs === 0 || windowMs < outageMs;
}

function pick<T>(rng: () => number, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

/** SIGKILLs one worker (or all of them) at a random moment and restarts it after a random pause. */
export async function killWorkers(ctx: FaultContext, all: boolean): Promise<KillResult> {
  const { stack, rng, log } = ctx;
  await sleep(Math.floor(rng() * 1500));
  const targets = all ? [...stack.workers] : [pick(rng, stack.workers)];
  const at = ctx.now();
  log(`SIGKILL ${targets.map((t) => `${t.name}.${t.generation} (pid ${t.handle.child.pid})`).join(', ')}`);
  for (const slot of targets) slot.handle.kill('SIGKILL');
  await Promise.all(targets.map((slot) => slot.handle.exited));
  await sleep(500 + Math.floor(rng() * 1500));
  try {
    await Promise.all(targets.map((slot) => ctx.stack.restartWorker(slot)));
    log(`restarted ${targets.map((t) => `${t.name}.${t.generation}`).join(', ')}`);
    return { kind: 'sigkill', at, workers: targets.map((t) => t.name), restarted: true };
  } catch (error) {
    return { kind: 'sigkill', at, workers: targets.map((t) => t.name), restarted: false, error: String(error) };
  }
}

/** SIGTERMs a worker, checks it drains and exits 0; restarts it unless `final`. */
export async function terminateWorker(ctx: FaultContext, slot: WorkerSlot, final: boolean): Promise<SigtermResult> {
  const { log } = ctx;
  const at = ctx.now();
  const handle = slot.handle;
  log(`SIGTERM ${slot.name}.${slot.generation} (pid ${handle.child.pid})${final ? ' (end of run)' : ''}`);
  handle.kill('SIGTERM');
  const timeout = sleep(30_000, undefined, { ref: false }).then(() => 'timeout' as const);
  const exit = await Promise.race([handle.exited, timeout]);
  let error: string | undefined;
  if (exit === 'timeout') {
    error = 'did not exit within 30 s of SIGTERM';
    handle.kill('SIGKILL');
  }
  const { code, signal } = await handle.exited;
  const drained = handle.logs.find((l) => l.code === LOG_CODES.workerDrained);
  const stopped = handle.logs.some((l) => l.code === LOG_CODES.workerStopped);
  const drainMs = typeof drained?.drainMs === 'number' ? drained.drainMs : undefined;
  const ok = error === undefined && code === 0 && drained !== undefined && stopped;
  log(
    `${slot.name}.${slot.generation} exited code ${code} signal ${signal}; drained in ${drainMs ?? '?'} ms${ok ? '' : ' — NOT CLEAN'}`,
  );
  let restarted = false;
  if (!final) {
    try {
      await ctx.stack.restartWorker(slot);
      restarted = true;
      log(`restarted ${slot.name}.${slot.generation}`);
    } catch (e) {
      error = `${error ?? ''} restart failed: ${String(e)}`.trim();
    }
  }
  return {
    kind: 'sigterm',
    at,
    worker: slot.name,
    exitCode: code,
    signal,
    drainMs,
    drainedLogged: drained !== undefined,
    stoppedLogged: stopped,
    restarted,
    ok: ok && (final || restarted),
    ...(error ? { error } : {}),
  };
}

/** Stops PostgreSQL for `downMs`, probing the workers' health meanwhile, then starts it again. */
export async function databaseOutage(ctx: FaultContext, downMs: number): Promise<DbOutageResult> {
  const { stack, log } = ctx;
  const workers = [...stack.workers];
  const problems: string[] = [];
  const logMarks = new Map(workers.map((w) => [w.name, w.handle.logs.length]));
  const rowsBefore = await countRows(stack.databaseUrl);
  const at = ctx.now();
  log(`stopping PostgreSQL for ${downMs} ms`);
  await stack.postgres.stop();
  const stoppedAt = ctx.now();
  const probes = workers.map((w) => ({
    worker: w.name,
    ready: 0,
    notReady: 0,
    liveFailed: 0,
    receivesPerSecond: undefined as number | undefined,
  }));
  // The request rate is measured once the outage has been noticed (the batches in hand have failed), until the restart.
  let receivesBefore: (number | undefined)[] | undefined;
  let measureFrom = 0;
  while (ctx.now() - stoppedAt < downMs) {
    if (receivesBefore === undefined && ctx.now() - stoppedAt >= Math.min(1500, downMs / 3)) {
      measureFrom = ctx.now();
      receivesBefore = await Promise.all(
        workers.map((w) =>
          scrapeCounter(w.healthPort, 'form_data_worker_sqs_requests_total', 'action="ReceiveMessage"'),
        ),
      );
    }
    await Promise.all(
      workers.map(async (w, i) => {
        const [ready, live] = await Promise.all([
          probe(w.healthPort, '/healthz/ready'),
          probe(w.healthPort, '/healthz/live'),
        ]);
        const p = probes[i]!;
        if (ready === 200) p.ready += 1;
        else p.notReady += 1;
        if (live !== 200) p.liveFailed += 1;
      }),
    );
    await sleep(300);
  }
  const receivesAfter = await Promise.all(
    workers.map((w) => scrapeCounter(w.healthPort, 'form_data_worker_sqs_requests_total', 'action="ReceiveMessage"')),
  );
  const measuredMs = ctx.now() - measureFrom;
  log('starting PostgreSQL again');
  await stack.postgres.start();
  const startedAt = ctx.now();
  const actualDownMs = startedAt - stoppedAt;

  let recoveryMs: number | undefined;
  let storingAgainMs: number | undefined;
  const deadline = startedAt + 60_000;
  while (ctx.now() < deadline && (recoveryMs === undefined || storingAgainMs === undefined)) {
    if (recoveryMs === undefined) {
      const statuses = await Promise.all(workers.map((w) => probe(w.healthPort, '/healthz/ready')));
      if (statuses.every((s) => s === 200)) recoveryMs = ctx.now() - startedAt;
    }
    if (storingAgainMs === undefined && ((await countRows(stack.databaseUrl)) ?? 0) > (rowsBefore ?? Infinity))
      storingAgainMs = ctx.now() - startedAt;
    await sleep(200);
  }
  if (recoveryMs !== undefined && recoveryMs > 30_000) recoveryMs = undefined;
  let handedBack = 0;
  let backoffs = 0;
  let longestBackoffMs = 0;
  for (const w of workers) {
    const lines = w.handle.logs.slice(logMarks.get(w.name) ?? 0);
    for (const l of lines) {
      if (l.code === LOG_CODES.storeFailed) handedBack += Array.isArray(l.messageIds) ? l.messageIds.length : 1;
      if (l.code === LOG_CODES.pollBackoff && l.kind === 'database') {
        backoffs += 1;
        longestBackoffMs = Math.max(longestBackoffMs, Number(l.backoffMs) || 0);
      }
    }
  }
  // A poll loop that spins makes hundreds of requests a second; one that long-polls or backs off, about one per loop per second.
  const spinBound = ctx.settings.workerConcurrency * 3;
  workers.forEach((w, i) => {
    const p = probes[i]!;
    const before = receivesBefore?.[i];
    const after = receivesAfter[i];
    if (before !== undefined && after !== undefined)
      p.receivesPerSecond = Math.round(((after - before) / (measuredMs / 1000)) * 10) / 10;
    if (p.notReady === 0) problems.push(`${w.name}: readiness never reported not ready while the database was down`);
    if (p.liveFailed > 0 && mustStayLive(ctx, downMs))
      problems.push(`${w.name}: liveness failed ${p.liveFailed} times while the database was down`);
    if (p.receivesPerSecond !== undefined && p.receivesPerSecond > spinBound)
      problems.push(
        `${w.name}: ${p.receivesPerSecond} ReceiveMessage/s while the database was down (spinning; bound ${spinBound}/s)`,
      );
  });
  if (recoveryMs === undefined) problems.push('workers not all ready within 30 s of the database restart');
  log(
    `PostgreSQL back after ${actualDownMs} ms; workers ready again after ${recoveryMs ?? '?'} ms, storing again after ${storingAgainMs ?? '?'} ms; ${handedBack} messages handed back`,
  );
  return {
    kind: 'db-outage',
    at,
    downMs: actualDownMs,
    probes,
    handedBack,
    backoffs,
    longestBackoffMs,
    recoveryMs,
    storingAgainMs,
    ok: problems.length === 0,
    problems,
  };
}

/** Cuts the web's path to SQS for `downMs`; checks the web answers 503 (fast) meanwhile and 202 again afterwards. */
export async function sqsOutage(ctx: FaultContext, downMs: number): Promise<SqsOutageResult> {
  const proxy = ctx.stack.webSqsProxy;
  const window = await webSqsWindow(
    ctx,
    downMs,
    'cutting',
    () => proxy.cut(),
    () => proxy.restore(),
  );
  return { kind: 'sqs-outage', ...window };
}

/** How the web's path to SQS goes silent: it accepts and passes nothing, or each answer stops after a few bytes. */
export type SilentMode = 'blackhole' | 'stall';

export interface SilentSqsResult extends Omit<SqsOutageResult, 'kind'> {
  kind: 'silent-sqs';
  mode: SilentMode;
  /** Connections that met the silence (accepted while silent, or held mid-answer). */
  silencedConnections: number;
}

/**
 * Makes the web's path to SQS silent for `downMs` (nothing is refused or
 * reset: only the SDK's timeouts end the wait); checks what `sqsOutage`
 * checks, against the same bound. With `stall` the requests reach SQS, so
 * every 503 may be stored: the storage check fails on any stored twice.
 */
export async function silentSqs(ctx: FaultContext, downMs: number, mode: SilentMode): Promise<SilentSqsResult> {
  const proxy = ctx.stack.webSqsProxy;
  const before = proxy.silenced;
  // Silent tries take the whole bound: the window outlasts it, so that tries end (503) inside it.
  const bound = ctx.settings.sqsRequestTimeoutMs * ctx.settings.sqsMaxAttempts;
  const window = await webSqsWindow(
    ctx,
    Math.max(downMs, bound + 1000),
    mode === 'blackhole' ? 'silencing (blackhole)' : 'stalling the answers on',
    () => (mode === 'blackhole' ? proxy.blackhole() : proxy.stallAnswers(12)),
    () => proxy.heal(),
  );
  const silencedConnections = proxy.silenced - before;
  if (silencedConnections === 0) window.problems.push('no connection met the silent path');
  return { kind: 'silent-sqs', mode, silencedConnections, ...window, ok: window.problems.length === 0 };
}

async function webSqsWindow(
  ctx: FaultContext,
  downMs: number,
  verb: string,
  breakPath: () => void,
  healPath: () => void,
): Promise<Omit<SqsOutageResult, 'kind'>> {
  const { stack, load, log } = ctx;
  const problems: string[] = [];
  const webPid = stack.web.child.pid;
  const at = ctx.now();
  log(`${verb} the web's path to SQS for ${downMs} ms`);
  breakPath();
  const cutAt = ctx.now();
  // Probe forms of the fault's own, so that it is tested even when the stream is thin or over.
  const probes: Promise<unknown>[] = [];
  while (ctx.now() - cutAt < downMs) {
    probes.push(load.extra());
    await sleep(Math.min(250, Math.max(0, downMs - (ctx.now() - cutAt))));
  }
  healPath();
  const restoredAt = ctx.now();
  log("restored the web's path to SQS");
  probes.push(load.extra());

  let recoveryMs: number | undefined;
  const deadline = restoredAt + 20_000;
  while (ctx.now() < deadline && recoveryMs === undefined) {
    for (const r of load.records) {
      for (const a of r.attempts) {
        if (a.start >= restoredAt && a.status === 202)
          recoveryMs = Math.min(recoveryMs ?? Infinity, a.end - restoredAt);
      }
    }
    if (recoveryMs === undefined) await sleep(200);
  }
  // Let the tries that started inside the window finish before counting them.
  await Promise.race([Promise.all(probes), sleep(30_000, undefined, { ref: false })]);
  await sleep(ctx.settings.sqsRequestTimeoutMs * ctx.settings.sqsMaxAttempts + 1000);
  let attemptsInside = 0;
  let answered503 = 0;
  let answered202 = 0;
  let otherAnswers = 0;
  let slowest503Ms = 0;
  let slowestTryMs = 0;
  const accepted: string[] = [];
  for (const r of load.records) {
    for (const a of r.attempts) {
      // A try started inside the window is never held longer than the bound, whenever it ends.
      if (a.start >= cutAt && a.start < restoredAt) slowestTryMs = Math.max(slowestTryMs, a.end - a.start);
      if (a.start < cutAt || a.end > restoredAt) continue;
      attemptsInside += 1;
      if (a.status === 503) {
        answered503 += 1;
        slowest503Ms = Math.max(slowest503Ms, a.end - a.start);
      } else if (a.status === 202) {
        answered202 += 1;
        accepted.push(`+${a.start - cutAt}..+${a.end - cutAt} ms (try ${r.attempts.indexOf(a) + 1})`);
      } else otherAnswers += 1;
    }
  }
  const bound503Ms =
    ctx.settings.sqsRequestTimeoutMs * ctx.settings.sqsMaxAttempts + ctx.settings.sendBatchWindowMs + 1000;
  const webRestarted = stack.web.child.exitCode !== null || stack.web.child.pid !== webPid;
  if (attemptsInside === 0) problems.push('no submission was made while SQS was unreachable');
  if (answered202 > 0)
    problems.push(
      `${answered202} submissions answered 202 while SQS was unreachable (${accepted.join(', ')} of a ${restoredAt - cutAt} ms window)`,
    );
  if (otherAnswers > 0)
    problems.push(`${otherAnswers} submissions answered neither 503 nor 202 while SQS was unreachable`);
  if (slowest503Ms > bound503Ms) problems.push(`slowest 503 took ${slowest503Ms} ms (bound ${bound503Ms} ms)`);
  if (slowestTryMs > bound503Ms)
    problems.push(`a try started while SQS was unreachable took ${slowestTryMs} ms (bound ${bound503Ms} ms)`);
  if (recoveryMs === undefined) problems.push('no 202 within 20 s of SQS coming back');
  if (webRestarted) problems.push('the web exited');
  log(
    `SQS ${verb.split(' ')[0]}: ${attemptsInside} tries inside, ${answered503} × 503 (slowest ${slowest503Ms} ms, bound ${bound503Ms} ms), ${answered202} × 202; first 202 ${recoveryMs ?? '?'} ms after restore`,
  );
  return {
    at,
    downMs: restoredAt - cutAt,
    attemptsInside,
    probeForms: probes.length,
    answered503,
    answered202,
    otherAnswers,
    slowest503Ms,
    slowestTryMs,
    bound503Ms,
    recoveryMs,
    webRestarted,
    ok: problems.length === 0,
    problems,
  };
}

export interface SilentWorkerResult {
  kind: 'silent-worker';
  target: 'SQS' | 'PostgreSQL';
  at: number;
  downMs: number;
  /**
   * SQS: per worker, ms from the silence to its first poll that gave up (its backoff log line).
   * PostgreSQL: per readiness probe made while silent, ms until it answered.
   */
  measuredMs: number[];
  boundMs: number;
  /** What the bound is, as the docs write it. */
  bound: string;
  notReady: number;
  liveFailed: number;
  /** Time from the heal until every worker answered ready. */
  readyAgainMs: number | undefined;
  ok: boolean;
  problems: string[];
}

/** A readiness or liveness answer and how long it took (0: no answer within 10 s). */
async function timedProbe(port: number, path: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started };
  } catch {
    return { status: 0, ms: performance.now() - started };
  }
}

/**
 * Makes the workers' path to SQS or to PostgreSQL silent (accepts, passes
 * nothing) for at least `downMs`. SQS: every worker's poll must give up within
 * SQS_MAX_ATTEMPTS × (SQS_WAIT_TIME + SQS_REQUEST_TIMEOUT_MS). PostgreSQL: each
 * readiness probe must answer 503 within one statement's bound,
 * DATABASE_TIMEOUT_MS + 1 s. Meanwhile liveness stays 200 (the window is shorter
 * than WORKER_LIVENESS_OUTAGE_SECONDS; see mustStayLive); after the heal every
 * worker is ready again. The storage check at the end covers what was received
 * meanwhile (nothing deleted before its commit, nothing stored twice).
 */
export async function silentWorkers(
  ctx: FaultContext,
  downMs: number,
  target: 'SQS' | 'PostgreSQL',
): Promise<SilentWorkerResult> {
  const { stack, log } = ctx;
  const env = stack.env;
  const waitMs = Number(env.SQS_WAIT_TIME ?? 20) * 1000;
  const databaseTimeoutMs = Number(env.DATABASE_TIMEOUT_MS ?? 5000);
  const { sqsRequestTimeoutMs, sqsMaxAttempts } = ctx.settings;
  const [boundMs, bound] =
    target === 'SQS'
      ? [sqsMaxAttempts * (waitMs + sqsRequestTimeoutMs), 'SQS_MAX_ATTEMPTS × (SQS_WAIT_TIME + SQS_REQUEST_TIMEOUT_MS)']
      : [databaseTimeoutMs + 1000, 'DATABASE_TIMEOUT_MS + 1 s'];
  const margin = 1500;
  const proxy = target === 'SQS' ? stack.workerSqsProxy : stack.workerDatabaseProxy;
  const problems: string[] = [];
  const measuredMs: number[] = [];
  let notReady = 0;
  let liveFailed = 0;
  const at = ctx.now();
  const windowMs = Math.max(downMs, boundMs + margin + 1000);
  log(`silencing the workers' path to ${target} for ${windowMs} ms`);
  const silencedAt = Date.now();
  proxy.blackhole();
  const slots = [...stack.workers];
  if (target === 'SQS') {
    await Promise.all(
      slots.map(async (slot) => {
        try {
          const line = await slot.handle.waitForLog(
            (l) =>
              l.msg === 'poll loop backing off' &&
              !String(l.reason).startsWith('database') &&
              Date.parse(String(l.time)) >= silencedAt,
            boundMs + margin + 5000,
          );
          measuredMs.push(Date.parse(String(line.time)) - silencedAt);
        } catch (error) {
          problems.push(`${slot.name}: no poll gave up while SQS was silent (${String(error)})`);
        }
      }),
    );
  }
  while (Date.now() - silencedAt < windowMs) {
    for (const slot of slots) {
      const ready = await timedProbe(slot.healthPort, '/healthz/ready');
      if (ready.status === 503) notReady += 1;
      if (target === 'PostgreSQL') measuredMs.push(Math.round(ready.ms));
      const live = await timedProbe(slot.healthPort, '/healthz/live');
      if (live.status !== 200) liveFailed += 1;
    }
    await sleep(250);
  }
  proxy.heal();
  const healedAt = Date.now();
  log(`healed the workers' path to ${target}`);
  let readyAgainMs: number | undefined;
  while (Date.now() - healedAt < 30_000) {
    const answers = await Promise.all(slots.map((slot) => timedProbe(slot.healthPort, '/healthz/ready')));
    if (answers.every((a) => a.status === 200)) {
      readyAgainMs = Date.now() - healedAt;
      break;
    }
    await sleep(100);
  }
  const slowest = Math.max(0, ...measuredMs);
  if (measuredMs.length === 0) problems.push(`nothing measured while ${target} was silent`);
  if (slowest > boundMs + margin)
    problems.push(`slowest ${slowest} ms > bound ${boundMs} ms + ${margin} ms (${bound})`);
  if (notReady === 0) problems.push(`readiness never failed while ${target} was silent`);
  if (liveFailed > 0 && mustStayLive(ctx, windowMs))
    problems.push(`liveness failed ${liveFailed} times while ${target} was silent`);
  if (readyAgainMs === undefined) problems.push('a worker not ready within 30 s of the heal');
  log(
    `workers' ${target} silent: slowest ${slowest} ms (bound ${boundMs} ms), ${notReady} not-ready probes, ${liveFailed} liveness failures; ready again ${readyAgainMs ?? '?'} ms after the heal`,
  );
  return {
    kind: 'silent-worker',
    target,
    at,
    downMs: healedAt - silencedAt,
    measuredMs,
    boundMs,
    bound,
    notReady,
    liveFailed,
    readyAgainMs,
    ok: problems.length === 0,
    problems,
  };
}

/** The silent windows a run schedules beside its cuts: the web's path to SQS, then the workers' paths. */
export const SILENT_KINDS = ['blackhole', 'stall', 'silent-worker-sqs', 'silent-worker-db'] as const;
export type SilentKind = (typeof SILENT_KINDS)[number];

/** Runs one silent window, for at least `downMs`. */
export function silentWindow(ctx: FaultContext, kind: SilentKind, downMs: number): Promise<FaultResult> {
  switch (kind) {
    case 'blackhole':
    case 'stall':
      return silentSqs(ctx, downMs, kind);
    case 'silent-worker-sqs':
      return silentWorkers(ctx, downMs, 'SQS');
    case 'silent-worker-db':
      return silentWorkers(ctx, downMs, 'PostgreSQL');
  }
}

/** Table rows, failures and summary fields of the silent windows, for the run's report. */
export function silentWindowReport(
  results: readonly FaultResult[],
  storageOk: boolean,
): {
  rows: { label: string; value: string | number; expected?: string; ok?: boolean }[];
  failures: string[];
  summary: {
    silent_worker_windows: number;
    silent_worker_windows_survived: number;
    silent_worker_bounds: Record<string, unknown>[];
    silent_sqs_windows: number;
    silent_sqs_windows_survived: number;
    silent_sqs_bounds: Record<string, unknown>[];
  };
} {
  const windows = results.filter((r): r is SilentSqsResult => r.kind === 'silent-sqs');
  const workerWindows = results.filter((r): r is SilentWorkerResult => r.kind === 'silent-worker');
  const failures = [
    ...windows.flatMap((w) => w.problems.map((p) => `silent SQS (${w.mode}): ${p}`)),
    ...workerWindows.flatMap((w) => w.problems.map((p) => `workers' ${w.target} silent: ${p}`)),
  ];
  const survived = (of: readonly { ok: boolean }[]): number => of.filter((w) => w.ok && storageOk).length;
  const survivedRow = (label: string, of: readonly { ok: boolean }[]) => ({
    label,
    value: `${survived(of)}/${of.length}`,
    expected: 'all',
    ok: of.length > 0 && of.every((w) => w.ok) && storageOk,
  });
  const rows: { label: string; value: string | number; expected?: string; ok?: boolean }[] = [
    survivedRow('silent SQS windows survived (blackhole, stall)', windows),
  ];
  for (const w of windows) {
    rows.push({
      label: `  ${w.mode}: tries 503 / 202; slowest try vs bound (ms)`,
      value: `${w.answered503} / ${w.answered202}; ${w.slowestTryMs} ≤ ${w.bound503Ms}`,
      expected: 'n / 0; ≤',
      ok: w.ok,
    });
  }
  rows.push(survivedRow("silent windows on the workers' paths survived", workerWindows));
  for (const w of workerWindows) {
    rows.push({
      label: `  ${w.target}: ${w.target === 'SQS' ? 'poll gave up' : 'readiness answered'}, slowest / bound (ms)`,
      value: `${Math.max(0, ...w.measuredMs)} / ${w.boundMs}`,
      expected: '≤ +1.5 s',
      ok: w.ok,
    });
    rows.push({
      label: `  ${w.target}: not ready / live failed / ready again after (ms)`,
      value: `${w.notReady} / ${w.liveFailed} / ${w.readyAgainMs ?? '-'}`,
      expected: '> 0 / 0',
      ok: w.notReady > 0 && w.liveFailed === 0,
    });
  }
  return {
    rows,
    failures,
    summary: {
      silent_worker_windows: workerWindows.length,
      silent_worker_windows_survived: survived(workerWindows),
      silent_worker_bounds: workerWindows.map((w) => ({
        target: w.target,
        slowest_ms: Math.max(0, ...w.measuredMs),
        bound_ms: w.boundMs,
        bound: w.bound,
      })),
      silent_sqs_windows: windows.length,
      silent_sqs_windows_survived: survived(windows),
      silent_sqs_bounds: windows.map((w) => ({
        mode: w.mode,
        slowest_503_ms: w.slowest503Ms,
        slowest_try_ms: w.slowestTryMs,
        bound_ms: w.bound503Ms,
      })),
    },
  };
}

/**
 * For `durationMs`, drops every other answer SQS gives the web (the request has
 * reached the emulator, which stored the messages): the SDK sends the same body
 * again, and a client retries after a 503. The storage check at the end fails on
 * any submission stored twice.
 */
export async function lostAnswers(ctx: FaultContext, durationMs: number): Promise<LostAnswersResult> {
  const { stack, load, log } = ctx;
  const problems: string[] = [];
  const at = ctx.now();
  const lostBefore = stack.webSqsProxy.lost;
  let n = 0;
  log(`losing every other SQS answer to the web for ${durationMs} ms`);
  stack.webSqsProxy.loseAnswers(() => n++ % 2 === 0);
  const startedAt = ctx.now();
  const probes: Promise<unknown>[] = [];
  while (ctx.now() - startedAt < durationMs) {
    probes.push(load.extra());
    await sleep(Math.min(100, Math.max(0, durationMs - (ctx.now() - startedAt))));
  }
  stack.webSqsProxy.keepAnswers();
  const endedAt = ctx.now();
  await Promise.race([Promise.all(probes), sleep(30_000, undefined, { ref: false })]);
  const lost = stack.webSqsProxy.lost - lostBefore;
  let attemptsInside = 0;
  let answered202 = 0;
  let answered503 = 0;
  for (const r of load.records) {
    for (const a of r.attempts) {
      if (a.start < startedAt || a.start > endedAt) continue;
      attemptsInside += 1;
      if (a.status === 202) answered202 += 1;
      else if (a.status === 503) answered503 += 1;
    }
  }
  if (lost === 0) problems.push('no SQS answer was lost');
  if (answered202 === 0) problems.push('no submission was answered 202 while answers were lost');
  log(
    `lost answers: ${lost} answers dropped; ${attemptsInside} tries inside: ${answered202} × 202, ${answered503} × 503`,
  );
  return {
    kind: 'lost-answers',
    at,
    durationMs: endedAt - startedAt,
    lost,
    attemptsInside,
    answered202,
    answered503,
    ok: problems.length === 0,
    problems,
  };
}

/** Puts poison messages straight on the form queue (not through the web). */
export async function injectPoison(ctx: FaultContext): Promise<PoisonResult> {
  const { stack, log } = ctx;
  const attrs = await stack.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: stack.formQueueUrl, AttributeNames: ['MaximumMessageSize'] }),
  );
  const maximumMessageSize = Number(attrs.Attributes?.MaximumMessageSize ?? 262_144);
  const stamp = { received_at: new Date().toISOString(), request_id: 'chaos-poison' };
  const padded = (target: number): string => {
    const head = JSON.stringify({ ...stamp, data: { company_name: '' } });
    const filler = 'x'.repeat(Math.max(0, target - head.length - 2));
    return JSON.stringify({ ...stamp, data: { company_name: filler } });
  };
  const bodies: { kind: string; body: string }[] = [
    { kind: 'not JSON', body: `not json {${stack.formQueue}` },
    { kind: 'JSON without data', body: JSON.stringify({ ...stamp, note: 'no data field' }) },
    {
      kind: 'data failing the schema',
      body: JSON.stringify({
        ...stamp,
        data: { company_name: 'Poison Ltd', email_address1: 'not-an-email', agree_terms: false },
      }),
    },
    // Within SQS's historical 256 KiB limit, attributes included.
    { kind: 'huge body (200 KiB)', body: padded(200 * 1024) },
    // Close to the queue's maximum, leaving room for the two attributes of the copy.
    { kind: `huge body (queue max ${maximumMessageSize} B − 2 KiB)`, body: padded(maximumMessageSize - 2048) },
  ];
  const messages: PoisonMessage[] = [];
  for (const { kind, body } of bodies) {
    const out = await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.formQueueUrl, MessageBody: body }));
    messages.push({ kind, messageId: out.MessageId!, body, bytes: Buffer.byteLength(body) });
  }
  log(`injected ${messages.length} poison messages (${messages.map((m) => `${m.kind}: ${m.bytes} B`).join('; ')})`);
  return { kind: 'poison', at: ctx.now(), messages, maximumMessageSize };
}
