/**
 * The web's HTTP server: Node's limits against slow and oversized requests, and
 * problem+json answers for what Node's parser refuses before Koa sees it.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { rawProblemResponse, writeProblem } from '../common/problem.ts';

/** HTTP server limits against slow or oversized requests. */
export interface ServerLimits {
  /** Time to receive all request headers, in ms. Default 10 000. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, in ms. Default 30 000. */
  requestTimeoutMs: number;
  /** Idle time of a kept-alive connection, in ms (above common load balancers' 60 s). Default 65 000. */
  keepAliveTimeoutMs: number;
  /** Bytes of request headers. Default 16 384. */
  maxHeaderBytes: number;
}

/** Request headers Node parses per request; later ones are dropped. */
const MAX_HEADERS_COUNT = 100;

function checkingInterval(limits: ServerLimits): number {
  return Math.max(50, Math.min(30_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));
}

/** Status, title and detail of a request Node's HTTP parser refused (no internals, only what was wrong). */
function clientErrorProblem(error: NodeJS.ErrnoException, limits: ServerLimits): [number, string, string] {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', `request headers are larger than ${limits.maxHeaderBytes} bytes`];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [
        408,
        'Request Timeout',
        `the request was not received in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms)`,
      ];
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
      return [400, 'Bad Request', 'malformed HTTP request: invalid or conflicting Content-Length'];
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return [400, 'Bad Request', 'malformed HTTP request: invalid Transfer-Encoding'];
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [400, 'Bad Request', 'malformed HTTP request: invalid chunked encoding'];
    case 'HPE_INVALID_METHOD':
      return [400, 'Bad Request', 'malformed HTTP request: invalid method'];
    case 'HPE_INVALID_URL':
      return [400, 'Bad Request', 'malformed HTTP request: invalid request target'];
    case 'HPE_INVALID_VERSION':
      return [400, 'Bad Request', 'malformed HTTP request: invalid HTTP version'];
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_LF_EXPECTED':
    case 'HPE_CR_EXPECTED':
      return [400, 'Bad Request', 'malformed HTTP request: invalid header'];
    default:
      return [400, 'Bad Request', 'malformed HTTP request'];
  }
}

export const DEFAULT_LIMITS: ServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  maxHeaderBytes: 16_384,
};

/** Called for each request the server answers itself, before the app sees it (logs, metrics). */
export type RefusalObserver = (status: number, code: string | undefined) => void;

/** An HTTP server for `handler` with `limits`. */
export function createHttpServer(
  handler: RequestListener,
  limits: ServerLimits,
  onRefused: RefusalObserver = () => {},
): Server {
  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      // Passed here rather than set afterwards so that Node checks headersTimeout <= requestTimeout.
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // How often Node looks for requests past those timeouts (its default, 30 s, would stretch short ones).
      connectionsCheckingInterval: checkingInterval(limits),
      // A missing Host is refused by the app, as problem+json (Node's own refusal has no body).
      requireHostHeader: false,
    },
    handler,
  );
  server.maxHeadersCount = MAX_HEADERS_COUNT;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A response of this connection already under way cannot be replaced by another one.
    const inflight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (!socket.writable || inflight?.headersSent || error.code === 'ECONNRESET') return socket.destroy();
    const [status, title, detail] = clientErrorProblem(error, limits);
    onRefused(status, error.code);
    socket.end(rawProblemResponse({ status, title, detail }));
  });
  // Node's own answers to these carry no body; answer them as problem+json too.
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    onRefused(417, 'EXPECTATION_FAILED');
    writeProblem(
      res,
      { status: 417, title: 'Expectation Failed', detail: 'only "Expect: 100-continue" is supported' },
      { close: true },
    );
  });
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    onRefused(405, 'CONNECT');
    socket.end(
      rawProblemResponse(
        { status: 405, title: 'Method Not Allowed', detail: 'CONNECT is not allowed' },
        { Allow: 'GET, HEAD, POST' },
      ),
    );
  });
  return server;
}

/** What the metrics server serves: a prom-client registry. */
export interface MetricsSource {
  contentType: string;
  metrics(): Promise<string>;
}

/**
 * The server of METRICS_PORT: `GET`/`HEAD /metrics` and nothing else (404 or
 * 405 as problem+json), with the same limits as the form's server.
 */
export function createMetricsServer(registry: MetricsSource, limits: ServerLimits): Server {
  return createHttpServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      writeProblem(res, { status: 404, title: 'Not Found', detail: 'only /metrics is served on this port' });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      writeProblem(res, {
        status: 405,
        title: 'Method Not Allowed',
        detail: `${req.method} is not allowed on /metrics`,
      });
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': registry.contentType, 'Content-Length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      () =>
        writeProblem(res, { status: 500, title: 'Internal Server Error', detail: 'metrics could not be collected' }),
    );
  }, limits);
}
