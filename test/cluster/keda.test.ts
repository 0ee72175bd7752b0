/**
 * KEDA on queue depth, for real: the chart's `keda` mode (ScaledObject with the aws-sqs-queue trigger, reading the
 * emulator through its proxy with the release Secret's static keys) on a cluster running KEDA's operator and metrics
 * API server (`npm run cluster -- keda` on the local cluster). The worker is held at 0 replicas; queued forms make
 * KEDA scale it up, every form is stored exactly once, and KEDA scales it back to 0 after the cooldown. With the
 * emulator cut off, the ScaledObject's fallback replicas apply. The replica timeline is printed with the figures.
 *
 * Without a cluster, or without KEDA on it, it skips with one line, except under CI, where it fails.
 */
import { expect } from 'chai';
import { CreateQueueCommand } from '@aws-sdk/client-sqs';
import { observerClient } from '../../harness/sqs.ts';
import { eventually } from '../support/stack.ts';
import { CHART } from '../chart/helm.ts';
import { ClusterFixture, failOrSkip, helmOk, restrictedNamespace, seconds, submit } from './fixture.ts';
import { kubectl, kubectlOk, type Cluster, type KubeObject } from './kube.ts';

/** The ScaledObject's settings for this test: short intervals so that a run takes minutes, not hours. */
const SCALING = {
  minReplicas: 0,
  maxReplicas: 3,
  targetMessagesPerPod: 50,
  pollingInterval: 5,
  cooldownPeriod: 30,
  fallbackReplicas: 1,
  failureThreshold: 3,
};
const FORMS = 300;

/** Samples a Deployment's desired replicas once a second; keeps each change with its time. */
class ReplicaTimeline {
  readonly changes: { atSeconds: number; replicas: number }[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(cluster: Cluster, namespace: string, deployment: string, started: number) {
    this.loop = (async () => {
      while (this.running) {
        const got = await kubectl(cluster, [
          'get',
          'deployment',
          '-n',
          namespace,
          deployment,
          '-o',
          'jsonpath={.spec.replicas}',
        ]);
        const replicas = Number(got.stdout.trim() || 'NaN');
        if (got.code === 0 && !Number.isNaN(replicas) && this.current !== replicas)
          this.changes.push({ atSeconds: seconds(started), replicas });
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
  }

  get current(): number | undefined {
    return this.changes.at(-1)?.replicas;
  }

  /** Resolves when the Deployment's replicas satisfy `check` (polling the timeline). */
  until(check: (replicas: number) => boolean, timeoutMs: number, what: string): Promise<true> {
    return eventually(
      async () => (this.current !== undefined && check(this.current) ? true : undefined),
      timeoutMs,
      what,
    );
  }

  toString(): string {
    return this.changes.map((c) => `${c.atSeconds}s:${c.replicas}`).join(' ');
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

describe('cluster: KEDA scales the worker on queue depth', function () {
  this.timeout(1_800_000);
  const release = 'fdk';
  const deployment = `${release}-form-data-worker`;
  let fx: ClusterFixture;
  let cluster: Cluster;
  let namespace: string;
  let base: string;
  let timeline: ReplicaTimeline;
  const started = Date.now();

  before(async function () {
    const prepared = await ClusterFixture.prepare(this);
    if (!prepared) return;
    fx = prepared;
    cluster = fx.cluster;
    const crd = await kubectl(cluster, ['get', 'crd', 'scaledobjects.keda.sh']);
    if (crd.code !== 0) return failOrSkip(this, 'KEDA is not installed on the cluster (`npm run cluster -- keda`)');
    const [tag] = await fx.pushImage(['keda']);
    namespace = `form-data-keda-${fx.suffix}`;
    await restrictedNamespace(cluster, namespace);

    // The queue exists before the release, so that the trigger's queueURL is the emulator's own.
    const queue = fx.queue(release);
    const sqs = observerClient(fx.emulator.endpoint);
    const created = await sqs.send(new CreateQueueCommand({ QueueName: queue }));
    sqs.destroy();
    const queueURL = new URL(created.QueueUrl!);
    const reachable = new URL(fx.sqsEndpoint());
    queueURL.host = reachable.host;

    const values = await fx.valuesFile(release, tag!, {
      worker: {
        autoscaling: {
          enabled: true,
          mode: 'keda',
          minReplicas: SCALING.minReplicas,
          maxReplicas: SCALING.maxReplicas,
          targetMessagesPerPod: SCALING.targetMessagesPerPod,
          keda: {
            queueURL: queueURL.toString(),
            awsEndpoint: fx.sqsEndpoint(),
            credentialsFromSecret: true,
            pollingInterval: SCALING.pollingInterval,
            cooldownPeriod: SCALING.cooldownPeriod,
            fallback: {
              enabled: 'auto',
              failureThreshold: SCALING.failureThreshold,
              replicas: SCALING.fallbackReplicas,
            },
          },
        },
      },
    });
    const installStarted = Date.now();
    await helmOk(cluster, ['install', release, CHART, '-n', namespace, '-f', values, '--wait', '--timeout', '10m']);
    fx.figures.kedaInstall = `${seconds(installStarted)} s`;
    base = await fx.webBase(namespace, release);
    timeline = new ReplicaTimeline(cluster, namespace, deployment, started);
  });

  after(async function () {
    await timeline?.stop();
    if (timeline) fx.figures.kedaReplicaTimeline = timeline.toString();
    if (namespace) {
      await helmOk(cluster, ['uninstall', release, '-n', namespace, '--wait', '--timeout', '10m']).catch(
        () => undefined,
      );
      await kubectl(cluster, ['delete', 'namespace', namespace, '--wait=false']);
    }
    await fx?.close();
  });

  async function scaledObject(): Promise<KubeObject> {
    return JSON.parse(
      await kubectlOk(cluster, ['get', 'scaledobject', '-n', namespace, deployment, '-o', 'json']),
    ) as KubeObject;
  }

  const condition = (o: KubeObject, type: string): string | undefined =>
    o.status?.conditions?.find((c) => c.type === type)?.status;

  it('holds the worker at 0 replicas while the queue is empty', async function () {
    await eventually(
      async () => (condition(await scaledObject(), 'Ready') === 'True' ? true : undefined),
      180_000,
      'the ScaledObject Ready',
    );
    await timeline.until((r) => r === 0, 300_000, 'the worker at 0 replicas');
    expect(await fx.podsOf(namespace, release, 'worker')).to.have.length(0);
  });

  it('scales the worker up for queued forms, stores each once, and back to 0 after the cooldown', async function () {
    const firstPost = Date.now();
    const ids: string[] = [];
    for (let chunk = 0; chunk < FORMS / 100; chunk += 1)
      ids.push(...(await Promise.all(Array.from({ length: 100 }, (_, i) => submit(base, `keda-${chunk * 100 + i}`)))));
    fx.figures.kedaQueued = `${ids.length} forms in ${seconds(firstPost)} s`;
    await eventually(
      async () => ((await fx.storedCounts(ids)).size > 0 ? true : undefined),
      300_000,
      'the first stored form',
    );
    fx.figures.kedaFirstFormToFirstRow = `${seconds(firstPost)} s`;
    await fx.expectStoredOnce(ids, 'forms queued for KEDA');
    fx.figures.kedaAllStored = `${seconds(firstPost)} s`;
    expect(Math.max(...timeline.changes.map((c) => c.replicas)), 'replicas KEDA asked for').to.be.at.least(1);
    const drained = Date.now();
    await timeline.until((r) => r === 0, 600_000, 'the worker back at 0 replicas');
    fx.figures.kedaBackToZero = `${seconds(drained)} s after the last form was stored`;
  });

  it('applies the fallback replicas while the queue cannot be read', async function () {
    fx.sqsProxy.cut();
    try {
      const cut = Date.now();
      await timeline.until((r) => r === SCALING.fallbackReplicas, 600_000, 'the fallback replicas');
      fx.figures.kedaFallback = `${SCALING.fallbackReplicas} replica(s) ${seconds(cut)} s after the emulator was cut off`;
      expect(condition(await scaledObject(), 'Fallback')).to.equal('True');
    } finally {
      fx.sqsProxy.restore();
    }
  });
});
