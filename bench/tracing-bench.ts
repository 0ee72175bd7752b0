/**
 * What tracing costs: the web (coalescing on) and the worker (defaults), each
 * with tracing off and on, side by side in the same rounds, spans exported
 * over OTLP/HTTP (http/protobuf, the default sampler) to a local receiver
 * that reads and discards them. The receiver runs in this process; the web
 * under load runs in processes of its own, the worker in this process.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BenchContext } from './context.ts';
import { load } from './load.ts';
import { startWebProcess } from './processes.ts';
import { createQueue, deleteQueue, purgeQueue, queueName } from './sqs.ts';
import { median } from './stats.ts';
import { runWorkerVariant } from './worker-bench.ts';

export interface TracingSummary {
  web: {
    offRequestsPerSecond: number;
    onRequestsPerSecond: number;
    onVsOff: number;
    offP99Ms: number;
    onP99Ms: number;
  };
  worker: { offMessagesPerSecond: number; onMessagesPerSecond: number; onVsOff: number };
  /** Export requests and bytes the receiver got. */
  receiver: { requests: number; bytes: number };
  rounds: { webOff: number; webOn: number; workerOff: number; workerOn: number }[];
}

/** An OTLP/HTTP endpoint that accepts and discards what it is sent. */
async function startSink(): Promise<{ url: string; requests: number; bytes: number; close(): Promise<void> }> {
  const state = { requests: 0, bytes: 0 };
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (state.bytes += c.length));
    req.on('end', () => {
      state.requests += 1;
      res.writeHead(200, { 'Content-Type': req.headers['content-type'] ?? 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get requests() {
      return state.requests;
    },
    get bytes() {
      return state.bytes;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export async function runTracing(
  ctx: BenchContext,
  o: {
    rounds: number;
    connections: number;
    durationS: number;
    warmupS: number;
    messages: number;
    log: (m: string) => void;
  },
): Promise<TracingSummary> {
  const sink = await startSink();
  const name = queueName('bench-tracing');
  const queueUrl = await createQueue(ctx.direct, name);
  const invalidUrl = await createQueue(ctx.direct, `${name}-invalid`);
  const env = ctx.env({ SQS_FORM_DATA_QUEUE_NAME: name, SQS_INVALID_MESAGES_QUEUE_NAME: `${name}-invalid` });
  const [off, on] = await Promise.all([
    startWebProcess('batching', env),
    startWebProcess('batching', { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: sink.url }),
  ]);
  const rounds: TracingSummary['rounds'] = [];
  const p99 = { off: [] as number[], on: [] as number[] };
  try {
    for (let r = 0; r < o.rounds; r++) {
      const web: Record<'off' | 'on', number> = { off: 0, on: 0 };
      for (const which of r % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        const base = (which === 'on' ? on : off).url;
        if (o.warmupS > 0) await load(base, o.connections, o.warmupS);
        await purgeQueue(ctx.direct, queueUrl);
        const result = await load(base, o.connections, o.durationS);
        web[which] = result.requestsPerSecond;
        p99[which].push(result.p99Ms);
        o.log(
          `tracing round ${r + 1}/${o.rounds}: web tracing ${which}: ${Math.round(result.requestsPerSecond)} req/s, p99 ${result.p99Ms} ms`,
        );
      }
      const worker: Record<'off' | 'on', number> = { off: 0, on: 0 };
      for (const variant of r % 2 === 0 ? (['ours', 'oursTraced'] as const) : (['oursTraced', 'ours'] as const)) {
        const run = await runWorkerVariant(ctx, variant, {
          messages: o.messages,
          baselineCapMs: 600_000,
          otlpEndpoint: sink.url,
        });
        worker[variant === 'ours' ? 'off' : 'on'] = run.messagesPerSecond;
        o.log(
          `tracing round ${r + 1}/${o.rounds}: worker tracing ${variant === 'ours' ? 'off' : 'on'}: ${Math.round(run.messagesPerSecond)} msg/s`,
        );
      }
      rounds.push({ webOff: web.off, webOn: web.on, workerOff: worker.off, workerOn: worker.on });
    }
  } finally {
    await Promise.all([off.stop(), on.stop()]);
    await purgeQueue(ctx.direct, queueUrl).catch(() => undefined);
    await deleteQueue(ctx.direct, queueUrl);
    await deleteQueue(ctx.direct, invalidUrl);
    await sink.close();
  }
  return {
    web: {
      offRequestsPerSecond: median(rounds.map((r) => r.webOff)),
      onRequestsPerSecond: median(rounds.map((r) => r.webOn)),
      onVsOff: median(rounds.map((r) => r.webOn / r.webOff)),
      offP99Ms: median(p99.off),
      onP99Ms: median(p99.on),
    },
    worker: {
      offMessagesPerSecond: median(rounds.map((r) => r.workerOff)),
      onMessagesPerSecond: median(rounds.map((r) => r.workerOn)),
      onVsOff: median(rounds.map((r) => r.workerOn / r.workerOff)),
    },
    receiver: { requests: sink.requests, bytes: sink.bytes },
    rounds,
  };
}
