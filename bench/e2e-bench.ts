/**
 * End to end: the web (coalescing on, its own process) under load and our
 * worker (defaults, in this process) draining behind it, both through the
 * counting proxy. Every SQS request either makes, divided by the forms stored.
 */
import { EMPTY_RECEIVES, REPOLLS } from './proxy.ts';
import { loadConfig } from '../services/common/config.ts';
import { createWorkerService } from '../services/worker/service.ts';
import type { BenchContext } from './context.ts';
import { load } from './load.ts';
import { startWebProcess } from './processes.ts';
import { createQueue, deleteQueue, queueName, queuedCount } from './sqs.ts';
import { sumActions } from './stats.ts';

export interface E2eRun {
  accepted: number;
  stored: number;
  requestsPerForm: number;
  sendPerForm: number;
  receivePerForm: number;
  /** Receives that brought no message, per stored form (part of receivePerForm). */
  emptyReceivePerForm: number;
  /**
   * Empty answers of the emulator that SQS would not have given (another poller got the message and the wait was
   * not up), per stored form: the proxy kept those polls waiting. Not requests; not in requestsPerForm.
   */
  repolledPerForm: number;
  deletePerForm: number;
  otherPerForm: number;
  requests: Record<string, number>;
  /** From acceptance of the first form to the last one stored, in ms. */
  elapsedMs: number;
}

export async function runEndToEnd(
  ctx: BenchContext,
  options: { connections: number; durationS: number; drainTimeoutMs: number },
): Promise<E2eRun> {
  await ctx.truncate();
  const name = queueName('bench-e2e');
  const formUrl = await createQueue(ctx.direct, name);
  const invalidUrl = await createQueue(ctx.direct, `${name}-invalid`);
  const env = ctx.env({ SQS_FORM_DATA_QUEUE_NAME: name, SQS_INVALID_MESAGES_QUEUE_NAME: `${name}-invalid` });
  const web = await startWebProcess('batching', env);
  const worker = await createWorkerService(loadConfig({ ...env, LOG_LEVEL: 'silent' }));
  try {
    await ctx.proxy.reset();
    const started = performance.now();
    await worker.start();
    const result = await load(web.url, options.connections, options.durationS, true);
    const deadline = Date.now() + options.drainTimeoutMs;
    // Requests cut off by the end of the load may still have been accepted: wait for an empty queue too.
    let stored = await ctx.rowCount();
    while (Date.now() < deadline) {
      if (stored >= result.accepted && (await queuedCount(ctx.direct, formUrl)) === 0) break;
      await new Promise((r) => setTimeout(r, 100));
      stored = await ctx.rowCount();
    }
    stored = await ctx.rowCount();
    const elapsedMs = performance.now() - started;
    const stats = await ctx.proxy.stats();
    if (stored < result.accepted)
      throw new Error(
        `end to end: ${result.accepted} forms accepted, only ${stored} stored within ${options.drainTimeoutMs} ms`,
      );
    const total = Object.entries(stats.counts).reduce(
      (a, [action, n]) => (action === EMPTY_RECEIVES || action === REPOLLS ? a : a + n),
      0,
    );
    const emptyReceives = stats.counts[EMPTY_RECEIVES] ?? 0;
    const send = sumActions(stats.counts, ['SendMessage', 'SendMessageBatch']);
    const receive = sumActions(stats.counts, ['ReceiveMessage']);
    const del = sumActions(stats.counts, ['DeleteMessage', 'DeleteMessageBatch']);
    return {
      accepted: result.accepted,
      stored,
      requestsPerForm: total / stored,
      sendPerForm: send / stored,
      receivePerForm: receive / stored,
      emptyReceivePerForm: emptyReceives / stored,
      repolledPerForm: (stats.counts[REPOLLS] ?? 0) / stored,
      deletePerForm: del / stored,
      otherPerForm: (total - send - receive - del) / stored,
      requests: stats.counts,
      elapsedMs,
    };
  } finally {
    await web.stop();
    const stopped = worker.stop();
    await deleteQueue(ctx.direct, formUrl);
    await stopped;
    await deleteQueue(ctx.direct, invalidUrl);
  }
}
