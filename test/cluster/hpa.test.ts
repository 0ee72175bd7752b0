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
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startEmulator, type Emulator } from '../../harness/sqs.ts';
import { validForm } from '../../harness/forms.ts';
import { jsonBody, post } from '../../harness/http.ts';
import { eventually } from '../support/stack.ts';
import { CHART, LOCAL_VALUES } from '../chart/helm.ts';
import {
  addonBinary,
  addonCluster,
  addonScript,
  failOrSkip,
  helmOk,
  installRelease,
  pushImage,
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
  let emulator: Emulator | undefined;
  let startedAdapter = false;
  let workdir: string;
  let web: string;
  const suffix = randomBytes(4).toString('hex');
  const namespace = `form-data-hpa-${suffix}`;
  const queue = `hpa-${suffix}`;
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

    workdir = await mkdtemp(path.join(tmpdir(), 'form-data-hpa-test-'));
    const [app, postgres] = await Promise.all([
      pushImage(cluster, 'form-data', `hpa-${suffix}`),
      pushImage(cluster, 'postgresql', `hpa-${suffix}`),
    ]);
    emulator = await startEmulator();
    const sqs = `http://${cluster.hostAddress}:${new URL(emulator.endpoint).port}`;
    const values = path.join(workdir, 'values.yaml');
    await writeFile(
      values,
      stringify({
        image: { repository: app.slice(0, app.lastIndexOf(':')), tag: `hpa-${suffix}`, pullPolicy: 'IfNotPresent' },
        localDependencies: { postgresql: { enabled: true, image: postgres }, sqs: { enabled: false } },
        config: {
          SQS_ENDPOINT_URL: sqs,
          SQS_FORM_DATA_QUEUE_NAME: queue,
          SQS_INVALID_MESAGES_QUEUE_NAME: `${queue}-invalid`,
          SQS_WAIT_TIME: 2,
          // A batch that failed while the table was locked comes back this soon.
          SQS_VISIBILITY_TIMEOUT: 30,
          QUEUE_METRICS_INTERVAL_SECONDS: 2,
          LOG_FORMAT: 'json',
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
    );
    await kubectlOk(cluster, ['create', 'namespace', namespace]);
    const installStarted = Date.now();
    await installRelease(cluster, namespace, [RELEASE, CHART, '-f', LOCAL_VALUES, '-f', values]);
    figures.install = `${seconds(installStarted)} s`;
    const service = JSON.parse(
      await kubectlOk(cluster, ['get', 'service', '-n', namespace, `${RELEASE}-web`, '-o', 'json']),
    ) as { spec: { clusterIP: string; ports: { port: number }[] } };
    web = `http://${service.spec.clusterIP}:${service.spec.ports[0]!.port}`;
  });

  after(async function () {
    if (Object.keys(figures).length > 0) console.log(`      figures: ${JSON.stringify(figures)}`);
    if (!cluster) return;
    if (namespace) {
      await helmOk(cluster, ['uninstall', RELEASE, '-n', namespace, '--wait', '--timeout', '5m']).catch(
        () => undefined,
      );
      await kubectl(cluster, ['delete', 'namespace', namespace, '--timeout=180s']);
    }
    if (startedAdapter)
      await addonScript(cluster, 'prometheus-adapter', ['stop']).catch((e: unknown) => console.log(String(e)));
    await emulator?.stop();
    if (workdir) await rm(workdir, { recursive: true, force: true });
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
      [
        'exec',
        '-n',
        namespace,
        `deployment/${POSTGRES}`,
        '--',
        'psql',
        '-U',
        'form_data',
        '-d',
        'form_data',
        '-c',
        "begin; lock table form_form in access exclusive mode; select 'locked', pg_sleep(900);",
      ],
      { ...process.env, KUBECONFIG: cluster.kubeconfig },
    );
    try {
      await eventually(
        async () => {
          const out = await kubectlOk(cluster, [
            'exec',
            '-n',
            namespace,
            `deployment/${POSTGRES}`,
            '--',
            'psql',
            '-U',
            'form_data',
            '-d',
            'form_data',
            '-Atc',
            "select count(*) from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'form_form' and l.mode = 'AccessExclusiveLock' and l.granted",
          ]);
          return out.trim() === '1' ? true : undefined;
        },
        120_000,
        'the forms table locked',
      );
      const firstForm = Date.now();
      const ids: string[] = [];
      for (let chunk = 0; chunk < 6; chunk += 1) {
        const replies = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            post(web, '/form/', jsonBody(validForm({ company_name: `hpa-${chunk}-${i}` }))),
          ),
        );
        for (const reply of replies) {
          expect(reply.status, reply.text.slice(0, 300)).to.equal(202);
          ids.push((reply.body as { id: string }).id);
        }
      }
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
      await kubectlOk(cluster, [
        'exec',
        '-n',
        namespace,
        `deployment/${POSTGRES}`,
        '--',
        'psql',
        '-U',
        'form_data',
        '-d',
        'form_data',
        '-Atc',
        "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(900)%' and pid <> pg_backend_pid()",
      ]);
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
