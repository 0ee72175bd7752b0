/**
 * An HTTP proxy in front of the SQS emulator that adds a fixed delay to every
 * request (the network round trip to SQS) and counts requests by SQS action.
 *
 * The action comes from `X-Amz-Target: AmazonSQS.<Action>` (AWS JSON
 * protocol, what the SDK v3 sends) or `Action=<Action>` in the body or query
 * (query protocol). Paths under `/__bench/` are the proxy's own control API:
 *   GET  /__bench/counts   → { counts: { SendMessageBatch: n, ... }, latency: { action: { n, totalMs } } }
 *   POST /__bench/reset    → zeroes the counts
 *   POST /__bench/delay?ms=N → changes the delay
 *
 * Long polls are answered as SQS answers them: the emulator answers every
 * waiting ReceiveMessage when a message arrives (all but one empty), where SQS
 * keeps the others waiting. So an empty answer that comes before the request's
 * WaitTimeSeconds is up is not passed on: the proxy asks the emulator again
 * for the rest of the wait (not counted, not delayed), and the client sees
 * one request and one answer, as it would from SQS.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxyStats {
  /** Requests by SQS action since the last reset. */
  counts: Record<string, number>;
  /** Upstream (emulator) time by action since the last reset, delay excluded. */
  upstream: Record<string, { n: number; totalMs: number }>;
}

export interface DelayProxy {
  port: number;
  url: string;
  stats(): ProxyStats;
  reset(): void;
  setDelay(ms: number): void;
  close(): Promise<void>;
}

/** Counter of ReceiveMessage answers without messages (also counted under ReceiveMessage; not an action). */
export const EMPTY_RECEIVES = 'ReceiveMessage (empty)';

/** Requests that SQS would have kept waiting and the proxy re-asked the emulator for (not counted as requests). */
export const REPOLLS = 'ReceiveMessage (re-polled)';

const hasMessages = (text: string): boolean => /"Messages"\s*:\s*\[\s*\{/.test(text);

/** WaitTimeSeconds of an AWS JSON protocol ReceiveMessage body, or 0. */
function waitSecondsOf(body: Buffer): number {
  try {
    const input = JSON.parse(body.toString('utf8')) as { WaitTimeSeconds?: unknown };
    return typeof input.WaitTimeSeconds === 'number' ? input.WaitTimeSeconds : 0;
  } catch {
    return 0;
  }
}

/** The SQS action of a request, or `unknown`. */
export function actionOf(headers: IncomingMessage['headers'], url: string | undefined, body: Buffer): string {
  const target = headers['x-amz-target'];
  if (typeof target === 'string' && target.includes('.')) return target.slice(target.lastIndexOf('.') + 1);
  const query = url?.includes('?') ? new URLSearchParams(url.slice(url.indexOf('?') + 1)).get('Action') : null;
  if (query) return query;
  const type = headers['content-type'] ?? '';
  if (type.includes('x-www-form-urlencoded')) {
    const action = new URLSearchParams(body.toString('utf8')).get('Action');
    if (action) return action;
  }
  return 'unknown';
}

/** Starts the proxy on 127.0.0.1 (port 0: any free port) forwarding to `target` (http://host:port). */
export async function startDelayProxy(target: string, delayMs: number, port = 0): Promise<DelayProxy> {
  const upstream = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  let delay = delayMs;
  let counts: Record<string, number> = {};
  let upstreamTime: Record<string, { n: number; totalMs: number }> = {};

  const control = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    res.setHeader('content-type', 'application/json');
    if (url.pathname === '/__bench/counts') {
      res.end(JSON.stringify({ counts, upstream: upstreamTime } satisfies ProxyStats));
    } else if (url.pathname === '/__bench/reset' && req.method === 'POST') {
      counts = {};
      upstreamTime = {};
      res.end('{}');
    } else if (url.pathname === '/__bench/delay' && req.method === 'POST') {
      delay = Number(url.searchParams.get('ms') ?? delay);
      res.end(JSON.stringify({ delay }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  };

  const server = createServer((req, res) => {
    if (req.url?.startsWith('/__bench/')) {
      req.resume();
      req.on('end', () => control(req, res));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const action = actionOf(req.headers, req.url, body);
      counts[action] = (counts[action] ?? 0) + 1;
      const waitSeconds = action === 'ReceiveMessage' ? waitSecondsOf(body) : 0;
      const deadline = performance.now() + delay + waitSeconds * 1000;
      const forward = (payload: Buffer): void => {
        const started = performance.now();
        const out = httpRequest(
          {
            agent,
            host: upstream.hostname,
            port: upstream.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: upstream.host, 'content-length': String(payload.length) },
          },
          (answer) => {
            const time = (): void => {
              const t = (upstreamTime[action] ??= { n: 0, totalMs: 0 });
              t.n += 1;
              t.totalMs += performance.now() - started;
            };
            if (action !== 'ReceiveMessage') {
              res.writeHead(answer.statusCode ?? 502, answer.headers);
              answer.pipe(res);
              answer.on('end', time);
              return;
            }
            const parts: Buffer[] = [];
            answer.on('data', (chunk: Buffer) => parts.push(chunk));
            answer.on('end', () => {
              time();
              const text = Buffer.concat(parts);
              const empty = !hasMessages(text.toString('utf8'));
              const rest = Math.floor((deadline - performance.now()) / 1000);
              if (empty && answer.statusCode === 200 && rest >= 1 && !res.destroyed) {
                // SQS would still be waiting: ask again for the rest of the wait.
                counts[REPOLLS] = (counts[REPOLLS] ?? 0) + 1;
                const input = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
                forward(Buffer.from(JSON.stringify({ ...input, WaitTimeSeconds: rest })));
                return;
              }
              if (empty) counts[EMPTY_RECEIVES] = (counts[EMPTY_RECEIVES] ?? 0) + 1;
              res.writeHead(answer.statusCode ?? 502, answer.headers);
              res.end(text);
            });
          },
        );
        // A client gone (a worker stopped mid-poll) takes its upstream poll with it, as a closed connection to SQS does.
        const abandon = (): void => {
          if (!res.writableEnded) out.destroy();
        };
        res.once('close', abandon);
        out.on('close', () => res.off('close', abandon));
        out.on('error', (error) => {
          if (res.destroyed) return;
          if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(String(error));
        });
        out.end(payload);
      };
      if (delay > 0) setTimeout(() => forward(body), delay);
      else forward(body);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    port: actual,
    url: `http://127.0.0.1:${actual}`,
    stats: () => ({ counts: { ...counts }, upstream: structuredClone(upstreamTime) }),
    reset: () => {
      counts = {};
      upstreamTime = {};
    },
    setDelay: (ms) => {
      delay = ms;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        agent.destroy();
      }),
  };
}
