/**
 * KEDA scaling the worker on queue depth, for real: the chart's `keda` mode (ScaledObject with the aws-sqs-queue
 * trigger, minReplicas 0) on a cluster reached through KUBECONFIG alone (kube.ts), with KEDA's operator and metrics
 * API server either already installed there or started here out of cluster (harness/cluster/addons/keda). The web
 * and worker use the project's image and the in-cluster PostgreSQL image built here; the queue is the SQS emulator
 * on this machine, offered to the pods and to KEDA on HOST_ADDRESS.
 *
 * Checked: the worker at 0 replicas, forms queued, KEDA scales it up, every form is stored once, KEDA scales it back
 * to 0 after the cooldown (figures: first-form-to-first-row time and the replica timeline); with the emulator
 * stopped, the ScaledObject's fallback replicas apply.
 *
 * Skips with one line without a cluster or KEDA (see addons.ts for when it is required under CI).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CreateQueueCommand, DeleteQueueCommand } from '@aws-sdk/client-sqs';
import { observerClient } from '../../harness/sqs.ts';
import { eventually } from '../support/stack.ts';
import { LOCAL_VALUES, render } from '../chart/helm.ts';
import { startPrometheus, writeRuleFile, type PrometheusServer } from '../chart/prometheus.ts';
import { requireTool, TOOLS } from '../support/tools.ts';
import { KEDA_VERSION, mismatch, thirdPartySelectors, type ExportedFamily } from '../chart/exporters.ts';
import {
  addonBinary,
  addonCluster,
  addonScript,
  failOrSkip,
  installScalingRelease,
  postForms,
  removeScalingRelease,
  ReplicaTimeline,
  seconds,
  storedCounts,
  type ScalingRelease,
} from './addons.ts';
import { kubectl, kubectlOk, list, type Cluster, type KubeObject } from './kube.ts';

const RELEASE = 'form-data';
const WORKER = `${RELEASE}-worker`;
const FALLBACK_REPLICAS = 2;

describe('cluster: KEDA scales the worker on queue depth', function () {
  this.timeout(1_800_000);
  let cluster: Cluster;
  let startedKeda = false;
  const suffix = randomBytes(4).toString('hex');
  const queue = `keda-${suffix}`;
  const release: Parameters<typeof removeScalingRelease>[1] = { name: RELEASE, namespace: `form-data-keda-${suffix}` };
  const { namespace } = release;
  let installed: ScalingRelease;
  const figures: Record<string, unknown> = {};

  before(async function () {
    const given = await addonCluster();
    if (typeof given === 'string') return failOrSkip(this, given);
    cluster = given;
    const crd = await kubectl(cluster, ['get', 'crd', 'scaledobjects.keda.sh'], 60_000);
    if (crd.code !== 0) {
      if (!(await addonBinary('keda', 'KEDA_VERSION')) || !(await addonBinary('keda-adapter', 'KEDA_VERSION')))
        return failOrSkip(this, 'KEDA is neither installed nor built (harness/cluster/addons/build keda)');
      const started = Date.now();
      startedKeda = true; // stopped in after() even when the start fails half-way
      await addonScript(cluster, 'keda', ['start']);
      figures.kedaStart = `${seconds(started)} s`;
    }
    installed = await installScalingRelease(cluster, release, {
      tag: `keda-${suffix}`,
      queue,
      figures,
      values: async ({ endpoint, hostEndpoint }) => {
        // The queue's URL exactly as the emulator names it (KEDA reads the queue by that URL): learnt from a probe
        // queue, so that the app still creates the queue itself, with its own attributes.
        const observer = observerClient(endpoint);
        const { QueueUrl: probe } = await observer.send(new CreateQueueCommand({ QueueName: `probe-${suffix}` }));
        await observer.send(new DeleteQueueCommand({ QueueUrl: probe }));
        observer.destroy();
        return {
          worker: {
            autoscaling: {
              enabled: true,
              mode: 'keda',
              minReplicas: 0,
              maxReplicas: 4,
              targetMessagesPerPod: 10,
              keda: {
                queueURL: probe!.replace(/[^/]+$/, queue),
                awsEndpoint: hostEndpoint,
                pollingInterval: 2,
                cooldownPeriod: 20,
                fallback: { enabled: true, failureThreshold: 2, replicas: FALLBACK_REPLICAS },
                // KEDA's own identity (the operator's AWS credentials): the workload's would be an IRSA role, which
                // the emulator has no STS for.
                podIdentity: { identityOwner: 'keda' },
              },
            },
          },
        };
      },
    });
  });

  after(async function () {
    if (Object.keys(figures).length > 0) console.log(`      figures: ${JSON.stringify(figures)}`);
    if (!cluster) return;
    await removeScalingRelease(cluster, release);
    if (startedKeda) await addonScript(cluster, 'keda', ['stop']).catch((e: unknown) => console.log(String(e)));
  });

  async function workerPods(): Promise<KubeObject[]> {
    return (await list(cluster, ['pods', '-n', namespace, '-l', `app.kubernetes.io/component=worker`])).filter(
      (p) => !p.metadata.deletionTimestamp,
    );
  }

  async function scaledObject(): Promise<KubeObject> {
    return JSON.parse(
      await kubectlOk(cluster, ['get', 'scaledobject', '-n', namespace, WORKER, '-o', 'json']),
    ) as KubeObject;
  }

  it('scales the worker 0 → N → 0: every queued form is stored once, then back to 0 after the cooldown', async function () {
    const timeline = new ReplicaTimeline(cluster, namespace, WORKER);
    try {
      // KEDA holds the worker at 0 while the queue is empty (minReplicas 0, activation above 0 messages).
      await eventually(
        async () => (timeline.replicas() === 0 && (await workerPods()).length === 0 ? true : undefined),
        300_000,
        'the worker at 0 replicas with no pod',
      );
      const so = await scaledObject();
      expect(so.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'ScaledObject Ready').to.equal('True');
      // The path the HPA takes (the aggregated external metrics API, KEDA's metrics server, its operator) answers.
      expect(Number((await externalMetric()).value), 'the queue depth the HPA reads, queue empty').to.equal(0);

      const firstForm = Date.now();
      const ids = await postForms(installed.web, 200, 'keda');
      const firstRow = await eventually(
        async () =>
          (await storedCounts(cluster, namespace, `${RELEASE}-postgresql`, ids)).size > 0 ? Date.now() : undefined,
        600_000,
        'the first row',
      );
      figures.firstFormToFirstRow = `${(firstRow - firstForm) / 1000} s`;
      const counts = await eventually(
        async () => {
          const c = await storedCounts(cluster, namespace, `${RELEASE}-postgresql`, ids);
          return c.size === ids.length ? c : undefined;
        },
        600_000,
        `${ids.length} forms stored`,
      );
      figures.allStored = `${seconds(firstForm)} s after the first form`;
      expect(
        [...counts].filter(([, n]) => n !== 1),
        'stored more than once',
      ).to.deep.equal([]);
      const peak = Math.max(...timeline.points().map((p) => p.replicas));
      expect(peak, 'KEDA scaled the worker up').to.be.greaterThan(0);
      figures.peakReplicas = peak;

      await eventually(
        async () => (timeline.replicas() === 0 && (await workerPods()).length === 0 ? true : undefined),
        600_000,
        'the worker back at 0 replicas after the cooldown',
      );
      figures.backToZero = `${seconds(firstForm)} s after the first form`;
    } finally {
      await timeline.stop();
      figures.replicaTimeline = timeline.describe();
    }
  });

  it(`applies the fallback (${FALLBACK_REPLICAS} replicas) while the queue cannot be read (emulator stopped), and the chart's FormDataScalerErrors fires`, async function () {
    const timeline = new ReplicaTimeline(cluster, namespace, WORKER);
    const operatorMetrics = await operatorMetricsPort();
    let prometheus: PrometheusServer | undefined;
    const vector = async (query: string): Promise<{ value: [number, string] }[]> =>
      (await prometheus!.api<{ result: { value: [number, string] }[] }>('query', { query })).result;
    try {
      await eventually(async () => (timeline.replicas() === 0 ? true : undefined), 300_000, 'the worker at 0');
      const so = await scaledObject();
      const selector = `exported_namespace="${namespace}", scaledObject="${so.metadata.name}"`;
      if (operatorMetrics) {
        // The chart's own alert with its default threshold (the fallback's failureThreshold - 1), evaluated by a real
        // Prometheus scraping the running operator before the scaler fails. The target's namespace label is KEDA's,
        // so the series' namespace becomes exported_namespace, as through a ServiceMonitor without honorLabels.
        const rules = path.join(installed.workdir, 'rules.yaml');
        await writeRuleFile(
          rules,
          await render({
            release: RELEASE,
            namespace,
            values: [LOCAL_VALUES, installed.values],
            set: {
              'monitoring.prometheusRule.enabled': true,
              'monitoring.prometheusRule.alerts.scalerErrors.enabled': true,
              'monitoring.prometheusRule.alerts.scalerErrors.window': '2m',
            },
          }),
        );
        prometheus = await startPrometheus(await requireTool(this, TOOLS.prometheus), {
          targets: [{ job: 'keda-operator', address: `127.0.0.1:${operatorMetrics}`, labels: { namespace: 'keda' } }],
          ruleFile: rules,
          interval: '1s',
        });
        // The series exists (at 0) before the failure, so increase() sees the errors KEDA counts.
        await eventually(
          async () => (await vector(`keda_scaled_object_errors_total{${selector}}`)).length === 1 || undefined,
          60_000,
          "Prometheus to scrape the ScaledObject's keda_scaled_object_errors_total",
        );
      }
      const stopped = Date.now();
      await installed.emulator!.stop();
      installed.emulator = undefined;
      await eventually(
        async () => (timeline.replicas() === FALLBACK_REPLICAS ? true : undefined),
        300_000,
        `the worker at the fallback's ${FALLBACK_REPLICAS} replicas`,
      ).catch(async (error: unknown) => {
        throw new Error(`${String(error)}\n${await kedaReport(`replica timeline: ${timeline.describe()}`)}`);
      });
      figures.fallbackAfter = `${seconds(stopped)} s`;
      expect(
        (await scaledObject()).status?.conditions?.find((c) => c.type === 'Fallback')?.status,
        'ScaledObject Fallback',
      ).to.equal('True');
      if (!prometheus) {
        figures.scalerErrorsAlert = 'not checked: KEDA was not started by the add-on script (no operator /metrics)';
        return;
      }
      const alert = await prometheus.waitForAlert('FormDataScalerErrors', 'firing', 120_000);
      expect(alert?.labels.namespace, 'the alert names the release namespace').to.equal(namespace);
      figures.scalerErrorsAlert = `FormDataScalerErrors firing ${seconds(stopped)} s after the emulator stopped`;
      // KEDA counts errors only until its fallback applies: the counter stays put while the fallback holds
      // (10 more scrapes, about 5 of KEDA's polls), which is why the alert cannot last longer than its window.
      const errors = async (): Promise<{ value: number; samples: number }> => {
        const [value] = await vector(`keda_scaled_object_errors_total{${selector}}`);
        const [samples] = await vector(`count_over_time(keda_scaled_object_errors_total{${selector}}[1h])`);
        return { value: Number(value!.value[1]), samples: Number(samples!.value[1]) };
      };
      const atFallback = await errors();
      const later = await eventually(
        async () => {
          const now = await errors();
          return now.samples >= atFallback.samples + 10 ? now : undefined;
        },
        60_000,
        '10 more scrapes of the operator',
      );
      expect(later.value, 'errors counted while the fallback holds').to.equal(atFallback.value);
      figures.scalerErrors = `keda_scaled_object_errors_total ${atFallback.value}, unchanged 10 scrapes later`;
    } finally {
      await prometheus?.stop();
      await timeline.stop();
      figures.fallbackTimeline = timeline.describe();
    }
  });

  it(`the running operator (at least KEDA ${KEDA_VERSION}) exports every third-party series the chart reads, with its labels`, async function () {
    // KEDA started here: its operator's /metrics on the port it was given; KEDA installed: through the pod proxy.
    const port = await operatorMetricsPort();
    let exposition: string;
    if (port) exposition = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    else {
      const pod = (await list(cluster, ['pods', '-A', '-l', 'app=keda-operator']))[0];
      if (!pod) return failOrSkip(this, 'no KEDA operator pod (label app=keda-operator) and no operator started here');
      exposition = await kubectlOk(cluster, [
        'get',
        '--raw',
        `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}:8080/proxy/metrics`,
      ]);
    }
    const version = /keda_build_info\{[^}]*version="v?([0-9.]+)/.exec(exposition)?.[1];
    expect(version, 'keda_build_info version').to.be.a('string');
    const number = (v: string): number => v.split('.').reduce((n, part) => n * 1000 + Number(part), 0);
    expect(number(version!), `KEDA ${version} is at least ${KEDA_VERSION}`).to.be.at.least(number(KEDA_VERSION));
    figures.operatorVersion = version;
    // The series the chart reads as the operator exposes them (all recorded by now: the scaler has failed).
    const families = [...exposition.matchAll(/^# TYPE (\S+) (\w+)$/gm)].map(([, name, type]) => ({
      name: name!,
      type: type as ExportedFamily['type'],
      labels: [
        ...new Set(
          [...exposition.matchAll(new RegExp(`^${name}(?:_total)?\\{([^}]*)\\}`, 'gm'))].flatMap((m) =>
            [...m[1]!.matchAll(/(\w+)="/g)].map((l) => l[1]!),
          ),
        ),
      ],
    }));
    const selectors = await thirdPartySelectors();
    expect(selectors, 'third-party series the chart reads').to.not.be.empty;
    expect(selectors.map((s) => mismatch(families, s.name, s.labels)).filter(Boolean)).to.deep.equal([]);
  });

  /** The port of the operator's /metrics when KEDA was started here out of cluster (harness/cluster/addons/keda). */
  async function operatorMetricsPort(): Promise<string> {
    const addons = process.env.FORM_DATA_ADDONS_DIR ?? '/var/lib/form-data-cluster-addons';
    return (await readFile(path.join(addons, 'keda/ports/operator-metrics'), 'utf8').catch(() => '')).trim();
  }

  /** The ScaledObject's metric as the HPA reads it, through the aggregated external metrics API. */
  async function externalMetric(): Promise<{ value: string }> {
    const hpa = JSON.parse(
      await kubectlOk(cluster, ['get', 'hpa', '-n', namespace, `keda-hpa-${WORKER}`, '-o', 'json']),
    ) as { spec: { metrics: { external: { metric: { name: string } } }[] } };
    const metric = hpa.spec.metrics[0]!.external.metric.name;
    const raw = await kubectlOk(cluster, [
      'get',
      '--raw',
      `/apis/external.metrics.k8s.io/v1beta1/namespaces/${namespace}/${metric}?labelSelector=${encodeURIComponent(`scaledobject.keda.sh/name=${WORKER}`)}`,
    ]);
    const { items } = JSON.parse(raw) as { items: { value: string }[] };
    expect(items, `external metric ${metric}`).to.have.length(1);
    return items[0]!;
  }

  /** What the ScaledObject, its HPA, the external metric and KEDA's logs say, for a failure message. */
  async function kedaReport(context: string): Promise<string> {
    const parts = [context];
    parts.push(`external metric: ${await externalMetric().then(JSON.stringify, String)}`);
    const so = await kubectl(cluster, ['get', 'scaledobject', '-n', namespace, WORKER, '-o', 'jsonpath={.status}']);
    parts.push(`ScaledObject status: ${so.stdout}${so.stderr}`);
    const hpa = await kubectl(cluster, ['get', 'hpa', '-n', namespace, '-o', 'jsonpath={.items[*].status}']);
    parts.push(`HPA status: ${hpa.stdout}${hpa.stderr}`);
    const logs = process.env.FORM_DATA_ADDONS_DIR ?? '/var/lib/form-data-cluster-addons';
    for (const name of ['operator', 'adapter']) {
      const log = await readFile(path.join(logs, `keda/logs/${name}.log`), 'utf8').catch(() => '');
      parts.push(`--- KEDA ${name} (last lines)\n${log.split('\n').slice(-15).join('\n')}`);
    }
    return parts.join('\n');
  }
});
