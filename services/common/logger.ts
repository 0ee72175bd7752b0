import { pino, type Logger } from 'pino';
import type { LogFormat, LogLevel } from './config.ts';

export type { Logger };

/**
 * Logger on stdout; `service` names the process in every line. `json` (the
 * default) writes JSON lines; `pretty` writes coloured one-line text through a
 * pino-pretty transport, for local runs. `mixin` adds fields to every line
 * (the active trace's `trace_id` and `span_id`). Default: none.
 */
export function createLogger(
  level: LogLevel,
  service: string,
  format: LogFormat = 'json',
  mixin?: () => Record<string, string>,
): Logger {
  const options = { level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime, ...(mixin ? { mixin } : {}) };
  if (format === 'json') return pino(options);
  return pino(
    options,
    pino.transport({
      target: 'pino-pretty',
      options: { colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
    }),
  );
}
