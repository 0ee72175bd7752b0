/**
 * The benchmark's child processes: emulator, proxy, web under test, worker
 * for the memory run. Each prints a JSON line with `ready: true` when it is up.
 */
import { fileURLToPath } from 'node:url';
import { startProcess, type ProcessHandle } from '../harness/process.ts';
import type { ProxyStats } from './proxy.ts';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** Root of the repository (the children run there). */
export const ROOT = here('..');

export interface Child {
  handle: ProcessHandle;
  ready: Record<string, unknown>;
  stop(): Promise<void>;
}

/** Starts `node <script> ...args` with `env` and waits for its `ready` line. */
export async function startChild(
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<Child> {
  const handle = startProcess(process.execPath, [script, ...args], env, { cwd: ROOT });
  try {
    const ready = await handle.waitForLog((line) => line.ready === true, timeoutMs);
    return { handle, ready, stop: () => stopChild(handle) };
  } catch (error) {
    await handle.ensureStopped();
    throw error;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(handle: ProcessHandle, graceMs = 5000): Promise<void> {
  handle.kill('SIGTERM');
  const timer = setTimeout(() => handle.kill('SIGKILL'), graceMs);
  await handle.exited;
  clearTimeout(timer);
}

export async function startEmulatorProcess(): Promise<Child & { url: string }> {
  const child = await startChild(here('../harness/emulator.ts'), [], { FAUXQS_PORT: '0' });
  return { ...child, url: String(child.ready.url) };
}

/** The proxy process and its control API. */
export interface ProxyProcess extends Child {
  url: string;
  stats(): Promise<ProxyStats>;
  reset(): Promise<void>;
}

export async function startProxyProcess(target: string, delayMs: number): Promise<ProxyProcess> {
  const child = await startChild(here('./child/proxy.ts'), [], {
    PROXY_TARGET: target,
    PROXY_DELAY_MS: String(delayMs),
    PROXY_PORT: '0',
  });
  const url = String(child.ready.url);
  return {
    ...child,
    url,
    stats: async () => (await (await fetch(`${url}/__bench/counts`)).json()) as ProxyStats,
    reset: async () => {
      await (await fetch(`${url}/__bench/reset`, { method: 'POST' })).text();
    },
  };
}

export type WebMode = 'batching' | 'direct' | 'noop';

export async function startWebProcess(mode: WebMode, env: Record<string, string>): Promise<Child & { url: string }> {
  const child = await startChild(here('./child/web.ts'), [mode], env);
  return { ...child, url: `http://127.0.0.1:${String(child.ready.port)}` };
}

/** Resident set size of a process, in bytes, from /proc/<pid>/status. */
export async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** CPU time (user + system) of a process so far, in ms, from /proc/<pid>/stat. */
export async function cpuMsOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the command.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100;
}
