/**
 * Podman with the settings this kind of machine needs (no Docker engine, no
 * systemd, hybrid cgroups): runc with the cgroupfs manager (crun refuses the
 * hybrid hierarchy), no default ulimits (the hard limits here are below
 * podman's defaults), events to a file, and chroot isolation for builds (the
 * OCI runtime cannot create containers inside a build here). The settings go
 * in a containers.conf of our own, passed through CONTAINERS_CONF; nothing
 * system-wide is changed.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onPath, TOOLS } from '../tools.ts';

/** Where the stand-in base and its inputs are kept between runs: outside the repository, shared by its clones. */
export function cacheHome(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'form-data');
}

const CONTAINERS_CONF = `# written by form-data's image test
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`;

let confPath: Promise<string> | undefined;

function containersConf(): Promise<string> {
  confPath ??= (async () => {
    const file = path.join(cacheHome(), 'containers.conf');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, CONTAINERS_CONF);
    return file;
  })();
  return confPath;
}

/** Environment for podman: ours on top of the caller's. */
export async function podmanEnv(): Promise<NodeJS.ProcessEnv> {
  return { ...process.env, CONTAINERS_CONF: await containersConf(), BUILDAH_ISOLATION: 'chroot' };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never rejects on a non-zero exit (the caller checks `code`). */
export function runCommand(
  command: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 0,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { env, maxBuffer: 256 * 1024 * 1024, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number')
          return reject(new Error(`${command} ${args.join(' ')}: ${error.message}`, { cause: error }));
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

/** `podman args…`; rejects with podman's message when it exits non-zero. */
export async function podman(args: readonly string[], timeoutMs = 0): Promise<string> {
  const result = await runCommand('podman', args, await podmanEnv(), timeoutMs);
  if (result.code !== 0)
    throw new Error(
      `podman ${args.join(' ')} failed (${result.code}): ${result.stderr.trim() || result.stdout.trim()}`,
    );
  return result.stdout;
}

/** `podman args…` as a child process whose output the caller reads (e.g. `podman build`). */
export async function spawnPodman(args: readonly string[]): Promise<ChildProcess> {
  return spawn('podman', args, { env: await podmanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why the image cannot be built here (a missing tool, not root, not x86-64 Linux), or undefined. */
export async function missingImageTools(): Promise<string | undefined> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return `the image is built on x86-64 Linux only (this is ${process.platform}/${process.arch})`;
  const tools = [TOOLS.podman, TOOLS.runc, TOOLS.debootstrap];
  const found = await Promise.all(tools.map((t) => onPath(t.name)));
  const missing = tools.filter((_, i) => found[i] === undefined);
  if (missing.length > 0) return `needs ${missing.map((t) => t.name).join(', ')} (${TOOLS.podman.install})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'needs root (rootful podman and debootstrap)';
  return undefined;
}
