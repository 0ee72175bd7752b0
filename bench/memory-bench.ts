/**
 * Worker memory: the compiled worker (`node dist/services/worker/main.js`, as the image runs it) as a process of
 * its own, at default settings, drains N messages; its RSS (/proc/<pid>/status VmRSS) is read once it polls, after
 * the first 10 % and at the end. (Cold start is measured by bench/latency-bench.ts.)
 */
import { startProcess } from '../harness/process.ts';
import type { BenchContext } from './context.ts';
import { freePort } from '../harness/ports.ts';
import { DIST } from './dist.ts';
import { cpuMsOf, ROOT, rssOf, stopChild } from './processes.ts';
import { createQueue, deleteQueue, fillQueue, queueName } from './sqs.ts';
import { LOG_CODES } from '../services/common/log-codes.ts';

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
  const worker = startProcess(process.execPath, [DIST.worker], env, { cwd: ROOT });
  try {
    await worker.waitForLog((l) => l.code === LOG_CODES.workerPolling, 30_000);
    const pid = worker.child.pid!;
    const rssStartBytes = await rssOf(pid);
    let rssPeakBytes = rssStartBytes;
    await fillQueue(ctx.emulator.url, formUrl, n);
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
