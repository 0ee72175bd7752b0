/**
 * What the add-on cluster tests (KEDA, HPA through prometheus-adapter, skaffold) share: the cluster from the
 * environment (kube.ts), whether they may skip, the images pushed to REGISTRY, a release of the chart with the
 * in-cluster PostgreSQL image built here, rows read through `kubectl exec psql`, and a replica timeline of a
 * Deployment read from one watch.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { validForm } from '../../harness/forms.ts';
import { jsonBody, post } from '../../harness/http.ts';
import { startEmulator, type Emulator } from '../../harness/sqs.ts';
import { buildClusterImage, type ClusterImage } from '../../harness/cluster/addons/image.ts';
import { CHART, helm, LOCAL_VALUES } from '../chart/helm.ts';
import { missingImageTools, podman, runCommand, type CommandResult } from '../../harness/image/podman.ts';
import { clusterFromEnv, kubectl, kubectlOk, KubeCommandError, Watch, type Cluster } from './kube.ts';

/**
 * The one switch: true makes these tests required under CI (they fail, never skip, without a cluster or an add-on
 * binary), which `.ci/run` provides: it runs `harness/cluster/addons/build` and brings the cluster up. Outside CI
 * they skip with one line.
 */
export const ADDONS_REQUIRED_UNDER_CI = true;

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ADDONS = path.join(ROOT, 'harness/cluster/addons');

/** Skips with one line, or fails under CI when `required` (by default once ADDONS_REQUIRED_UNDER_CI is on). */
export function failOrSkip(ctx: Mocha.Context, reason: string, required = ADDONS_REQUIRED_UNDER_CI): void {
  if (process.env.CI && required) throw new Error(`cluster add-on test cannot run under CI: ${reason}`);
  console.log(`      (cluster add-on test skipped: ${reason})`);
  ctx.skip();
}

/** The cluster given in the environment, answering, with podman able to build the images; or why not. */
export async function addonCluster(): Promise<Cluster | string> {
  const given = clusterFromEnv();
  if (typeof given === 'string') return given;
  const missing = await missingImageTools();
  if (missing) return `the images cannot be built: ${missing}`;
  const reachable = await kubectl(given, ['get', '--raw', '/readyz'], 60_000);
  if (reachable.code !== 0) return `the cluster does not answer: ${reachable.stderr.trim()}`;
  return given;
}

/** Where a cached add-on binary lives, or undefined when it is not built (harness/cluster/addons/build builds it). */
export async function addonBinary(name: string, versionKey: string): Promise<string | undefined> {
  const versions = await runCommand('sh', [
    '-c',
    `. "${path.join(ROOT, 'harness/cluster/versions')}" && echo "$${versionKey}"`,
  ]);
  const version = versions.stdout.trim();
  const cache = path.join(
    process.env.XDG_CACHE_HOME || path.join(process.env.HOME ?? '/root', '.cache'),
    'form-data/go',
  );
  const file = path.join(cache, `${name}-${version}`, name);
  return access(file).then(
    () => file,
    () => undefined,
  );
}

export const seconds = (since: number): number => Math.round((Date.now() - since) / 100) / 10;

/** Builds one of harness/cluster/addons/image.ts's images, pushes it to the cluster's registry and drops the local tag. */
export async function pushImage(cluster: Cluster, image: ClusterImage, tag: string): Promise<string> {
  const reference = `${cluster.registry}/form-data-${image === 'form-data' ? 'app' : image}:${tag}`;
  await buildClusterImage(image, reference, true);
  // The registry holds it now; podman keeps the layers (the next build reuses them), not the tag.
  await podman(['untag', reference]);
  return reference;
}

/** A script of harness/cluster/addons with the cluster's variables; rejects with its output when it fails. */
export async function addonScript(cluster: Cluster, script: string, args: readonly string[]): Promise<string> {
  const result = await runCommand(
    path.join(ADDONS, script),
    args,
    { ...process.env, KUBECONFIG: cluster.kubeconfig, HOST_ADDRESS: cluster.hostAddress, KUBECTL: cluster.kubectl },
    1_800_000,
  );
  if (result.code !== 0) throw new KubeCommandError(`${script} ${args.join(' ')}`, result);
  return result.stdout;
}

/** Helm 4 against the cluster; rejects when it exits non-zero. */
export async function helmOk(cluster: Cluster, args: readonly string[]): Promise<CommandResult> {
  const previous = process.env.KUBECONFIG;
  process.env.KUBECONFIG = cluster.kubeconfig;
  try {
    const result = await helm(args, 4);
    if (result.code !== 0) throw new KubeCommandError(`helm ${args.join(' ')}`, { ...result, stdout: result.stdout });
    return { code: result.code, stdout: result.stdout, stderr: result.stderr };
  } finally {
    if (previous === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = previous;
  }
}

/** What a namespace's pods say (state, recent events, the last log lines of pods not Ready), for failure messages. */
export async function namespaceReport(cluster: Cluster, namespace: string): Promise<string> {
  const parts = [
    (await kubectl(cluster, ['get', 'pods', '-n', namespace, '-o', 'wide'])).stdout,
    (await kubectl(cluster, ['get', 'events', '-n', namespace, '--sort-by=.lastTimestamp'])).stdout
      .split('\n')
      .slice(-25)
      .join('\n'),
  ];
  const pods = JSON.parse(
    (await kubectl(cluster, ['get', 'pods', '-n', namespace, '-o', 'json'])).stdout || '{"items":[]}',
  ) as {
    items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[];
  };
  for (const pod of pods.items) {
    if (pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True') continue;
    const logs = await kubectl(cluster, ['logs', '-n', namespace, pod.metadata.name, '--all-containers', '--tail=30']);
    parts.push(`--- ${pod.metadata.name}\n${logs.stdout}${logs.stderr}`);
  }
  return parts.join('\n');
}

/** helm install --wait of the chart; on failure the error carries what the namespace's pods say. */
export async function installRelease(cluster: Cluster, namespace: string, args: readonly string[]): Promise<void> {
  try {
    await helmOk(cluster, ['install', ...args, '-n', namespace, '--wait', '--timeout', '10m']);
  } catch (error) {
    throw new Error(`${String(error)}\n${await namespaceReport(cluster, namespace)}`, { cause: error });
  }
}

/** kubectl arguments running psql with `args` in a Deployment of the release's in-cluster PostgreSQL (values-local.yaml). */
export function psqlArgs(namespace: string, deployment: string, args: readonly string[]): string[] {
  return [
    'exec',
    '-n',
    namespace,
    `deployment/${deployment}`,
    '--',
    'psql',
    '-U',
    'form_data',
    '-d',
    'form_data',
    ...args,
  ];
}

/** Posts `count` valid forms to the web at `web`, 50 at a time; each must be answered 202; resolves with their ids. */
export async function postForms(web: string, count: number, prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (let first = 0; first < count; first += 50) {
    const replies = await Promise.all(
      Array.from({ length: Math.min(50, count - first) }, (_, i) =>
        post(web, '/form/', jsonBody(validForm({ company_name: `${prefix}-${first + i}` }))),
      ),
    );
    for (const reply of replies) {
      expect(reply.status, reply.text.slice(0, 300)).to.equal(202);
      ids.push((reply.body as { id: string }).id);
    }
  }
  return ids;
}

/** A release of the chart for an add-on test: its namespace, the web Service's URL and the emulator it reads. */
export interface ScalingRelease {
  name: string;
  namespace: string;
  web: string;
  /** The SQS emulator on this machine; undefined once a test stopped it. */
  emulator: Emulator | undefined;
  workdir: string;
  /** The values file written for it (beside values-local.yaml). */
  values: string;
}

/**
 * Pushes the project's and PostgreSQL's images, starts the SQS emulator (offered to pods and add-ons on
 * HOST_ADDRESS), and installs the chart into a new namespace with values-local.yaml's in-cluster PostgreSQL and
 * the queue on the emulator; `values` adds each test's own (worker autoscaling, config, networkPolicy) from the emulator's
 * host-reachable endpoint. `release.namespace` is set before the install, so removeScalingRelease cleans up after a
 * failure half-way.
 */
export async function installScalingRelease(
  cluster: Cluster,
  release: Pick<ScalingRelease, 'name' | 'namespace'> & Partial<ScalingRelease>,
  options: {
    tag: string;
    queue: string;
    figures: Record<string, unknown>;
    values: (sqs: {
      endpoint: string;
      hostEndpoint: string;
    }) => Promise<{ config?: object; worker: object; networkPolicy?: object }>;
  },
): Promise<ScalingRelease> {
  release.workdir = await mkdtemp(path.join(tmpdir(), `${release.namespace}-`));
  const imagesStarted = Date.now();
  const [app, postgres] = await Promise.all([
    pushImage(cluster, 'form-data', options.tag),
    pushImage(cluster, 'postgresql', options.tag),
  ]);
  options.figures.imagesBuildPush = `${seconds(imagesStarted)} s`;
  release.emulator = await startEmulator();
  const hostEndpoint = `http://${cluster.hostAddress}:${new URL(release.emulator.endpoint).port}`;
  const own = await options.values({ endpoint: release.emulator.endpoint, hostEndpoint });
  release.values = path.join(release.workdir, 'values.yaml');
  await writeFile(
    release.values,
    stringify({
      image: { repository: app.slice(0, app.lastIndexOf(':')), tag: options.tag, pullPolicy: 'IfNotPresent' },
      // values-local.yaml's in-cluster PostgreSQL (the image built here); the queue is the emulator on this machine.
      localDependencies: { postgresql: { enabled: true, image: postgres }, sqs: { enabled: false } },
      config: {
        SQS_ENDPOINT_URL: hostEndpoint,
        SQS_FORM_DATA_QUEUE_NAME: options.queue,
        SQS_INVALID_MESAGES_QUEUE_NAME: `${options.queue}-invalid`,
        SQS_WAIT_TIME: 2,
        LOG_FORMAT: 'json',
        ...own.config,
      },
      worker: own.worker,
      ...(own.networkPolicy && { networkPolicy: own.networkPolicy }),
    }),
  );
  await kubectlOk(cluster, ['create', 'namespace', release.namespace]);
  const installStarted = Date.now();
  await installRelease(cluster, release.namespace, [release.name, CHART, '-f', LOCAL_VALUES, '-f', release.values]);
  options.figures.install = `${seconds(installStarted)} s`;
  const service = JSON.parse(
    await kubectlOk(cluster, ['get', 'service', '-n', release.namespace, `${release.name}-web`, '-o', 'json']),
  ) as { spec: { clusterIP: string; ports: { port: number }[] } };
  release.web = `http://${service.spec.clusterIP}:${service.spec.ports[0]!.port}`;
  return release as ScalingRelease;
}

/** Uninstalls what installScalingRelease made (as far as it got), deletes its namespace and stops the emulator. */
export async function removeScalingRelease(
  cluster: Cluster,
  release: Pick<ScalingRelease, 'name' | 'namespace'> & Partial<ScalingRelease>,
): Promise<void> {
  await helmOk(cluster, ['uninstall', release.name, '-n', release.namespace, '--wait', '--timeout', '5m']).catch(
    () => undefined,
  );
  await kubectl(cluster, ['delete', 'namespace', release.namespace, '--ignore-not-found', '--timeout=180s']);
  await release.emulator?.stop();
  release.emulator = undefined;
  if (release.workdir) await rm(release.workdir, { recursive: true, force: true });
}

/** How often each of these submission ids is stored, read in the release's in-cluster PostgreSQL. */
export async function storedCounts(
  cluster: Cluster,
  namespace: string,
  deployment: string,
  ids: readonly string[],
): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const list = ids.map((id) => `'${id.replace(/'/g, "''")}'`).join(',');
  const out = await kubectlOk(
    cluster,
    psqlArgs(namespace, deployment, [
      '-AtF',
      ' ',
      '-c',
      `select sqs_message_id, count(*) from form_form where sqs_message_id in (${list}) group by 1`,
    ]),
  );
  return new Map(
    out
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [id, n] = line.split(' ');
        return [id!, Number(n)] as const;
      }),
  );
}

/** One change of a Deployment's replicas, seconds after the timeline started. */
export interface ReplicaPoint {
  at: number;
  replicas: number;
  ready: number;
}

/** The replicas of one Deployment as the API server reports each change (spec and ready). */
export class ReplicaTimeline {
  private readonly watch: Watch;
  readonly started = Date.now();

  constructor(cluster: Cluster, namespace: string, deployment: string) {
    this.watch = new Watch(cluster, ['deployment', deployment, '-n', namespace]);
  }

  /** The changes so far (consecutive equal points folded). */
  points(): ReplicaPoint[] {
    const out: ReplicaPoint[] = [];
    for (const e of this.watch.events) {
      const replicas = Number((e.object.spec as { replicas?: number } | undefined)?.replicas ?? 0);
      const ready = Number((e.object.status as { readyReplicas?: number } | undefined)?.readyReplicas ?? 0);
      const last = out.at(-1);
      if (last && last.replicas === replicas && last.ready === ready) continue;
      out.push({ at: Math.round((e.at - this.started) / 100) / 10, replicas, ready });
    }
    return out;
  }

  /** The current desired replicas, as last seen. */
  replicas(): number | undefined {
    return this.points().at(-1)?.replicas;
  }

  /** `+t s: spec/ready` per change. */
  describe(): string {
    return this.points()
      .map((p) => `+${p.at}s ${p.replicas}/${p.ready}`)
      .join(', ');
  }

  stop(): Promise<void> {
    return this.watch.stop();
  }
}

/** A long-running command (e.g. `skaffold dev`) whose output the caller reads, stopped with a signal. */
export function startCommand(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd = ROOT,
): { output: () => string; exited: Promise<number | null>; signal: (s: NodeJS.Signals) => void } {
  const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (text += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (text += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { output: () => text, exited, signal: (s) => child.kill(s) };
}
