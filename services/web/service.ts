/**
 * Composition root of the web: builds clients from config and wires the app,
 * the HTTP server, health probes and the shutdown order.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertWebConfig, type Config } from '../common/config.ts';
import { attachHealth, stopServer, unhealthy } from '../common/health.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { createSqsClient, resolveQueueUrls } from '../common/sqs.ts';
import { createApp } from './app.ts';
import { createWebMetrics } from './metrics.ts';
import { BatchingSender, DirectSender, type FormSender } from './sender.ts';

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

/** A whole HTTP/1.1 problem+json response, for sockets that have no ServerResponse. */
function rawProblem(status: number, title: string, detail: string, headers: Record<string, string> = {}): string {
  const body = JSON.stringify({ type: 'about:blank', title, status, detail });
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`;
}

/** Status, title and detail of a request Node's HTTP parser refused (no internals, only what was wrong). */
function clientErrorProblem(error: NodeJS.ErrnoException, limits: ServerLimits): [number, string, string] {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', `request headers are larger than ${limits.maxHeaderBytes} bytes`];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', `the request was not received in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms)`];
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

export const DEFAULT_LIMITS: ServerLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000, maxHeaderBytes: 16_384 };

export interface WebServiceOptions {
  logger?: Logger;
  /** SQS client to use instead of one built from config. It is destroyed on stop. */
  sqs?: SQSClient;
  /** Replaces the SQS sender (the benchmark's no-op ceiling). */
  sender?: FormSender;
  /** Install SIGTERM/SIGINT handling that exits the process (main only). Default false. */
  handleSignals?: boolean;
  limits?: Partial<ServerLimits>;
}

export interface WebService {
  server: Server;
  logger: Logger;
  /** Starts listening on config.web.port (0: any free port); resolves with the port. */
  listen(): Promise<number>;
  /** The shutdown sequence without exiting: fail readiness, wait the delay, stop intake, finish in-flight requests, close clients. */
  stop(): Promise<void>;
}

/** Builds the web service; resolves once the queue URL is known. */
export async function createWebService(config: Config, options: WebServiceOptions = {}): Promise<WebService> {
  assertWebConfig(config);
  const logger = options.logger ?? createLogger(config.logLevel, 'web');
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const sqs = options.sqs ?? createSqsClient(config.sqs);
  const metrics = createWebMetrics();
  let sender = options.sender;
  if (!sender) {
    const { form } = await resolveQueueUrls(sqs, config.sqs, logger);
    const observe = (entries: number, failed: number): void => {
      metrics.sqsSends.inc({ result: failed === entries ? 'failed' : 'ok' });
      metrics.sendBatchSize.observe(entries);
    };
    sender = config.sqs.sendBatching ? new BatchingSender(sqs, form, config.sqs.sendBatchWindowMs, observe) : new DirectSender(sqs, form, observe);
  }
  const app = createApp({
    sender,
    logger,
    metrics,
    secret: config.web.signatureCheck ? config.web.uiSecret : undefined,
    maxBodyBytes: config.web.maxBodyBytes,
  });
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
    app.callback(),
  );
  server.maxHeadersCount = MAX_HEADERS_COUNT;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A response of this connection already under way cannot be replaced by another one.
    const inflight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (!socket.writable || inflight?.headersSent || error.code === 'ECONNRESET') return socket.destroy();
    socket.end(rawProblem(...clientErrorProblem(error, limits)));
  });
  // Node's own answers to these carry no body; answer them as problem+json too.
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify({ type: 'about:blank', title: 'Expectation Failed', status: 417, detail: 'only "Expect: 100-continue" is supported' });
    res.writeHead(417, { 'Content-Type': 'application/problem+json', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
    res.end(body);
  });
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.end(rawProblem(405, 'Method Not Allowed', 'CONNECT is not allowed', { Allow: 'GET, HEAD, POST' }));
  });

  let ready = true;
  const closeClients = async (): Promise<void> => {
    await sender.close();
    sqs.destroy();
  };
  const failReadinessAndWait = async (): Promise<void> => {
    ready = false;
    logger.info({ delayMs: config.web.shutdownDelayMs }, 'shutting down: readiness failed, waiting before closing');
    await sleep(config.web.shutdownDelayMs);
  };
  attachHealth(server, {
    live: async () => ({ status: 'ok' }),
    ready: async () => (ready ? { status: 'ok' } : unhealthy('shutting down')),
    beforeClose: failReadinessAndWait,
    afterClose: async () => {
      await closeClients();
      logger.info('web stopped');
    },
    closeTimeoutMs: config.sqs.requestTimeoutMs * config.sqs.maxAttempts + 1000,
    handleSignals: options.handleSignals ?? false,
    logger,
  });

  return {
    server,
    logger,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.web.port, () => {
          server.off('error', reject);
          const port = (server.address() as AddressInfo).port;
          logger.info({ port }, 'web listening');
          resolve(port);
        });
      }),
    stop: async () => {
      await failReadinessAndWait();
      await stopServer(server);
      await closeClients();
    },
  };
}
