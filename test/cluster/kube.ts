/**
 * What the cluster tests need from a cluster, read from the environment alone, so that the same tests run on the
 * local cluster (`npm run cluster -- up`), kind, k3d or EKS:
 *   KUBECONFIG    the cluster (required; without it the tests skip outside CI and fail under CI)
 *   REGISTRY      host:port the tests push the image to and the nodes pull it from (plain HTTP for 127.0.0.1)
 *   HOST_ADDRESS  an address of this machine that pods reach: the tests' PostgreSQL and SQS emulator are offered there
 *   KUBECTL       kubectl to use (default: `kubectl` from PATH)
 * `npm run cluster -- status` prints the first three for the local cluster; `npm run test:cluster` sets them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { runCommand, type CommandResult } from '../../harness/image/podman.ts';

export interface Cluster {
  kubeconfig: string;
  registry: string;
  hostAddress: string;
  kubectl: string;
}

/** The cluster given in the environment, or the reason there is none. */
export function clusterFromEnv(env: NodeJS.ProcessEnv = process.env): Cluster | string {
  const missing = ['KUBECONFIG', 'REGISTRY', 'HOST_ADDRESS'].filter((name) => !env[name]);
  if (missing.length > 0)
    return `no cluster given (${missing.join(', ')} unset; \`npm run cluster -- up\` then \`npm run test:cluster\`)`;
  return {
    kubeconfig: env.KUBECONFIG!,
    registry: env.REGISTRY!,
    hostAddress: env.HOST_ADDRESS!,
    kubectl: env.KUBECTL || 'kubectl',
  };
}

/** A kubectl (or helm) command that exited non-zero. */
export class KubeCommandError extends Error {
  override name = 'KubeCommandError';
  readonly command: string;
  readonly result: CommandResult;

  constructor(command: string, result: CommandResult) {
    super(`${command} failed (${result.code}): ${(result.stderr || result.stdout).trim().slice(-3000)}`);
    this.command = command;
    this.result = result;
  }
}

/** kubectl against the cluster; never rejects on a non-zero exit (the caller checks `code`). */
export function kubectl(cluster: Cluster, args: readonly string[], timeoutMs = 600_000): Promise<CommandResult> {
  return runCommand(cluster.kubectl, args, { ...process.env, KUBECONFIG: cluster.kubeconfig }, timeoutMs);
}

/** kubectl that must succeed; resolves to its standard output. */
export async function kubectlOk(cluster: Cluster, args: readonly string[], timeoutMs?: number): Promise<string> {
  const result = await kubectl(cluster, args, timeoutMs);
  if (result.code !== 0) throw new KubeCommandError(`kubectl ${args.join(' ')}`, result);
  return result.stdout;
}

/** A Kubernetes object, read loosely: tests read what they need. */
export interface KubeObject {
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    deletionTimestamp?: string;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown> & {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number; state?: Record<string, unknown> }[];
  };
}

/** `kubectl get … -o json` of a list. */
export async function list(cluster: Cluster, args: readonly string[]): Promise<KubeObject[]> {
  return (JSON.parse(await kubectlOk(cluster, ['get', ...args, '-o', 'json'])) as { items: KubeObject[] }).items;
}

/** One event of a watch, numbered in the order the API server sent it. */
export interface WatchEvent {
  seq: number;
  at: number;
  type: string;
  object: KubeObject;
}

/**
 * `kubectl get <resource> --watch --output-watch-events -o json`: one stream from the API server, so events keep
 * the order in which the objects changed in etcd (what hook-order checks need).
 */
export class Watch {
  readonly events: WatchEvent[] = [];
  private readonly child: ChildProcess;
  private buffer = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = 0;
  private stderr = '';

  constructor(cluster: Cluster, args: readonly string[]) {
    this.child = spawn(cluster.kubectl, ['get', ...args, '--watch', '--output-watch-events', '-o', 'json'], {
      env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.feed(chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
  }

  /** Splits the stream into its top-level JSON documents (kubectl prints them one after another, indented). */
  private feed(chunk: string): void {
    for (const ch of chunk) {
      this.buffer += ch;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === '\\') this.escaped = true;
        else if (ch === '"') this.inString = false;
        continue;
      }
      if (ch === '"') this.inString = true;
      else if (ch === '{') {
        if (this.depth === 0) this.start = this.buffer.length - 1;
        this.depth += 1;
      } else if (ch === '}') {
        this.depth -= 1;
        if (this.depth === 0) {
          const event = JSON.parse(this.buffer.slice(this.start)) as { type: string; object: KubeObject };
          this.events.push({ seq: this.events.length, at: Date.now(), type: event.type, object: event.object });
          this.buffer = '';
        }
      }
    }
  }

  /** What kubectl wrote to stderr so far (for failure messages). */
  get errors(): string {
    return this.stderr;
  }

  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGTERM');
    });
  }
}

/**
 * `kubectl logs -f` of one pod's container from now until the pod ends: what a container logged while the kubelet
 * stopped it, after the pod itself is gone.
 */
export class LogFollower {
  private text = '';
  private readonly child: ChildProcess;
  readonly ended: Promise<void>;

  constructor(cluster: Cluster, namespace: string, pod: string, container?: string) {
    this.child = spawn(cluster.kubectl, ['logs', '-f', '-n', namespace, pod, ...(container ? ['-c', container] : [])], {
      env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.text += chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.text += chunk));
    this.ended = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  /** The JSON log lines so far (other lines are skipped). */
  lines(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.ended;
  }
}
