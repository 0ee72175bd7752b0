/**
 * A network namespace of the test's own, joined to the host by a veth pair
 * with two addresses of a private /30 chosen here: processes started inside
 * reach the host only through the pair, and `drop` makes a host port silent
 * for them with an iptables DROP inside the namespace (packets vanish both
 * ways; nothing is refused or reset). Traffic never leaves the pair.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { promisify } from 'node:util';
import { startProcess, type ProcessHandle } from './process.ts';

const run = promisify(execFile);

export interface Netns {
  name: string;
  /** The host's end of the pair (listen here for the namespace to reach you). */
  hostAddress: string;
  /** The namespace's end (reach what listens inside here). */
  nsAddress: string;
  /** Starts `command args` inside the namespace. */
  start(command: string, args: string[], env: Record<string, string>): ProcessHandle;
  /** From now on packets between the namespace and `hostAddress:port` are dropped, both ways. */
  drop(port: number): Promise<void>;
  /** Removes the drop of `port`. */
  heal(port: number): Promise<void>;
  /** Deletes the namespace and the pair. */
  destroy(): Promise<void>;
}

/** Absolute path of `name` in PATH or in `more` folders (default: the sbin folders), or undefined. */
export async function findTool(
  name: string,
  more: readonly string[] = ['/usr/sbin', '/sbin'],
): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...more];
  for (const dir of dirs) {
    const path = `${dir}/${name}`;
    try {
      await access(path);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why namespaces cannot be made here (no ip/iptables, not root), or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  const missing = [];
  for (const tool of ['ip', 'iptables']) if (!(await findTool(tool))) missing.push(tool);
  if (missing.length > 0) return `${missing.join(' and ')} not found (Debian: iproute2, iptables)`;
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root';
  return undefined;
}

/** A /30 in 10.0.0.0/8 that no interface of the host uses. */
async function freeSubnet(ip: string): Promise<[string, string]> {
  const { stdout } = await run(ip, ['-4', '-o', 'addr', 'show']);
  const { stdout: routes } = await run(ip, ['-4', 'route', 'show', 'table', 'all']);
  for (let tries = 0; tries < 50; tries++) {
    const [b = 0, c = 0, d = 0] = [...randomBytes(3)];
    const prefix = `10.${b}.${c}.`;
    if (stdout.includes(prefix) || routes.includes(prefix)) continue;
    const last = d & 0xfc;
    return [`${prefix}${last + 1}`, `${prefix}${last + 2}`];
  }
  throw new Error('no free private /30 for the test namespace');
}

/** Creates the namespace and its veth pair; the caller destroys it. */
export async function createNetns(): Promise<Netns> {
  const ip = await findTool('ip');
  const iptables = await findTool('iptables');
  if (!ip || !iptables) throw new Error('ip and iptables are needed for a network namespace');
  const id = randomBytes(3).toString('hex');
  const name = `form-data-${id}`;
  const hostIf = `fdh${id}`;
  const nsIf = `fdn${id}`;
  const [hostAddress, nsAddress] = await freeSubnet(ip);
  const inNs = (args: string[]): Promise<unknown> => run(ip, ['netns', 'exec', name, ...args]);
  const steps: string[][] = [
    ['netns', 'add', name],
    ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf],
    ['link', 'set', nsIf, 'netns', name],
    ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf],
    ['link', 'set', hostIf, 'up'],
  ];
  const destroy = async (): Promise<void> => {
    await run(ip, ['netns', 'del', name]).catch(() => undefined);
    // Deleting the namespace deletes its end, and with it the pair; this covers a half-made pair.
    await run(ip, ['link', 'del', hostIf]).catch(() => undefined);
  };
  try {
    for (const step of steps) await run(ip, step);
    await inNs([ip, 'addr', 'add', `${nsAddress}/30`, 'dev', nsIf]);
    await inNs([ip, 'link', 'set', nsIf, 'up']);
    await inNs([ip, 'link', 'set', 'lo', 'up']);
  } catch (error) {
    await destroy();
    throw error;
  }
  const rules = (port: number): string[][] => [
    ['OUTPUT', '-p', 'tcp', '-d', hostAddress, '--dport', String(port), '-j', 'DROP'],
    ['INPUT', '-p', 'tcp', '-s', hostAddress, '--sport', String(port), '-j', 'DROP'],
  ];
  return {
    name,
    hostAddress,
    nsAddress,
    start: (command, args, env) => startProcess(ip, ['netns', 'exec', name, command, ...args], env),
    drop: async (port) => {
      for (const [chain, ...rule] of rules(port)) await inNs([iptables, '-I', chain!, ...rule]);
    },
    heal: async (port) => {
      for (const [chain, ...rule] of rules(port)) await inNs([iptables, '-D', chain!, ...rule]);
    },
    destroy,
  };
}
