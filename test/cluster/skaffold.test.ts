/**
 * skaffold against a real cluster (KUBECONFIG alone, kube.ts): `skaffold run -p local` builds the three images with
 * the custom podman builder (profile podman), pushes them to REGISTRY and deploys the chart with values-local.yaml's
 * in-cluster PostgreSQL and SQS emulator, both from REGISTRY; a form posted through skaffold's port-forward is stored
 * once. `skaffold dev -p local` rebuilds and redeploys after a source change, and Ctrl-C (SIGINT) uninstalls what it
 * deployed.
 *
 * It runs on a copy of the tracked files (the source change is made there, never in the checkout). Skips with one
 * line where skaffold is not built; where it is, a missing cluster skips with one line outside CI and fails under CI.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { validForm } from '../../harness/forms.ts';
import { jsonBody, post } from '../../harness/http.ts';
import { eventually } from '../support/stack.ts';
import { helmBinary } from '../chart/helm.ts';
import { runCommand } from '../../harness/image/podman.ts';
import { addonBinary, addonCluster, failOrSkip, ROOT, seconds, startCommand, storedCounts } from './addons.ts';
import { kubectl, kubectlOk, list, type Cluster } from './kube.ts';

const POSTGRES = 'form-data-postgresql';

describe('cluster: skaffold run and dev -p local', function () {
  this.timeout(3_600_000);
  let cluster: Cluster;
  let skaffold: string;
  let workdir: string;
  let copy: string;
  let env: NodeJS.ProcessEnv;
  const suffix = randomBytes(4).toString('hex');
  const namespaces = [`form-data-skaffold-run-${suffix}`, `form-data-skaffold-dev-${suffix}`];
  const figures: Record<string, string> = {};

  before(async function () {
    const binary = await addonBinary('skaffold', 'SKAFFOLD_VERSION');
    if (!binary) return failOrSkip(this, 'skaffold is not built (harness/cluster/addons/build skaffold)');
    skaffold = binary;
    // Where skaffold is built (this machine, and CI on it), the test is required under CI.
    const given = await addonCluster();
    if (typeof given === 'string') return failOrSkip(this, given, true);
    cluster = given;
    // skaffold reads only the config versions it knows; a newer skaffold.yaml needs a newer skaffold.
    const apiVersion = /^apiVersion:\s*(\S+)/m.exec(await readFile(path.join(ROOT, 'skaffold.yaml'), 'utf8'))?.[1];
    const known = (await runCommand(skaffold, ['schema', 'list'])).stdout.split('\n').map((l) => l.trim());
    if (!apiVersion || !known.includes(apiVersion))
      return failOrSkip(
        this,
        `${path.basename(path.dirname(skaffold))} does not read ${apiVersion} (newest: ${known.filter(Boolean).at(-1)})`,
        true,
      );
    workdir = await mkdtemp(path.join(tmpdir(), 'form-data-skaffold-test-'));
    // The tracked files (as skaffold sees a checkout), with the checkout's node_modules for the builder's Node.
    copy = path.join(workdir, 'src');
    await mkdir(copy);
    const copied = await runCommand('sh', [
      '-c',
      `cd "${ROOT}" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "${copy}"`,
    ]);
    expect(copied.code, copied.stderr).to.equal(0);
    await symlink(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
    // skaffold calls `helm` (Helm 3, which its Helm deployer supports) and `kubectl` (port-forward) from PATH.
    const bin = path.join(workdir, 'bin');
    await mkdir(bin);
    await symlink(await helmBinary(3), path.join(bin, 'helm'));
    if (path.isAbsolute(cluster.kubectl)) await symlink(cluster.kubectl, path.join(bin, 'kubectl'));
    env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      KUBECONFIG: cluster.kubeconfig,
      SKAFFOLD_UPDATE_CHECK: 'false',
      SKAFFOLD_INTERACTIVE: 'false',
      SKAFFOLD_COLLECT_METRICS: 'false',
    };
    for (const namespace of namespaces) await kubectlOk(cluster, ['create', 'namespace', namespace]);
  });

  after(async function () {
    if (Object.keys(figures).length > 0) console.log(`      figures: ${JSON.stringify(figures)}`);
    if (!cluster) return;
    for (const namespace of namespaces) {
      await runCommand(skaffold, ['delete', '-p', 'local', '-n', namespace], { ...env }, 300_000).catch(
        () => undefined,
      );
      await kubectl(cluster, ['delete', 'namespace', namespace, '--timeout=180s']);
    }
    if (workdir) await rm(workdir, { recursive: true, force: true });
  });

  const common = (namespace: string): string[] => [
    '-p',
    'local',
    '-n',
    namespace,
    '--default-repo',
    cluster.registry,
    '--insecure-registry',
    cluster.registry,
    // Only skaffold.yaml's forward (`--port-forward` alone also forwards every Service port, the metrics ones too).
    '--port-forward=user',
  ];

  /** What skaffold's cache check said of each artifact since `after` (e.g. `form-data: Not found. Building`). */
  function cacheChecks(output: string, after = 0): string {
    // eslint-disable-next-line no-control-regex -- skaffold colours its output
    const plain = output.slice(after).replace(/\x1b\[[0-9;]*m/g, '');
    return [...plain.matchAll(/^ - (\S+): (Not found\. Building|Found[^\n]*)$/gm)]
      .map((m) => `${m[1]}: ${m[2]}`)
      .join('; ');
  }

  /** The local address skaffold forwards the web Service to, once it says so. */
  function forwarded(output: () => string, after = 0): Promise<string> {
    return eventually(
      async () => {
        const all = [
          ...output()
            .slice(after)
            .matchAll(/Port forwarding service\/form-data-web .*remote port 80 -> (http:\/\/[^\s]+)/g),
        ];
        return all.at(-1)?.[1];
      },
      1_800_000,
      "skaffold's port-forward of the web Service",
    );
  }

  async function postAndStored(base: string, namespace: string, marker: string): Promise<void> {
    const reply = await post(base, '/form/', jsonBody(validForm({ company_name: marker })));
    expect(reply.status, reply.text.slice(0, 300)).to.equal(202);
    const id = (reply.body as { id: string }).id;
    await eventually(
      async () => ((await storedCounts(cluster, namespace, POSTGRES, [id])).get(id) === 1 ? true : undefined),
      300_000,
      `form ${id} stored in the in-cluster PostgreSQL`,
    );
  }

  async function webImage(namespace: string): Promise<string> {
    return (
      await kubectlOk(cluster, [
        'get',
        'deployment',
        '-n',
        namespace,
        'form-data-web',
        '-o',
        'jsonpath={.spec.template.spec.containers[0].image}',
      ])
    ).trim();
  }

  it('skaffold run -p local: builds with podman, pushes, deploys with the in-cluster PostgreSQL and emulator; a form through the port-forward is stored', async function () {
    const namespace = namespaces[0]!;
    const started = Date.now();
    // Without skaffold's artifact cache, so each run builds and pushes all three images with the custom builder
    // (podman's own layer cache still applies).
    const run = startCommand(skaffold, ['run', ...common(namespace), '--cache-artifacts=false'], env, copy);
    try {
      const base = await Promise.race([
        forwarded(run.output),
        run.exited.then((code) => {
          throw new Error(`skaffold run exited (${code}):\n${run.output().slice(-4000)}`);
        }),
      ]);
      figures.runBuildDeploy = `${seconds(started)} s`;
      for (const name of ['form-data', 'form-data-postgresql', 'form-data-fauxqs'])
        expect(run.output(), `${name} built by the custom builder`).to.include(`Build [${name}] succeeded`);
      const images = (await list(cluster, ['deployments', '-n', namespace])).map(
        (d) =>
          (d.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0]!.image,
      );
      for (const name of ['form-data', 'form-data-postgresql', 'form-data-fauxqs'])
        expect(
          images.some((i) => i.startsWith(`${cluster.registry}/${name}:`)),
          `${name} from ${cluster.registry}`,
        ).to.equal(true);
      await postAndStored(base, namespace, `skaffold-run-${suffix}`);
    } finally {
      run.signal('SIGINT');
      await run.exited;
    }
  });

  it('skaffold dev -p local: a source change is rebuilt and redeployed; Ctrl-C uninstalls it', async function () {
    const namespace = namespaces[1]!;
    const started = Date.now();
    const dev = startCommand(skaffold, ['dev', ...common(namespace)], env, copy);
    let exited = false;
    try {
      const base = await Promise.race([
        forwarded(dev.output),
        dev.exited.then((code) => {
          exited = true;
          throw new Error(`skaffold dev exited (${code}):\n${dev.output().slice(-4000)}`);
        }),
      ]);
      figures.devBuildDeploy = `${seconds(started)} s (${cacheChecks(dev.output())})`;
      await postAndStored(base, namespace, `skaffold-dev-1-${suffix}`);
      const before = await webImage(namespace);
      // skaffold snapshots the files it watches after the deploy; a change made before then would go unnoticed.
      await eventually(
        async () => (/Watching for changes/.test(dev.output()) ? true : undefined),
        300_000,
        'skaffold dev: watching for changes',
      );
      const mark = dev.output().length;
      const changed = Date.now();
      await appendFile(path.join(copy, 'services/web/main.ts'), `\n// skaffold dev test ${suffix}\n`);
      const after = await eventually(
        async () => {
          const image = await webImage(namespace);
          return image !== before ? image : undefined;
        },
        1_800_000,
        'the web Deployment on a rebuilt image',
      );
      expect(after.split('@')[0]).to.not.equal(before.split('@')[0]);
      await eventually(
        async () => (/Deployments stabilized/.test(dev.output().slice(mark)) ? true : undefined),
        900_000,
        'skaffold dev: deployments stabilized after the rebuild',
      );
      figures.devRebuildRedeploy = `${seconds(changed)} s (${cacheChecks(dev.output(), mark)})`;
      await postAndStored(await forwarded(dev.output, mark), namespace, `skaffold-dev-2-${suffix}`);

      const stopping = Date.now();
      dev.signal('SIGINT');
      const code = await dev.exited;
      exited = true;
      figures.devCleanup = `${seconds(stopping)} s (exit ${code})`;
      const left = (await list(cluster, ['deployments,services,jobs,secrets,configmaps', '-n', namespace]))
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .filter((n) => n !== 'ConfigMap/kube-root-ca.crt');
      expect(left, 'left in the namespace after Ctrl-C').to.deep.equal([]);
    } finally {
      if (!exited) {
        dev.signal('SIGINT');
        await dev.exited;
      }
    }
  });
});
