/**
 * Runs what the rendered manifests describe, here, without a cluster: each
 * container's args (the image's entrypoint, tini, is left out), its
 * environment resolved from the ConfigMap/Secret references, its ports moved
 * to free ones consistently with the environment variables that set them, and
 * its HTTP probes.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../harness/ports.ts';
import { startProcess, type ProcessHandle } from '../../harness/process.ts';
import { ROOT, type Loose, type Manifest } from './helm.ts';

/** Compiles the project (tsconfig.build.json) into `<dir>/dist`, as the image's build stage does. */
export async function buildInto(dir: string): Promise<void> {
  await rm(path.join(dir, 'dist'), { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  await new Promise<void>((resolve, reject) => {
    execFile(
      process.execPath,
      [tsc, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', path.join(dir, 'dist')],
      { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`tsc failed: ${stdout}${stderr}`));
        else resolve();
      },
    );
  });
}

export interface Probe {
  kind: 'startupProbe' | 'readinessProbe' | 'livenessProbe';
  path: string;
  /** The port the manifest names (number), before it is moved. */
  manifestPort: number;
  /** The port it is moved to here. */
  port: number;
  periodSeconds: number;
  failureThreshold: number;
}

export interface PreparedContainer {
  owner: string;
  name: string;
  /** args of the container, `node` replaced by this Node. */
  command: string;
  args: string[];
  env: Record<string, string>;
  probes: Probe[];
  /** containerPort → port used here. */
  ports: Map<number, number>;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
  };
}

function dataOf(
  manifests: readonly Manifest[],
  kind: 'Secret' | 'ConfigMap',
  name: string,
): Record<string, string> | undefined {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
  if (!m) return undefined;
  const data = (m.data ?? {}) as Record<string, string>;
  if (kind === 'ConfigMap') return data;
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

/** The environment Kubernetes would give the container (envFrom first, env on top). */
export function resolveEnv(
  manifests: readonly Manifest[],
  container: { envFrom?: unknown[]; env?: EnvVar[] },
  owner: string,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of (container.envFrom ?? []) as {
    configMapRef?: { name: string; optional?: boolean };
    secretRef?: { name: string; optional?: boolean };
  }[]) {
    const ref = from.configMapRef ?? from.secretRef;
    if (!ref) continue;
    const data = dataOf(manifests, from.configMapRef ? 'ConfigMap' : 'Secret', ref.name);
    if (!data) {
      if (ref.optional) continue;
      throw new Error(`${owner}: envFrom ${from.configMapRef ? 'ConfigMap' : 'Secret'} ${ref.name} is not rendered`);
    }
    Object.assign(env, data);
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value;
      continue;
    }
    const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
    if (!ref) throw new Error(`${owner}: env ${e.name} has a valueFrom this test cannot resolve`);
    const data = dataOf(manifests, e.valueFrom?.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name);
    const value = data?.[ref.key];
    if (value === undefined) {
      if (ref.optional) continue;
      throw new Error(`${owner}: env ${e.name} refers to ${ref.name}/${ref.key}, which is not rendered`);
    }
    env[e.name] = value;
  }
  return env;
}

/**
 * Prepares one container to run here. Every containerPort is moved to a free
 * port; the environment variable that carries it (its value is the port) is
 * moved with it, and there must be exactly one such variable.
 */
export async function prepareContainer(
  manifests: readonly Manifest[],
  owner: Manifest,
  container: Record<string, Loose>,
): Promise<PreparedContainer> {
  const where = `${owner.kind} ${owner.metadata.name}/${container.name as string}`;
  const env = resolveEnv(manifests, container, where);
  if (container.command)
    throw new Error(`${where}: sets command, which would replace the image's tini entrypoint; the chart sets args`);
  const args = [...(container.args as string[])];
  if (args[0] !== 'node') throw new Error(`${where}: args should start with node, got ${JSON.stringify(args)}`);

  const ports = new Map<number, number>();
  const named = new Map<string, number>();
  for (const p of (container.ports ?? []) as { name?: string; containerPort: number }[]) {
    const carriers = Object.entries(env)
      .filter(([, v]) => v === String(p.containerPort))
      .map(([k]) => k);
    if (carriers.length !== 1)
      throw new Error(
        `${where}: containerPort ${p.containerPort} should be set by exactly one environment variable, found ${JSON.stringify(carriers)}`,
      );
    const free = await freePort();
    env[carriers[0]!] = String(free);
    ports.set(p.containerPort, free);
    if (p.name) named.set(p.name, p.containerPort);
  }

  const probes: Probe[] = [];
  for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
    const probe = container[kind];
    if (!probe) continue;
    if (!probe.httpGet) throw new Error(`${where}: ${kind} is not an httpGet probe`);
    const raw = probe.httpGet.port as string | number;
    const manifestPort = typeof raw === 'number' ? raw : named.get(raw);
    if (manifestPort === undefined)
      throw new Error(`${where}: ${kind} names port ${raw}, which the container does not declare`);
    const port = ports.get(manifestPort);
    if (port === undefined)
      throw new Error(`${where}: ${kind} probes port ${manifestPort}, which is not a containerPort`);
    probes.push({
      kind,
      path: probe.httpGet.path,
      manifestPort,
      port,
      periodSeconds: probe.periodSeconds ?? 10,
      failureThreshold: probe.failureThreshold ?? 3,
    });
  }
  return {
    owner: `${owner.kind}/${owner.metadata.name}`,
    name: container.name,
    command: process.execPath,
    args: args.slice(1),
    env,
    probes,
    ports,
  };
}

export function start(prepared: PreparedContainer, cwd: string): ProcessHandle {
  return startProcess(prepared.command, prepared.args, prepared.env, { cwd });
}

/** Polls `url` until it answers with `status` (or any 2xx when omitted), within `timeoutMs`. */
export async function waitForHttp(
  url: string,
  timeoutMs: number,
  status?: number,
  stillRunning?: () => boolean,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (let delay = 25; ; delay = Math.min(delay * 2, 250)) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (status === undefined ? res.ok : res.status === status) return res.status;
      last = `status ${res.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (stillRunning && !stillRunning()) throw new Error(`${url}: the process exited (${last})`);
    if (Date.now() > deadline)
      throw new Error(`${url} did not answer ${status ?? '2xx'} within ${timeoutMs} ms (${last})`);
    await new Promise((r) => setTimeout(r, delay));
  }
}
