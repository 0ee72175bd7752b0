/**
 * terminus wiring shared by both services: health routes on an http.Server and
 * an ordered shutdown. terminus always installs its signal handlers; when the
 * caller does not want them (tests driving `stop()` themselves), they are removed again.
 */
import { createTerminus, HealthCheckError } from '@godaddy/terminus';
import type { Server } from 'node:http';
import { errorSummary } from './errors.ts';
import type { Logger } from './logger.ts';

/** A health check: resolves when healthy, throws a HealthCheckError with its reasons otherwise. */
export type Check = () => Promise<Record<string, unknown> | void>;

export interface HealthOptions {
  live: Check;
  ready: Check;
  /** Steps run in order on SIGTERM/SIGINT: before the server closes, after it closed. */
  beforeClose: () => Promise<void>;
  afterClose: () => Promise<void>;
  /** How long in-flight requests may take once the server stops accepting, in ms. */
  closeTimeoutMs: number;
  /** Install terminus' SIGTERM/SIGINT handlers (exit 0 after a clean shutdown, 1 after a failed one). */
  handleSignals: boolean;
  /** Failed probes are logged at warn with their reason; a failed shutdown at error. */
  logger: Logger;
}

/** Fails a check with a reason shown in the probe's JSON body. */
export function unhealthy(reason: string, details: Record<string, unknown> = {}): never {
  throw new HealthCheckError(reason, { reason, ...details });
}

/** Decorates `server` with /healthz/live and /healthz/ready and the shutdown sequence. */
export function attachHealth(server: Server, options: HealthOptions): void {
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  createTerminus(server, {
    healthChecks: {
      '/healthz/live': async () => (await options.live()) ?? {},
      '/healthz/ready': async () => (await options.ready()) ?? {},
      verbatim: true,
    },
    signals,
    useExit0: true,
    timeout: options.closeTimeoutMs,
    beforeShutdown: options.beforeClose,
    onSignal: options.afterClose,
    logger: (message: string, error?: unknown) => {
      if (message === 'healthcheck failed') options.logger.warn({ reason: errorSummary(error) }, message);
      else options.logger.error({ err: error }, message);
    },
  });
  if (!options.handleSignals) {
    for (const signal of signals) {
      for (const listener of process.listeners(signal)) {
        if (!before.get(signal)?.has(listener)) process.removeListener(signal, listener);
      }
    }
  }
}

/** Closes a terminus-decorated (stoppable) server, waiting up to its grace time for in-flight requests. */
export function stopServer(server: Server): Promise<void> {
  const stoppable = server as Server & { stop?: (cb: (error?: Error) => void) => void };
  return new Promise((resolve, reject) => {
    if (!server.listening) return resolve();
    if (stoppable.stop) stoppable.stop((error) => (error ? reject(error) : resolve()));
    else server.close((error) => (error ? reject(error) : resolve()));
  });
}
