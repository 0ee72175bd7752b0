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
      const forward = (): void => {
        const started = performance.now();
        const out = httpRequest(
          {
            agent,
            host: upstream.hostname,
            port: upstream.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: upstream.host },
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
            const parts: Buffer[] = [];
            if (action === 'ReceiveMessage') answer.on('data', (chunk: Buffer) => parts.push(chunk));
            answer.on('end', () => {
              if (action === 'ReceiveMessage' && !/"Messages"\s*:\s*\[\s*\{/.test(Buffer.concat(parts).toString('utf8'))) {
                counts[EMPTY_RECEIVES] = (counts[EMPTY_RECEIVES] ?? 0) + 1;
              }
              const t = (upstreamTime[action] ??= { n: 0, totalMs: 0 });
              t.n += 1;
              t.totalMs += performance.now() - started;
            });
          },
        );
        out.on('error', (error) => {
          if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(String(error));
        });
        out.end(body);
      };
      if (delay > 0) setTimeout(forward, delay);
      else forward();
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
