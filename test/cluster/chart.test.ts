/**
 * The chart on a real Kubernetes cluster, reached through KUBECONFIG alone (see kube.ts for the environment): the
 * project's image (built as the image test builds it, pushed to REGISTRY) is installed with Helm 4 and Helm 3 into
 * namespaces that enforce Pod Security `restricted`, against the tests' PostgreSQL and SQS emulator offered to the
 * pods on HOST_ADDRESS through TCP proxies. Checked: strict server-side field validation of every rendered object,
 * the migrations hook completing before any web or worker pod exists, readiness through the kubelet's probes,
 * `helm test`, forms posted through the web Service stored exactly once, `helm upgrade` under a steady load with
 * no failed request and the preStop + SIGTERM drain in the logs, worker pods deleted mid-batch (graceful and
 * forced) losing and doubling nothing, and rollback and uninstall leaving nothing behind.
 *
 * Without a cluster it skips with one line, except under CI, where it fails.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../../harness/postgres.ts';
import { startEmulator, type Emulator } from '../../harness/sqs.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { validForm, TEST_SECRET } from '../../harness/forms.ts';
import { jsonBody, post } from '../../harness/http.ts';
import { eventually } from '../support/stack.ts';
import { CHART, ROOT, helm, type HelmMajor } from '../chart/helm.ts';
import { ensureBaseImage } from '../image/base.ts';
import { missingTools, podman, podmanEnv, runCommand } from '../image/podman.ts';
import {
  clusterFromEnv,
  kubectl,
  kubectlOk,
  list,
  KubeCommandError,
  LogFollower,
  Watch,
  type Cluster,
  type KubeObject,
} from './kube.ts';

const seconds = (since: number): number => Math.round((Date.now() - since) / 100) / 10;
const HELM_TIMEOUT = '10m';

function failOrSkip(ctx: Mocha.Context, reason: string): void {
  if (process.env.CI) throw new Error(`cluster test cannot run under CI: ${reason}`);
  console.log(`      (cluster test skipped: ${reason})`);
  ctx.skip();
}

/** helm that must succeed; resolves to its output. */
async function helmOk(
  args: readonly string[],
  major: HelmMajor,
  cluster: Cluster,
): Promise<{ stdout: string; stderr: string }> {
  const previous = process.env.KUBECONFIG;
  process.env.KUBECONFIG = cluster.kubeconfig;
  try {
    const result = await helm(args, major);
    if (result.code !== 0) throw new KubeCommandError(`helm ${major} ${args.join(' ')}`, result);
    return result;
  } finally {
    if (previous === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = previous;
  }
}

/** A namespace that enforces (and warns and audits) Pod Security `restricted`. */
async function restrictedNamespace(cluster: Cluster, name: string): Promise<void> {
  await kubectlOk(cluster, ['create', 'namespace', name]);
  await kubectlOk(cluster, [
    'label',
    'namespace',
    name,
    'pod-security.kubernetes.io/enforce=restricted',
    'pod-security.kubernetes.io/warn=restricted',
    'pod-security.kubernetes.io/audit=restricted',
  ]);
}

const component = (o: KubeObject): string | undefined => o.metadata.labels?.['app.kubernetes.io/component'];

describe('cluster: the chart on a real Kubernetes', function () {
  this.timeout(1_800_000);
  let cluster: Cluster;
  let emulator: Emulator;
  let database: TestDatabase;
  let dbProxy: TcpProxy;
  let sqsProxy: TcpProxy;
  let db: pg.Client;
  let workdir: string;
  let localImage: string;
  const suffix = randomBytes(4).toString('hex');
  const tags = [`cluster-${suffix}-1`, `cluster-${suffix}-2`] as const;
  const figures: Record<string, string> = {};

  before(async function () {
    const given = clusterFromEnv();
    if (typeof given === 'string') return failOrSkip(this, given);
    cluster = given;
    const missing = await missingTools();
    if (missing) return failOrSkip(this, `the image cannot be built: ${missing}`);
    const reachable = await kubectl(cluster, ['get', '--raw', '/readyz'], 60_000);
    if (reachable.code !== 0) return failOrSkip(this, `the cluster does not answer: ${reachable.stderr.trim()}`);
    figures.server = JSON.parse(await kubectlOk(cluster, ['version', '-o', 'json'])).serverVersion.gitVersion;

    const base = await ensureBaseImage();
    localImage = `localhost/form-data:${tags[0]}`;
    const buildStarted = Date.now();
    const build = await runCommand(
      'podman',
      [
        'build',
        '--isolation=chroot',
        '--network=host',
        '--build-arg',
        `NODE_IMAGE=${base.tag}`,
        '-t',
        localImage,
        '-f',
        path.join(ROOT, 'Dockerfile'),
        ROOT,
      ],
      await podmanEnv(),
    );
    if (build.code !== 0)
      throw new Error(`podman build failed (${build.code}):\n${(build.stdout + build.stderr).slice(-4000)}`);
    figures.imageBuild = `${seconds(buildStarted)} s`;
    const pushStarted = Date.now();
    // One image under two tags: the upgrade changes the tag, so every pod is replaced.
    for (const tag of tags)
      await podman(['push', '--tls-verify=false', localImage, `${cluster.registry}/form-data:${tag}`]);
    figures.imagePush = `${seconds(pushStarted)} s`;

    [emulator, database] = await Promise.all([startEmulator(), createTestDatabase()]);
    const dbUrl = new URL(database.url);
    const sqsUrl = new URL(emulator.endpoint);
    [dbProxy, sqsProxy] = await Promise.all([
      startTcpProxy(dbUrl.hostname, Number(dbUrl.port), cluster.hostAddress),
      startTcpProxy(sqsUrl.hostname, Number(sqsUrl.port), cluster.hostAddress),
    ]);
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    workdir = await mkdtemp(path.join(tmpdir(), 'form-data-cluster-test-'));
  });

  after(async function () {
    if (Object.keys(figures).length > 0) console.log(`      figures: ${JSON.stringify(figures)}`);
    if (localImage) await podman(['untag', localImage]).catch(() => undefined);
    await db?.end();
    await Promise.all([dbProxy?.close(), sqsProxy?.close()]);
    await Promise.all([emulator?.stop(), database?.drop()]);
    if (workdir) await rm(workdir, { recursive: true, force: true });
  });

  /** A values file for one release: the pushed image, this test's database and queues through the proxies. */
  async function valuesFile(release: string, tag: string): Promise<string> {
    const proxied = new URL(database.url);
    proxied.hostname = cluster.hostAddress;
    proxied.port = String(dbProxy.port);
    const queue = `cluster-${release}-${suffix}`;
    const file = path.join(workdir, `${release}.yaml`);
    await writeFile(
      file,
      stringify({
        image: { repository: `${cluster.registry}/form-data`, tag, pullPolicy: 'IfNotPresent' },
        secrets: {
          DATABASE_URL: proxied.toString(),
          UI_SECRET: TEST_SECRET,
          AWS_ACCESS_KEY_ID: 'test',
          AWS_SECRET_ACCESS_KEY: 'test',
        },
        config: {
          SQS_ENDPOINT_URL: `http://${cluster.hostAddress}:${sqsProxy.port}`,
          SQS_CREATE_QUEUES: true,
          SQS_FORM_DATA_QUEUE_NAME: queue,
          SQS_INVALID_MESAGES_QUEUE_NAME: `${queue}-invalid`,
          SQS_WAIT_TIME: 2,
          // A forced worker delete leaves its messages in flight: they come back this soon.
          SQS_VISIBILITY_TIMEOUT: 10,
          // The worker logs each batch ('batch handled'), so a pod can be deleted mid-batch.
          LOG_LEVEL: 'debug',
        },
        migrations: { waitForDatabaseSeconds: 60 },
        // helm test posts a signed form through the web Service and waits for its row.
        tests: { endToEnd: { enabled: true } },
      }),
    );
    return file;
  }

  /** The web Service's address, reached from this machine through kube-proxy. */
  async function webBase(namespace: string, release: string): Promise<string> {
    const service = JSON.parse(
      await kubectlOk(cluster, ['get', 'service', '-n', namespace, `${release}-form-data-web`, '-o', 'json']),
    ) as { spec: { clusterIP: string; ports: { port: number }[] } };
    return `http://${service.spec.clusterIP}:${service.spec.ports[0]!.port}`;
  }

  /** Rows stored for these submission ids, each with how often it is stored. */
  async function storedCounts(ids: readonly string[]): Promise<Map<string, number>> {
    const { rows } = await db.query<{ id: string; n: string }>(
      'select sqs_message_id as id, count(*) as n from form_form where sqs_message_id = any($1) group by 1',
      [ids],
    );
    return new Map(rows.map((r) => [r.id, Number(r.n)]));
  }

  async function expectStoredOnce(ids: readonly string[], what: string): Promise<void> {
    const counts = await eventually(
      async () => {
        const c = await storedCounts(ids);
        return c.size === ids.length ? c : undefined;
      },
      300_000,
      `${ids.length} ${what} in PostgreSQL`,
    );
    const doubled = [...counts].filter(([, n]) => n !== 1);
    expect(doubled, `${what} stored more than once`).to.deep.equal([]);
  }

  /** Posts one signed form through the web Service; resolves to its submission id, or throws. */
  async function submit(base: string, marker: string): Promise<string> {
    const reply = await post(base, '/form/', jsonBody(validForm({ company_name: marker })));
    if (reply.status !== 202) throw new Error(`${reply.status}: ${reply.text.slice(0, 300)}`);
    return (reply.body as { id: string }).id;
  }

  async function podsOf(namespace: string, release: string, which: string): Promise<KubeObject[]> {
    return (
      await list(cluster, [
        'pods',
        '-n',
        namespace,
        '-l',
        `app.kubernetes.io/instance=${release},app.kubernetes.io/component=${which}`,
      ])
    ).filter((p) => !p.metadata.deletionTimestamp);
  }

  /** What is left of a release in its namespace, by kind/name (the namespace's own defaults excepted). */
  async function leftovers(namespace: string): Promise<string[]> {
    const kinds =
      'deployments,replicasets,pods,services,endpointslices,jobs,secrets,configmaps,serviceaccounts,persistentvolumeclaims,poddisruptionbudgets,networkpolicies,roles,rolebindings,horizontalpodautoscalers';
    const items = await list(cluster, [kinds, '-n', namespace]);
    return items
      .map((o) => `${o.kind}/${o.metadata.name}`)
      .filter((name) => name !== 'ConfigMap/kube-root-ca.crt' && name !== 'ServiceAccount/default');
  }

  for (const major of [4, 3] as const) {
    describe(`Helm ${major}`, function () {
      const release = `fd${major}`;
      const namespace = `form-data-h${major}-${suffix}`;
      let values: string;
      let base: string;
      const accepted: string[] = [];

      before(async function () {
        if (!cluster) return this.skip();
        await restrictedNamespace(cluster, namespace);
        values = await valuesFile(release, tags[0]);
      });

      after(async function () {
        if (!cluster) return;
        await helmOk(
          ['uninstall', release, '-n', namespace, '--wait', '--timeout', HELM_TIMEOUT],
          major,
          cluster,
        ).catch(() => undefined);
        await kubectl(cluster, ['delete', 'namespace', namespace, '--wait=false']);
      });

      it('every rendered object passes strict server-side validation and Pod Security restricted without a warning', async function () {
        const rendered = await helmOk(
          ['template', release, CHART, '-n', namespace, '-f', values, '--kube-version', figures.server!],
          major,
          cluster,
        );
        const file = path.join(workdir, `${release}-rendered.yaml`);
        await writeFile(file, rendered.stdout);
        const dryRun = await kubectl(cluster, [
          'create',
          '--dry-run=server',
          '--validate=strict',
          '-n',
          namespace,
          '-f',
          file,
        ]);
        expect(dryRun.code, dryRun.stderr).to.equal(0);
        expect(dryRun.stderr, 'warnings of the API server').to.not.match(/warning/i);
      });

      it('installs: the migrations hook completes before any web or worker pod exists; both become Ready through their probes', async function () {
        const watch = new Watch(cluster, ['pods', '-n', namespace]);
        const started = Date.now();
        let installed: { stdout: string; stderr: string };
        try {
          installed = await helmOk(
            ['install', release, CHART, '-n', namespace, '-f', values, '--wait', '--timeout', HELM_TIMEOUT],
            major,
            cluster,
          );
        } finally {
          await watch.stop();
        }
        figures[`helm${major}Install`] = `${seconds(started)} s`;
        expect(installed.stderr, 'warnings during install').to.not.match(/warning/i);

        const migrationsDone = watch.events.find(
          (e) => component(e.object) === 'migrations' && e.object.status?.phase === 'Succeeded',
        );
        expect(migrationsDone, `the migrations pod succeeded (events: ${watch.events.length}; ${watch.errors})`).to
          .exist;
        const firstApp = watch.events.find((e) => ['web', 'worker'].includes(component(e.object) ?? ''));
        expect(firstApp, 'a web or worker pod').to.exist;
        expect(
          firstApp!.seq,
          'the first web/worker pod event comes after the migrations pod succeeded',
        ).to.be.greaterThan(migrationsDone!.seq);
        figures[`helm${major}HookOrder`] =
          `migrations pod Succeeded at +${(migrationsDone!.at - started) / 1000} s, then ${firstApp!.object.metadata.name} ${firstApp!.type} at +${(firstApp!.at - started) / 1000} s`;

        for (const which of ['web', 'worker']) {
          const pods = await podsOf(namespace, release, which);
          expect(pods.length, `${which} pods`).to.be.greaterThan(0);
          for (const pod of pods) {
            expect(
              pod.status?.conditions?.find((c) => c.type === 'Ready')?.status,
              `${pod.metadata.name} Ready`,
            ).to.equal('True');
            const spec = pod.spec as { containers: { readinessProbe?: unknown; livenessProbe?: unknown }[] };
            expect(spec.containers[0]!.readinessProbe, `${pod.metadata.name} has a readiness probe`).to.exist;
          }
        }
        base = await webBase(namespace, release);
      });

      it('helm test passes: readiness, and a signed form through the web Service stored once', async function () {
        const tested = await helmOk(['test', release, '-n', namespace, '--timeout', HELM_TIMEOUT], major, cluster);
        for (const test of ['readiness', 'end-to-end'])
          expect(tested.stdout).to.match(new RegExp(`${release}-form-data-test-${test}[\\s\\S]*?Phase:\\s+Succeeded`));
      });

      it('stores forms posted through the web Service exactly once', async function () {
        const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => submit(base, `service-${major}-${i}`)));
        accepted.push(...ids);
        await expectStoredOnce(ids, 'forms posted through the Service');
      });

      if (major === 3) return;

      it('upgrades to a new image tag under a steady 20 forms/s: no failed request, the preStop and SIGTERM drain in the logs', async function () {
        const oldWeb = await podsOf(namespace, release, 'web');
        const followers = oldWeb.map((p) => new LogFollower(cluster, namespace, p.metadata.name));
        const watch = new Watch(cluster, ['pods', '-n', namespace]);
        const upgradeValues = await valuesFile(release, tags[1]);
        const failures: string[] = [];
        const ids: string[] = [];
        let running = true;
        const inFlight = new Set<Promise<void>>();
        const load = (async () => {
          for (let i = 0; running; i += 1) {
            const request = submit(base, `upgrade-${i}`).then(
              (id) => void ids.push(id),
              (error: unknown) => void failures.push(String(error)),
            );
            inFlight.add(request);
            void request.finally(() => inFlight.delete(request));
            await new Promise((r) => setTimeout(r, 50));
          }
          await Promise.all(inFlight);
        })();
        const started = Date.now();
        try {
          await helmOk(
            ['upgrade', release, CHART, '-n', namespace, '-f', upgradeValues, '--wait', '--timeout', HELM_TIMEOUT],
            major,
            cluster,
          );
          // The old pods' ends are part of the rollout: keep the load on until each has stopped.
          await Promise.race([Promise.all(followers.map((f) => f.ended)), new Promise((r) => setTimeout(r, 120_000))]);
        } finally {
          running = false;
          await load;
          await watch.stop();
        }
        figures.upgrade = `${seconds(started)} s, ${ids.length} accepted, ${failures.length} failed`;
        expect(failures, 'failed requests during the rollout').to.deep.equal([]);
        accepted.push(...ids);
        await expectStoredOnce(ids, 'forms posted during the upgrade');

        const web = await podsOf(namespace, release, 'web');
        for (const pod of web)
          expect((pod.spec as { containers: { image: string }[] }).containers[0]!.image).to.match(
            new RegExp(`:${tags[1]}$`),
          );
        for (const [i, follower] of followers.entries()) {
          await follower.stop();
          const pod = oldWeb[i]!;
          const lines = follower.lines();
          const shutdown = lines.find((l) => String(l.msg).startsWith('shutting down'));
          expect(shutdown, `${pod.metadata.name} logged its SIGTERM`).to.exist;
          expect(
            lines.some((l) => l.msg === 'web stopped'),
            `${pod.metadata.name} stopped`,
          ).to.equal(true);
          // The kubelet ran the preStop sleep before the SIGTERM: the shutdown came at least that long after the
          // API server marked the pod for deletion (seen by the watch, on this machine's clock).
          const preStop = (pod.spec as { containers: { lifecycle?: { preStop?: { sleep?: { seconds: number } } } }[] })
            .containers[0]!.lifecycle?.preStop?.sleep?.seconds;
          expect(preStop, `${pod.metadata.name}'s preStop sleep`).to.be.a('number');
          const marked = watch.events.find(
            (e) => e.object.metadata.name === pod.metadata.name && e.object.metadata.deletionTimestamp,
          );
          expect(marked, `${pod.metadata.name} marked for deletion`).to.exist;
          const delayMs = Date.parse(String(shutdown!.time)) - marked!.at;
          figures[`preStopToSigterm-${i}`] = `${delayMs} ms`;
          expect(delayMs, 'ms from the delete to the SIGTERM').to.be.at.least(preStop! * 1000 - 500);
        }
      });

      it('loses and doubles nothing when a worker pod is deleted mid-batch, gracefully and forced', async function () {
        const deployment = `${release}-form-data-worker`;
        const selector = `app.kubernetes.io/instance=${release},app.kubernetes.io/component=worker`;
        for (const forced of [false, true]) {
          // A backlog first (no worker), so that the worker is deleted while it works through it.
          await kubectlOk(cluster, ['scale', 'deployment', '-n', namespace, deployment, '--replicas=0']);
          await eventually(
            async () =>
              (await list(cluster, ['pods', '-n', namespace, '-l', selector])).length === 0 ? true : undefined,
            180_000,
            'no worker pod',
          );
          const ids: string[] = [];
          for (let chunk = 0; chunk < 10; chunk += 1)
            ids.push(
              ...(await Promise.all(
                Array.from({ length: 100 }, (_, i) => submit(base, `delete-${forced}-${chunk * 100 + i}`)),
              )),
            );
          accepted.push(...ids);
          await kubectlOk(cluster, ['scale', 'deployment', '-n', namespace, deployment, '--replicas=1']);
          const worker = await eventually(
            async () => {
              const [pod] = await podsOf(namespace, release, 'worker');
              return pod && (await storedCounts(ids)).size > 0 ? pod : undefined;
            },
            300_000,
            'the first stored form of the backlog',
          );
          await kubectlOk(cluster, [
            'delete',
            'pod',
            '-n',
            namespace,
            worker.metadata.name,
            '--wait=false',
            ...(forced ? ['--grace-period=0', '--force'] : []),
          ]);
          const storedAtDelete = (await storedCounts(ids)).size;
          figures[`workerDelete-${forced ? 'forced' : 'graceful'}`] =
            `${storedAtDelete} of ${ids.length} stored at the delete`;
          expect(storedAtDelete, 'forms still to store when the worker was deleted').to.be.below(ids.length);
          await expectStoredOnce(ids, `forms queued before a ${forced ? 'forced' : 'graceful'} worker delete`);
        }
      });

      it('rolls back and uninstalls leaving nothing behind', async function () {
        await helmOk(['rollback', release, '1', '-n', namespace, '--wait', '--timeout', HELM_TIMEOUT], major, cluster);
        for (const pod of await podsOf(namespace, release, 'web'))
          expect((pod.spec as { containers: { image: string }[] }).containers[0]!.image).to.match(
            new RegExp(`:${tags[0]}$`),
          );
        await expectStoredOnce(accepted, 'every accepted form of this release');
        await helmOk(['uninstall', release, '-n', namespace, '--wait', '--timeout', HELM_TIMEOUT], major, cluster);
        await eventually(
          async () => {
            const left = await leftovers(namespace);
            return left.length === 0 ? true : undefined;
          },
          180_000,
          'nothing left in the namespace',
        ).catch(async (error: unknown) => {
          throw new Error(`${String(error)}; left: ${(await leftovers(namespace)).join(', ')}`);
        });
      });
    });
  }
});
