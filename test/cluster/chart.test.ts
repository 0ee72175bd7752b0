/**
 * The chart on a real Kubernetes cluster, reached through KUBECONFIG alone (see kube.ts for the environment): the
 * project's image (built as the image test builds it, pushed to REGISTRY) is installed with Helm 4 and Helm 3 into
 * namespaces that enforce Pod Security `restricted`, against the tests' PostgreSQL and SQS emulator offered to the
 * pods on HOST_ADDRESS through TCP proxies (fixture.ts). Checked: strict server-side field validation of every
 * rendered object, the migrations hook completing before any web or worker pod exists, readiness through the
 * kubelet's probes, `helm test` (readiness and a signed form end to end), forms posted through the web Service
 * stored exactly once, `helm upgrade` under a steady load with no failed request and the preStop + SIGTERM drain in
 * the logs, worker pods deleted mid-backlog (graceful and forced) losing and doubling nothing, and rollback and
 * uninstall leaving nothing behind.
 *
 * Without a cluster it skips with one line, except under CI, where it fails.
 */
import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { observerClient, queueCounts, queueUrl } from '../../harness/sqs.ts';
import { eventually } from '../support/stack.ts';
import { CHART } from '../chart/helm.ts';
import { ClusterFixture, component, helmOk, restrictedNamespace, seconds, submit } from './fixture.ts';
import { kubectl, kubectlOk, list, LogFollower, Watch, type Cluster } from './kube.ts';

const HELM_TIMEOUT = '10m';

describe('cluster: the chart on a real Kubernetes', function () {
  this.timeout(1_800_000);
  let fx: ClusterFixture;
  let cluster: Cluster;
  let tags: string[];

  before(async function () {
    const prepared = await ClusterFixture.prepare(this);
    if (!prepared) return;
    fx = prepared;
    cluster = fx.cluster;
    // One image under two tags: the upgrade changes the tag, so every pod is replaced.
    tags = await fx.pushImage(['cluster-1', 'cluster-2']);
  });

  after(async function () {
    await fx?.close();
  });

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
      let namespace: string;
      let values: string;
      let base: string;
      const accepted: string[] = [];

      before(async function () {
        if (!cluster) return this.skip();
        namespace = `form-data-h${major}-${fx.suffix}`;
        await restrictedNamespace(cluster, namespace);
        values = await fx.valuesFile(release, tags[0]!);
      });

      after(async function () {
        if (!namespace) return;
        await helmOk(
          cluster,
          ['uninstall', release, '-n', namespace, '--wait', '--timeout', HELM_TIMEOUT],
          major,
        ).catch(() => undefined);
        await kubectl(cluster, ['delete', 'namespace', namespace, '--wait=false']);
      });

      it('every rendered object passes strict server-side validation and Pod Security restricted without a warning', async function () {
        const rendered = await helmOk(
          cluster,
          ['template', release, CHART, '-n', namespace, '-f', values, '--kube-version', fx.figures.server!],
          major,
        );
        const file = path.join(fx.workdir, `${release}-rendered.yaml`);
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
            cluster,
            ['install', release, CHART, '-n', namespace, '-f', values, '--wait', '--timeout', HELM_TIMEOUT],
            major,
          );
        } finally {
          await watch.stop();
        }
        fx.figures[`helm${major}Install`] = `${seconds(started)} s`;
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
        fx.figures[`helm${major}HookOrder`] =
          `migrations pod Succeeded at +${(migrationsDone!.at - started) / 1000} s, then ${firstApp!.object.metadata.name} ${firstApp!.type} at +${(firstApp!.at - started) / 1000} s`;

        for (const which of ['web', 'worker']) {
          const pods = await fx.podsOf(namespace, release, which);
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
        base = await fx.webBase(namespace, release);
      });

      it('helm test passes: readiness, and a signed form through the web Service stored once', async function () {
        const tested = await helmOk(cluster, ['test', release, '-n', namespace, '--timeout', HELM_TIMEOUT], major);
        for (const test of ['readiness', 'end-to-end'])
          expect(tested.stdout).to.match(new RegExp(`${release}-form-data-test-${test}[\\s\\S]*?Phase:\\s+Succeeded`));
      });

      it('stores forms posted through the web Service exactly once', async function () {
        const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => submit(base, `service-${major}-${i}`)));
        accepted.push(...ids);
        await fx.expectStoredOnce(ids, 'forms posted through the Service');
      });

      if (major === 3) return;

      it('upgrades to a new image tag under a steady 20 forms/s: no failed request, the preStop and SIGTERM drain in the logs', async function () {
        const oldWeb = await fx.podsOf(namespace, release, 'web');
        const followers = oldWeb.map((p) => new LogFollower(cluster, namespace, p.metadata.name));
        const watch = new Watch(cluster, ['pods', '-n', namespace]);
        const upgradeValues = await fx.valuesFile(release, tags[1]!);
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
            cluster,
            ['upgrade', release, CHART, '-n', namespace, '-f', upgradeValues, '--wait', '--timeout', HELM_TIMEOUT],
            major,
          );
          // The old pods' ends are part of the rollout: keep the load on until each has stopped.
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            Promise.all(followers.map((f) => f.ended)),
            new Promise((r) => (timer = setTimeout(r, 120_000))),
          ]).finally(() => clearTimeout(timer));
        } finally {
          running = false;
          await load;
          await watch.stop();
        }
        fx.figures.upgrade = `${seconds(started)} s, ${ids.length} accepted, ${failures.length} failed`;
        expect(failures, 'failed requests during the rollout').to.deep.equal([]);
        accepted.push(...ids);
        await fx.expectStoredOnce(ids, 'forms posted during the upgrade');

        const web = await fx.podsOf(namespace, release, 'web');
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
          fx.figures[`preStopToSigterm-${i}`] = `${delayMs} ms`;
          expect(delayMs, 'ms from the delete to the SIGTERM').to.be.at.least(preStop! * 1000 - 500);
        }
      });

      it('loses and doubles nothing when a worker pod is deleted mid-batch, gracefully and forced', async function () {
        const deployment = `${release}-form-data-worker`;
        const selector = `app.kubernetes.io/instance=${release},app.kubernetes.io/component=worker`;
        const sqs = observerClient(fx.emulator.endpoint);
        const queue = await queueUrl(sqs, fx.queue(release));
        try {
          for (const forced of [false, true]) {
            // A backlog first (no worker), then the table locked, so that the worker's first batch is received
            // and held in its INSERT when the pod is deleted: mid-batch by construction, not by timing.
            await kubectlOk(cluster, ['scale', 'deployment', '-n', namespace, deployment, '--replicas=0']);
            await eventually(
              async () =>
                (await list(cluster, ['pods', '-n', namespace, '-l', selector])).length === 0 ? true : undefined,
              180_000,
              'no worker pod',
            );
            const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => submit(base, `delete-${forced}-${i}`)));
            accepted.push(...ids);
            const lock = new pg.Client({ connectionString: fx.database.url });
            await lock.connect();
            try {
              await lock.query('begin');
              await lock.query('lock table form_form in share row exclusive mode');
              await kubectlOk(cluster, ['scale', 'deployment', '-n', namespace, deployment, '--replicas=1']);
              const inFlight = await eventually(
                async () => {
                  const counts = await queueCounts(sqs, queue);
                  return counts.inFlight > 0 ? counts.inFlight : undefined;
                },
                300_000,
                'a batch received by the worker',
              );
              const [worker] = await fx.podsOf(namespace, release, 'worker');
              expect(worker, 'the worker pod').to.exist;
              await kubectlOk(cluster, [
                'delete',
                'pod',
                '-n',
                namespace,
                worker!.metadata.name,
                '--wait=false',
                ...(forced ? ['--grace-period=0', '--force'] : []),
              ]);
              fx.figures[`workerDelete-${forced ? 'forced' : 'graceful'}`] =
                `${inFlight} of ${ids.length} messages in flight, none stored, at the delete`;
              await lock.query('commit');
            } finally {
              await lock.end();
            }
            await fx.expectStoredOnce(ids, `forms queued before a ${forced ? 'forced' : 'graceful'} worker delete`);
          }
        } finally {
          sqs.destroy();
        }
      });

      it('rolls back and uninstalls leaving nothing behind', async function () {
        await helmOk(cluster, ['rollback', release, '1', '-n', namespace, '--wait', '--timeout', HELM_TIMEOUT], major);
        for (const pod of await fx.podsOf(namespace, release, 'web'))
          expect((pod.spec as { containers: { image: string }[] }).containers[0]!.image).to.match(
            new RegExp(`:${tags[0]}$`),
          );
        await fx.expectStoredOnce(accepted, 'every accepted form of this release');
        await helmOk(cluster, ['uninstall', release, '-n', namespace, '--wait', '--timeout', HELM_TIMEOUT], major);
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
