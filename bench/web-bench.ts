/**
 * Web throughput: the same web service in three modes, each a process of its
 * own, under the same load: coalescing on, coalescing off, and the SQS send
 * replaced by a no-op (the ceiling of the HTTP stack).
 */
import type { BenchContext } from './context.ts';
import { load } from './load.ts';
import { cpuMsOf, startWebProcess, type Child, type WebMode } from './processes.ts';
import { createQueue, deleteQueue, purgeQueue, queueName } from './sqs.ts';
import { sumActions } from './stats.ts';

export const WEB_MODES: Record<WebMode, string> = {
  batching: 'coalescing on (SendMessageBatch)',
  direct: 'coalescing off (SendMessage)',
  noop: 'no-op send (HTTP ceiling)',
};

export interface WebRun {
  mode: WebMode;
  accepted: number;
  failed: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** SQS send requests (SendMessage + SendMessageBatch) per 1000 accepted forms. */
  sendsPer1000: number;
  /** CPU time per 1000 accepted forms of the web process, the proxy, the emulator and the load generator (this process), in ms. */
  cpuMsPer1000: { web: number; proxy: number; emulator: number; load: number };
}

export interface WebServers {
  servers: Record<WebMode, Child & { url: string }>;
  queueUrl: string;
  close(): Promise<void>;
}

/** Starts the three web processes on one queue of their own. */
export async function startWebServers(ctx: BenchContext): Promise<WebServers> {
  const name = queueName('bench-web');
  const queueUrl = await createQueue(ctx.direct, name);
  const invalidUrl = await createQueue(ctx.direct, `${name}-invalid`);
  const env = ctx.env({ SQS_FORM_DATA_QUEUE_NAME: name, SQS_INVALID_MESAGES_QUEUE_NAME: `${name}-invalid` });
  const starting = (Object.keys(WEB_MODES) as WebMode[]).map((mode) => startWebProcess(mode, env));
  const settled = await Promise.allSettled(starting);
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failure = settled.find((s) => s.status === 'rejected');
  if (failure) {
    await Promise.all(started.map((s) => s.stop()));
    throw failure.reason;
  }
  const [batching, direct, noop] = started as [
    Child & { url: string },
    Child & { url: string },
    Child & { url: string },
  ];
  return {
    servers: { batching, direct, noop },
    queueUrl,
    close: async () => {
      await Promise.all(started.map((s) => s.stop()));
      await deleteQueue(ctx.direct, queueUrl);
      await deleteQueue(ctx.direct, invalidUrl);
    },
  };
}

export async function runWebMode(
  ctx: BenchContext,
  web: WebServers,
  mode: WebMode,
  options: { connections: number; durationS: number; warmupS: number },
): Promise<WebRun> {
  const base = web.servers[mode].url;
  if (options.warmupS > 0) await load(base, options.connections, options.warmupS);
  await purgeQueue(ctx.direct, web.queueUrl);
  await ctx.proxy.reset();
  const pids = {
    web: web.servers[mode].handle.child.pid!,
    proxy: ctx.proxy.handle.child.pid!,
    emulator: ctx.emulator.handle.child.pid!,
  };
  const before = {
    web: await cpuMsOf(pids.web),
    proxy: await cpuMsOf(pids.proxy),
    emulator: await cpuMsOf(pids.emulator),
    load: process.cpuUsage(),
  };
  const result = await load(base, options.connections, options.durationS);
  const loadCpu = process.cpuUsage(before.load);
  const per1000 = (ms: number): number => (result.accepted > 0 ? (ms * 1000) / result.accepted : Number.NaN);
  const cpuMsPer1000 = {
    web: per1000((await cpuMsOf(pids.web)) - before.web),
    proxy: per1000((await cpuMsOf(pids.proxy)) - before.proxy),
    emulator: per1000((await cpuMsOf(pids.emulator)) - before.emulator),
    load: per1000((loadCpu.user + loadCpu.system) / 1000),
  };
  const stats = await ctx.proxy.stats();
  await purgeQueue(ctx.direct, web.queueUrl);
  const sends = sumActions(stats.counts, ['SendMessage', 'SendMessageBatch']);
  return {
    mode,
    accepted: result.accepted,
    failed: result.failed,
    requestsPerSecond: result.requestsPerSecond,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    sendsPer1000: result.accepted > 0 ? (sends * 1000) / result.accepted : Number.NaN,
    cpuMsPer1000,
  };
}
