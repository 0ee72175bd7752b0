/**
 * The figures users feel, on the compiled build (dist/, as the image runs it), each service a process of its own
 * behind the proxy that adds the SQS round trip:
 *   - worker cold start: one form queued, the worker process spawned → that form's row committed (KEDA from zero);
 *   - POST → row: forms posted at a steady low rate (open loop), from sending the request to the row's commit;
 *   - resident memory of web and worker: idle, at the low rate, and under the load run (autocannon, worker
 *     draining behind it).
 * Commits are observed with LISTEN/NOTIFY: a trigger the benchmark adds to its own database for this part
 * notifies each row's submission_id at commit.
 */
import { EventEmitter, once } from 'node:events';
import pg from 'pg';
import { jsonBody, sign } from '../harness/http.ts';
import { validForm } from '../harness/forms.ts';
import { startProcess, type ProcessHandle } from '../harness/process.ts';
import type { BenchContext } from './context.ts';
import { TEST_SECRET } from '../harness/forms.ts';
import { DIST, SOURCES } from './dist.ts';
import { load } from './load.ts';
import { ROOT, rssOf, stopChild } from './processes.ts';
import { createQueue, deleteQueue, fillQueue, queuedCount, queueName } from './sqs.ts';
import { median } from './stats.ts';
import { LOG_CODES } from '../services/common/log-codes.ts';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LatencyRun {
  /** Time to compile dist/ before this part, ms. */
  buildMs: number;
  coldStart: {
    /** Spawn of `node dist/services/worker/main.js` → commit of the queued form's row, every run, ms. */
    distMs: number[];
    distMedianMs: number;
    distMaxMs: number;
    /** The same from the TypeScript sources (`node services/worker/main.ts`, type stripping), ms. */
    sourcesMs: number[];
    sourcesMedianMs: number;
  };
  postToRow: {
    rateHz: number;
    forms: number;
    /** The injected SQS round trip, ms. */
    roundTripMs: number;
    /** 4 round trips + 20 ms. */
    targetP99Ms: number;
    /** Request sent → row committed, ms. */
    rowMs: Percentiles;
    /** Request sent → 202 received, ms. */
    acceptedMs: Percentiles;
  };
  memory: {
    web: ProcessMemory;
    worker: ProcessMemory;
    /** The load run: forms accepted and the rate, with the worker draining behind it. */
    loadForms: number;
    loadRequestsPerSecond: number;
  };
  /** Exit codes of the two processes on SIGTERM at the end. */
  exitCodes: { web: number | null; worker: number | null };
}

export interface ProcessMemory {
  /** RSS after start-up and a few warm-up forms, before the measured traffic. */
  idleBytes: number;
  /** Largest RSS sampled (every 100 ms) during the steady low rate. */
  lowRatePeakBytes: number;
  /** Largest RSS sampled during the load run and the drain after it. */
  loadPeakBytes: number;
}

const CHANNEL = 'bench_rows';

/** Percentiles by nearest rank. */
export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

/** Commit times (performance.now()) of rows by submission_id, from a trigger and LISTEN on the bench database. */
interface CommitWatch {
  /** Resolves when `id` has committed (at once if it has), rejects after timeoutMs. */
  waitFor(id: string, timeoutMs: number): Promise<number>;
  /** Resolves with the next commit of any row. */
  next(timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

/** Event of any commit on the watch's emitter (each commit is also emitted under its submission id). */
const ANY = Symbol('any commit');

async function watchCommits(ctx: BenchContext): Promise<CommitWatch> {
  await ctx.db.raw(`
    CREATE OR REPLACE FUNCTION bench_notify_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('${CHANNEL}', coalesce(NEW.submission_id::text, '')); RETURN NEW; END $$`);
  await ctx.db.raw('DROP TRIGGER IF EXISTS bench_notify_row ON form_form');
  await ctx.db.raw(
    'CREATE TRIGGER bench_notify_row AFTER INSERT ON form_form FOR EACH ROW EXECUTE FUNCTION bench_notify_row()',
  );
  const client = new pg.Client({ connectionString: ctx.database.url });
  await client.connect();
  const committed = new Map<string, number>();
  const commits = new EventEmitter();
  client.on('notification', (message) => {
    const at = performance.now();
    const id = message.payload ?? '';
    committed.set(id, at);
    commits.emit(id, at);
    commits.emit(ANY, at);
  });
  await client.query(`LISTEN ${CHANNEL}`);
  const wait = async (event: string | typeof ANY, timeoutMs: number): Promise<number> => {
    try {
      const [at] = (await once(commits, event, { signal: AbortSignal.timeout(timeoutMs) })) as [number];
      return at;
    } catch (error) {
      const what = event === ANY ? 'any submission' : event;
      throw new Error(`bench: no row committed for ${what} within ${timeoutMs} ms`, { cause: error });
    }
  };
  return {
    waitFor: (id, timeoutMs) => {
      const known = committed.get(id);
      return known === undefined ? wait(id, timeoutMs) : Promise.resolve(known);
    },
    next: (timeoutMs) => wait(ANY, timeoutMs),
    close: async () => {
      await client.end();
      await ctx.db.raw('DROP TRIGGER IF EXISTS bench_notify_row ON form_form');
      await ctx.db.raw('DROP FUNCTION IF EXISTS bench_notify_row()');
    },
  };
}

interface Queues {
  env: Record<string, string>;
  formUrl: string;
  close(): Promise<void>;
}

async function queues(ctx: BenchContext, prefix: string): Promise<Queues> {
  const name = queueName(prefix);
  const formUrl = await createQueue(ctx.direct, name);
  const invalidUrl = await createQueue(ctx.direct, `${name}-invalid`);
  return {
    env: ctx.env({ SQS_FORM_DATA_QUEUE_NAME: name, SQS_INVALID_MESAGES_QUEUE_NAME: `${name}-invalid` }),
    formUrl,
    close: async () => {
      await deleteQueue(ctx.direct, formUrl);
      await deleteQueue(ctx.direct, invalidUrl);
    },
  };
}

/** One cold start, on queues of its own: spawn → the queued form's row committed, ms. */
async function coldStartOnce(ctx: BenchContext, watch: CommitWatch, script: string): Promise<number> {
  const q = await queues(ctx, 'bench-cold');
  await fillQueue(ctx.emulator.url, q.formUrl, 1);
  const committed = watch.next(60_000);
  const spawnedAt = performance.now();
  const worker = startProcess(process.execPath, [script], q.env, { cwd: ROOT });
  try {
    const at = await Promise.race([
      committed,
      worker.exited.then(({ code }) => {
        throw new Error(`bench: the worker exited (code ${code}) before storing the queued form`);
      }),
    ]);
    return at - spawnedAt;
  } catch (error) {
    const tail = [...worker.logs.slice(-5).map((l) => JSON.stringify(l)), ...worker.text.slice(-5)].join('\n');
    throw new Error(`bench: cold start of ${script} failed; the worker's last lines:\n${tail}`, { cause: error });
  } finally {
    await stopChild(worker);
    await q.close();
  }
}

/** Samples the RSS of some processes every 100 ms until stopped; keeps the largest per process. */
function sampleRss(pids: Record<string, number>): { stop(): Promise<Record<string, number>> } {
  const peaks: Record<string, number> = Object.fromEntries(Object.keys(pids).map((k) => [k, 0]));
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const [name, pid] of Object.entries(pids))
        peaks[name] = Math.max(peaks[name] ?? 0, await rssOf(pid).catch(() => 0));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return peaks;
    },
  };
}

async function startWeb(env: Record<string, string>): Promise<{ handle: ProcessHandle; url: string }> {
  const handle = startProcess(process.execPath, [DIST.web], env, { cwd: ROOT });
  const line = await handle.waitForLog((l) => l.code === LOG_CODES.webListening, 30_000);
  return { handle, url: `http://127.0.0.1:${String(line.port)}` };
}

/** Posts the n-th distinct form of this run; resolves with its submission id and the send time. */
async function postForm(base: string, n: number): Promise<{ id: string; sentAt: number; acceptedAt: number }> {
  const body = jsonBody(validForm({ contact_name: `Latency ${n}` }));
  const sentAt = performance.now();
  const res = await fetch(`${base}/form/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-signature': sign('/form/', body, TEST_SECRET) },
    body,
  });
  const text = await res.text();
  const acceptedAt = performance.now();
  if (res.status !== 202) throw new Error(`bench: POST /form/ answered ${res.status}: ${text}`);
  const id = (JSON.parse(text) as { submission_id?: unknown }).submission_id;
  if (typeof id !== 'string') throw new Error(`bench: a 202 without submission_id: ${text}`);
  return { id, sentAt, acceptedAt };
}

export async function runLatency(
  ctx: BenchContext,
  options: {
    buildMs: number;
    coldStarts: number;
    rateHz: number;
    forms: number;
    connections: number;
    loadS: number;
    /** NODE_OPTIONS of the worker process (the chart's worker.nodeOptions, as deployed). */
    workerNodeOptions: string;
    /** NODE_OPTIONS of the web process (the chart's web.nodeOptions). */
    webNodeOptions: string;
    log: (message: string) => void;
  },
): Promise<LatencyRun> {
  await ctx.truncate();
  const watch = await watchCommits(ctx);
  const q = await queues(ctx, 'bench-latency');
  try {
    const distMs: number[] = [];
    const sourcesMs: number[] = [];
    for (let i = 0; i < options.coldStarts; i++) {
      distMs.push(await coldStartOnce(ctx, watch, DIST.worker));
      sourcesMs.push(await coldStartOnce(ctx, watch, SOURCES.worker));
    }
    options.log(
      `  cold start: dist ${distMs.map(Math.round).join(', ')} ms; sources ${sourcesMs.map(Math.round).join(', ')} ms`,
    );

    // At the chart's log level, so that the ready lines are there and memory is measured as deployed.
    const env = { ...q.env, LOG_LEVEL: 'info' };
    const workerEnv = options.workerNodeOptions ? { ...env, NODE_OPTIONS: options.workerNodeOptions } : env;
    const worker = startProcess(process.execPath, [DIST.worker], workerEnv, { cwd: ROOT });
    let web: { handle: ProcessHandle; url: string } | undefined;
    try {
      await worker.waitForLog((l) => l.code === LOG_CODES.workerPolling, 30_000);
      web = await startWeb(options.webNodeOptions ? { ...env, NODE_OPTIONS: options.webNodeOptions } : env);
      const pids = { web: web.handle.child.pid!, worker: worker.child.pid! };
      for (let i = 0; i < 10; i++) await watch.waitFor((await postForm(web.url, -1 - i)).id, 30_000);
      const idle = { web: await rssOf(pids.web), worker: await rssOf(pids.worker) };

      const lowRate = sampleRss(pids);
      const sent: Promise<{ id: string; sentAt: number; acceptedAt: number }>[] = [];
      const start = performance.now();
      for (let n = 0; n < options.forms; n++) {
        const due = start + (n * 1000) / options.rateHz;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        sent.push(postForm(web.url, n));
      }
      const posts = await Promise.all(sent);
      const rows = await Promise.all(posts.map(async (p) => (await watch.waitFor(p.id, 60_000)) - p.sentAt));
      const lowRatePeak = await lowRate.stop();
      const rowMs = percentiles(rows);
      options.log(
        `  POST → row at ${options.rateHz}/s: p50 ${rowMs.p50.toFixed(1)}, p90 ${rowMs.p90.toFixed(1)}, p99 ${rowMs.p99.toFixed(1)} ms`,
      );

      const loadPeak = sampleRss(pids);
      const loaded = await load(web.url, options.connections, options.loadS, true);
      for (const deadline = Date.now() + 300_000; (await queuedCount(ctx.direct, q.formUrl)) > 0;) {
        if (Date.now() > deadline) throw new Error('bench: the worker did not drain the load run within 300 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      const loadPeaks = await loadPeak.stop();
      options.log(
        `  RSS MiB web ${mib(idle.web)} idle, ${mib(loadPeaks.web!)} under load; worker ${mib(idle.worker)} idle, ${mib(loadPeaks.worker!)} draining`,
      );

      const webExit = web.handle.exited;
      const workerExit = worker.exited;
      web.handle.kill('SIGTERM');
      worker.kill('SIGTERM');
      const exits = { web: (await webExit).code, worker: (await workerExit).code };
      return {
        buildMs: options.buildMs,
        coldStart: {
          distMs,
          distMedianMs: median(distMs),
          distMaxMs: Math.max(...distMs),
          sourcesMs,
          sourcesMedianMs: median(sourcesMs),
        },
        postToRow: {
          rateHz: options.rateHz,
          forms: options.forms,
          roundTripMs: ctx.delayMs,
          targetP99Ms: 4 * ctx.delayMs + 20,
          rowMs,
          acceptedMs: percentiles(posts.map((p) => p.acceptedAt - p.sentAt)),
        },
        memory: {
          web: { idleBytes: idle.web, lowRatePeakBytes: lowRatePeak.web!, loadPeakBytes: loadPeaks.web! },
          worker: { idleBytes: idle.worker, lowRatePeakBytes: lowRatePeak.worker!, loadPeakBytes: loadPeaks.worker! },
          loadForms: loaded.accepted,
          loadRequestsPerSecond: loaded.requestsPerSecond,
        },
        exitCodes: exits,
      };
    } finally {
      if (web) await web.handle.ensureStopped();
      await worker.ensureStopped();
    }
  } finally {
    await q.close();
    await watch.close();
  }
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
