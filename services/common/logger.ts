import { pino, type Logger } from 'pino';
import type { LogFormat, LogLevel } from './config.ts';

export type { Logger };

/**
 * Logger on stdout; `service` names the process in every line. `json` (the
 * default) writes JSON lines; `pretty` writes coloured one-line text through a
 * pino-pretty transport, for local runs.
 */
export function createLogger(level: LogLevel, service: string, format: LogFormat = 'json'): Logger {
  const options = { level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'json') return pino(options);
  return pino(options, pino.transport({ target: 'pino-pretty', options: { colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }));
}
