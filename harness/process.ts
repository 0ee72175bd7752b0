/**
 * Child processes of the services for signal and end-to-end tests: JSON log
 * lines are parsed and can be waited on.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';

export interface LogLine {
  level?: number;
  msg?: string;
  [key: string]: unknown;
}

export interface ProcessHandle {
  child: ChildProcess;
  logs: LogLine[];
  /** Non-JSON output lines (stderr included). */
  text: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log line (past or future) matching, rejects if the process exits first or after timeoutMs. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGKILLs the process if it is still running and waits for it. */
  ensureStopped(): Promise<void>;
}

/** `command args` with exactly `env` on top of PATH and HOME, stdout and stderr piped. */
function spawnPiped(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  cwd: string | undefined,
): ChildProcessByStdio<null, Readable, Readable> {
  return spawn(command, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Starts `command args` with exactly `env` on top of PATH and HOME. */
export function startProcess(
  command: string,
  args: string[],
  env: Record<string, string>,
  options: { cwd?: string } = {},
): ProcessHandle {
  const child = spawnPiped(command, args, env, options.cwd);
  const logs: LogLine[] = [];
  const text: string[] = [];
  const waiters = new Set<{ predicate: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  const onLine = (line: string): void => {
    let parsed: LogLine | undefined;
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value === 'object' && value !== null) parsed = value as LogLine;
    } catch {
      parsed = undefined;
    }
    if (!parsed) {
      text.push(line);
      return;
    }
    logs.push(parsed);
    for (const w of [...waiters]) {
      if (w.predicate(parsed)) {
        waiters.delete(w);
        w.resolve(parsed);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  let exitedFlag = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      exitedFlag = true;
      resolve({ code, signal });
    });
  });
  return {
    child,
    logs,
    text,
    exited,
    waitForLog(predicate, timeoutMs = 30_000) {
      const found = logs.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise<LogLine>((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (l: LogLine) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `no matching log line within ${timeoutMs} ms; last lines:\n${[...text, ...logs.map((l) => JSON.stringify(l))].slice(-15).join('\n')}`,
            ),
          );
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(({ code, signal }) => {
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(
            new Error(
              `process exited (code ${code}, signal ${signal}) before the log line; output:\n${[...text, ...logs.map((l) => JSON.stringify(l))].slice(-15).join('\n')}`,
            ),
          );
        });
      });
    },
    kill(signal = 'SIGTERM') {
      if (!exitedFlag) child.kill(signal);
    },
    async ensureStopped() {
      if (!exitedFlag) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** What a command that ran to its end left: its exit code and its whole output. */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args` to its end with exactly `env` on top of PATH and HOME; never rejects on a non-zero exit. */
export function runToEnd(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  options: { cwd?: string } = {},
): Promise<Finished> {
  const child = spawnPiped(command, args, env, options.cwd);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
}
