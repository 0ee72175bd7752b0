/**
 * The Horizontal Pod Autoscaler scaling the worker on queue depth, for real: the chart's `hpa` mode (an External
 * metric) on a cluster reached through KUBECONFIG alone (kube.ts), fed by the worker's own queue-depth gauge
 * (form_data_sqs_messages_visible) through Prometheus and prometheus-adapter, either already serving
 * external.metrics.k8s.io there or started here out of cluster (harness/cluster/addons/prometheus-adapter).
 *
 * A backlog is made for real: the forms table is locked in the release's in-cluster PostgreSQL, so the workers hold
 * what they received and the rest stays visible; the HPA scales the worker up to its maximum. The lock is released,
 * every form is stored once, and the HPA scales the worker back down to its minimum (figure: the replica timeline).
 *
 * Skips with one line without a cluster or the adapter (see addons.ts for when it is required under CI).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { eventually } from '../support/stack.ts';
import {
  addonBinary,
  addonCluster,
  addonScript,
  failOrSkip,
  installScalingRelease,
  postForms,
  psqlArgs,
  removeScalingRelease,
  ReplicaTimeline,
  seconds,
  startCommand,
  storedCounts,
} from './addons.ts';
import { kubectl, kubectlOk, type Cluster, type KubeObject } from './kube.ts';

const RELEASE = 'form-data';
const WORKER = `${RELEASE}-worker`;
const POSTGRES = `${RELEASE}-postgresql`;
const METRIC = 'form_data_sqs_messages_visible';
const MIN = 1;
const MAX = 3;

describe('cluster: the HPA scales the worker on queue depth (prometheus-adapter)', function () {
  this.timeout(1_800_000);
  let cluster: Cluster;
  let startedAdapter = false;
  const suffix = randomBytes(4).toString('hex');
  const queue = `hpa-${suffix}`;
  const release: Parameters<typeof removeScalingRelease>[1] = { name: RELEASE, namespace: `form-data-hpa-${suffix}` };
  const { namespace } = release;
  let web: string;
  const figures: Record<string, unknown> = {};

  before(async function () {
    const given = await addonCluster();
    if (typeof given === 'string') return failOrSkip(this, given);
    cluster = given;
    const served = await kubectl(cluster, ['get', 'apiservice', 'v1beta1.external.metrics.k8s.io'], 60_000);
    if (served.code === 0)
      return failOrSkip(this, 'external.metrics.k8s.io is served by another adapter already (e.g. KEDA)');
    if (!(await addonBinary('prometheus-adapter', 'PROMETHEUS_ADAPTER_VERSION')))
      return failOrSkip(this, 'prometheus-adapter is not built (harness/cluster/addons/build prometheus-adapter)');
    const started = Date.now();
    startedAdapter = true; // stopped in after() even when the start fails half-way
    await addonScript(cluster, 'prometheus-adapter', ['start']);
    figures.adapterStart = `${seconds(started)} s`;
    ({ web } = await installScalingRelease(cluster, release, {
      tag: `hpa-${suffix}`,
      queue,
      figures,
      values: async () => ({
        config: {
          // A batch that failed while the table was locked comes back this soon.
          SQS_VISIBILITY_TIMEOUT: 30,
          QUEUE_METRICS_INTERVAL_SECONDS: 2,
        },
        worker: {
          autoscaling: {
            enabled: true,
            mode: 'hpa',
            minReplicas: MIN,
            maxReplicas: MAX,
            targetMessagesPerPod: 5,
            hpa: {
              metricName: METRIC,
              metricSelector: { matchLabels: { queue } },
              scaleDownStabilizationSeconds: 15,
            },
          },
        },
      }),
    }));
  });

  after(async function () {
    if (Object.keys(figures).length > 0) console.log(`      figures: ${JSON.stringify(figures)}`);
    if (!cluster) return;
    await removeScalingRelease(cluster, release);
    if (startedAdapter)
      await addonScript(cluster, 'prometheus-adapter', ['stop']).catch((e: unknown) => console.log(String(e)));
  });

  /** The external metric as the HPA reads it (through the aggregation layer). */
  async function metricValue(): Promise<number | undefined> {
    const raw = await kubectl(cluster, [
      'get',
      '--raw',
      `/apis/external.metrics.k8s.io/v1beta1/namespaces/${namespace}/${METRIC}?labelSelector=${encodeURIComponent(`queue=${queue}`)}`,
    ]);
    if (raw.code !== 0) return undefined;
    const items = (JSON.parse(raw.stdout) as { items: { value: string }[] }).items;
    return items.length > 0 ? Number.parseFloat(items[0]!.value) : undefined;
  }

  async function hpa(): Promise<KubeObject> {
    return JSON.parse(await kubectlOk(cluster, ['get', 'hpa', '-n', namespace, WORKER, '-o', 'json'])) as KubeObject;
  }

  it(`scales the worker ${MIN} → ${MAX} on a backlog and back to ${MIN} once it is drained, storing every form once`, async function () {
    // The metric flows: worker gauge → Prometheus → adapter → HPA.
    await eventually(async () => ((await metricValue()) === 0 ? true : undefined), 300_000, `${METRIC} = 0`);
    await eventually(
      async () =>
        (await hpa()).status?.conditions?.find((c) => c.type === 'ScalingActive')?.status === 'True' ? true : undefined,
      300_000,
      'the HPA ScalingActive',
    );
    const timeline = new ReplicaTimeline(cluster, namespace, WORKER);
    // The table lock: held by a psql session in the database pod until it is terminated below.
    const lock = startCommand(
      cluster.kubectl,
      psqlArgs(namespace, POSTGRES, [
        '-c',
        "begin; lock table form_form in access exclusive mode; select 'locked', pg_sleep(900);",
      ]),
      { ...process.env, KUBECONFIG: cluster.kubeconfig },
    );
    try {
      await eventually(
        async () => {
          const out = await kubectlOk(
            cluster,
            psqlArgs(namespace, POSTGRES, [
              '-Atc',
              "select count(*) from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'form_form' and l.mode = 'AccessExclusiveLock' and l.granted",
            ]),
          );
          return out.trim() === '1' ? true : undefined;
        },
        120_000,
        'the forms table locked',
      );
      const firstForm = Date.now();
      const ids = await postForms(web, 300, 'hpa');
      figures.backlogMetric = await eventually(
        async () => {
          const v = await metricValue();
          return v !== undefined && v > MAX * 5 ? v : undefined;
        },
        300_000,
        `${METRIC} above ${MAX * 5}`,
      );
      await eventually(async () => (timeline.replicas() === MAX ? true : undefined), 600_000, `${MAX} replicas`);
      figures.scaledUpAfter = `${seconds(firstForm)} s`;

      const released = Date.now();
      await kubectlOk(
        cluster,
        psqlArgs(namespace, POSTGRES, [
          '-Atc',
          "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(900)%' and pid <> pg_backend_pid()",
        ]),
      );
      const counts = await eventually(
        async () => {
          const c = await storedCounts(cluster, namespace, POSTGRES, ids);
          return c.size === ids.length ? c : undefined;
        },
        600_000,
        `${ids.length} forms stored`,
      );
      figures.drainedAfterRelease = `${seconds(released)} s`;
      expect(
        [...counts].filter(([, n]) => n !== 1),
        'stored more than once',
      ).to.deep.equal([]);
      await eventually(async () => (timeline.replicas() === MIN ? true : undefined), 900_000, `back to ${MIN} replica`);
      figures.scaledDownAfterRelease = `${seconds(released)} s`;
    } finally {
      lock.signal('SIGTERM');
      await lock.exited;
      await timeline.stop();
      figures.replicaTimeline = timeline.describe();
    }
  });
});
