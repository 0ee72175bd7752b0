/**
 * Worker memory: `node services/worker/main.ts` as a process of its own, at
 * default settings, drains N messages; its RSS (/proc/<pid>/status VmRSS) is
 * read at start, after the first 10 % and at the end. First, with one form
 * already queued, the time from spawning the process to that form's row
 * (a worker KEDA starts from zero).
 */
import { fileURLToPath } from 'node:url';
import { startProcess } from '../harness/process.ts';
import type { BenchContext } from './context.ts';
import { freePort } from '../harness/ports.ts';
import { cpuMsOf, ROOT, rssOf, stopChild } from './processes.ts';
import { createQueue, deleteQueue, fillQueue, queueName } from './sqs.ts';

export interface MemoryRun {
  messages: number;
  checkpoint: number;
  rssStartBytes: number;
  rssCheckpointBytes: number;
  rssEndBytes: number;
  rssPeakBytes: number;
  /** rssEnd / rssCheckpoint. */
  growth: number;
  /** Throughput of the worker process between the checkpoint and the end. */
  messagesPerSecond: number;
  /** CPU of the worker process per 1000 messages, ms. */
  cpuMsPer1000: number;
  /** RSS and V8 heap in use (from the worker's /metrics) after every 10 % of the messages, in bytes. */
  series: { stored: number; rssBytes: number; heapUsedBytes: number; heapTotalBytes: number }[];
  /** From spawning the worker process (one form already queued) to that form's row, in ms. */
  coldStartMs: number;
  /** NODE_OPTIONS given to the worker process, if any. */
  nodeOptions: string;
}

/** V8 heap figures from the worker's Prometheus endpoint. */
async function heapOf(port: number): Promise<{ used: number; total: number }> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { used: read('nodejs_heap_size_used_bytes'), total: read('nodejs_heap_size_total_bytes') };
  } catch {
    return { used: Number.NaN, total: Number.NaN };
  }
}

const WORKER_MAIN = fileURLToPath(new URL('../services/worker/main.ts', import.meta.url));

export async function runMemory(
  ctx: BenchContext,
  options: { messages: number; timeoutMs: number; nodeOptions?: string },
): Promise<MemoryRun> {
  await ctx.truncate();
  const n = options.messages;
  const checkpoint = Math.max(1, Math.round(n / 10));
  const name = queueName('bench-mem');
  const formUrl = await createQueue(ctx.direct, name);
  const invalidUrl = await createQueue(ctx.direct, `${name}-invalid`);
  const healthPort = await freePort();
  const nodeOptions = options.nodeOptions ?? '';
  const env = ctx.env({
    SQS_FORM_DATA_QUEUE_NAME: name,
    SQS_INVALID_MESAGES_QUEUE_NAME: `${name}-invalid`,
    LOG_LEVEL: 'info',
    HEALTH_PORT: String(healthPort),
    ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
  });
  const series: MemoryRun['series'] = [];
  let nextSample = checkpoint;
  await fillQueue(ctx.emulator.url, formUrl, 1);
  const spawnedAt = performance.now();
  const worker = startProcess(process.execPath, [WORKER_MAIN], env, { cwd: ROOT });
  try {
    let coldStartMs = Number.NaN;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      if ((await ctx.rowCount()) >= 1) {
        coldStartMs = performance.now() - spawnedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    if (Number.isNaN(coldStartMs))
      throw new Error('memory run: the queued form was not stored within 60 s of the start');
    await worker.waitForLog((l) => l.msg === 'worker polling');
    const pid = worker.child.pid!;
    await new Promise((r) => setTimeout(r, 500));
    const rssStartBytes = await rssOf(pid);
    let rssPeakBytes = rssStartBytes;
    await fillQueue(ctx.emulator.url, formUrl, n - 1);
    const deadline = Date.now() + options.timeoutMs;
    let rssCheckpointBytes = 0;
    let checkpointAt = 0;
    let cpuAtCheckpoint = 0;
    for (;;) {
      const stored = await ctx.rowCount();
      const rss = await rssOf(pid);
      rssPeakBytes = Math.max(rssPeakBytes, rss);
      if (stored >= nextSample) {
        const heap = await heapOf(healthPort);
        series.push({ stored, rssBytes: rss, heapUsedBytes: heap.used, heapTotalBytes: heap.total });
        while (nextSample <= stored) nextSample += checkpoint;
      }
      if (rssCheckpointBytes === 0 && stored >= checkpoint) {
        rssCheckpointBytes = rss;
        checkpointAt = performance.now();
        cpuAtCheckpoint = await cpuMsOf(pid);
      }
      if (stored >= n) {
        const elapsed = performance.now() - checkpointAt;
        const cpu = (await cpuMsOf(pid)) - cpuAtCheckpoint;
        const rssEndBytes = await rssOf(pid);
        rssPeakBytes = Math.max(rssPeakBytes, rssEndBytes);
        return {
          messages: n,
          checkpoint,
          rssStartBytes,
          rssCheckpointBytes,
          rssEndBytes,
          rssPeakBytes,
          growth: rssEndBytes / rssCheckpointBytes,
          messagesPerSecond: ((n - checkpoint) * 1000) / elapsed,
          cpuMsPer1000: (cpu * 1000) / (n - checkpoint),
          series,
          coldStartMs,
          nodeOptions,
        };
      }
      if (Date.now() > deadline)
        throw new Error(`memory run: ${stored} of ${n} messages stored within ${options.timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await deleteQueue(ctx.direct, formUrl);
    await stopChild(worker);
    await deleteQueue(ctx.direct, invalidUrl);
  }
}
