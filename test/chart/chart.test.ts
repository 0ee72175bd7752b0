/**
 * The Helm chart: lint, render for every kept value set, validate each object
 * against the Kubernetes and KEDA schemas, check what the issue asks of the
 * objects, and check that refused values are refused with a clear message.
 * The monitoring objects have their own checks in monitoring.test.ts.
 */
import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  CHART,
  LOCAL_VALUES,
  VALUES,
  find,
  findAll,
  helm,
  helmBinary,
  render,
  renderError,
  renderErrors,
  SCHEMALESS_KINDS,
  validateManifests,
} from './helm.ts';
import type { Manifest } from './helm.ts';

/** The value sets kept as files; `defaults` is the chart's own values.yaml. */
const VALUE_SETS: Record<string, string[]> = {
  defaults: [],
  production: ['production.yaml'],
  keda: ['keda.yaml'],
  hpa: ['hpa.yaml'],
  'ingress-web-hpa': ['ingress-web-hpa.yaml'],
  'migrations-off': ['migrations-off.yaml'],
  monitoring: ['monitoring.yaml'],
  local: [LOCAL_VALUES],
};

const RELEASE = 'form-data';
const FULL = 'form-data'; // release name holds the chart name
const APP_KINDS = ['Deployment', 'Job', 'Pod'];

function podSpec(m: Manifest): Manifest['spec'] {
  return m.kind === 'Pod' ? m.spec : m.spec.template.spec;
}

function container(m: Manifest, name: string) {
  const c = podSpec(m).containers.find((x: { name: string }) => x.name === name);
  if (!c) throw new Error(`${m.kind} ${m.metadata.name} has no container ${name}`);
  return c;
}

function hook(m: Manifest): { events: string[]; weight: number; deletePolicy: string[] } | undefined {
  const a = m.metadata.annotations ?? {};
  if (!a['helm.sh/hook']) return undefined;
  return {
    events: a['helm.sh/hook'].split(',').map((s) => s.trim()),
    weight: Number(a['helm.sh/hook-weight'] ?? 0),
    deletePolicy: (a['helm.sh/hook-delete-policy'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
}

describe('chart: helm lint and template', function () {
  this.timeout(120_000);
  const rendered = new Map<string, Manifest[]>();

  before(async function () {
    this.timeout(120_000);
    await helmBinary();
    const entries = await Promise.all(
      Object.entries(VALUE_SETS).map(
        async ([name, files]) => [name, await render({ release: RELEASE, values: files })] as const,
      ),
    );
    for (const [name, manifests] of entries) rendered.set(name, manifests);
  });

  function set(name: string): Manifest[] {
    const m = rendered.get(name);
    if (!m) throw new Error(`value set ${name} not rendered`);
    return m;
  }

  it('runs under a Helm 4 and a Helm 3 binary (every render of these tests is made by both and compared)', async () => {
    const [helm4, helm3] = await Promise.all([helm(['version', '--short'], 4), helm(['version', '--short'], 3)]);
    expect(helm4.code).to.equal(0);
    expect(helm3.code).to.equal(0);
    expect(helm4.stdout.trim()).to.match(/^v4\./);
    expect(helm3.stdout.trim()).to.match(/^v3\./);
    // The layer packages' versions, unless a binary was chosen through the environment.
    if (!process.env.HELM3_BIN) expect(helm3.stdout.trim()).to.match(/^v3\.17\.2\+/);
  });

  it('passes helm lint --strict with every value set, under Helm 4 and Helm 3', async () => {
    const results = await Promise.all(
      Object.entries(VALUE_SETS).flatMap(([name, files]) => {
        const args = ['lint', '--strict', CHART];
        for (const f of files) args.push('-f', path.isAbsolute(f) ? f : path.join(VALUES, f));
        return ([4, 3] as const).map(async (major) => ({
          name: `${name} (Helm ${major})`,
          ...(await helm(args, major)),
        }));
      }),
    );
    for (const r of results) expect(r.code, `${r.name}: ${r.stdout}${r.stderr}`).to.equal(0);
  });

  it('renders objects of the built-in API that validate against the Kubernetes API types; only listed custom resources are left', async () => {
    const failures: string[] = [];
    const custom = new Set<string>();
    for (const [name, manifests] of rendered) {
      expect(manifests.length, name).to.be.greaterThan(0);
      const builtIn = manifests.filter((m) => {
        const key = `${m.apiVersion} ${m.kind}`;
        if (SCHEMALESS_KINDS[key] === undefined) return true;
        custom.add(key);
        return false;
      });
      for (const failure of await validateManifests(builtIn)) failures.push(`${name}: ${failure}`);
    }
    expect(failures).to.deep.equal([]);
    // Checked elsewhere (SCHEMALESS_KINDS says where); the value sets render these.
    expect([...custom].sort()).to.deep.equal([
      'keda.sh/v1alpha1 ScaledObject',
      'keda.sh/v1alpha1 TriggerAuthentication',
      'monitoring.coreos.com/v1 PrometheusRule',
      'monitoring.coreos.com/v1 ServiceMonitor',
    ]);
  });

  it('puts the standard labels on every object and selects by name + instance + component', () => {
    for (const [name, manifests] of rendered) {
      for (const m of manifests) {
        const labels = m.metadata.labels ?? {};
        for (const key of [
          'app.kubernetes.io/name',
          'app.kubernetes.io/instance',
          'app.kubernetes.io/version',
          'app.kubernetes.io/component',
          'app.kubernetes.io/part-of',
          'app.kubernetes.io/managed-by',
          'helm.sh/chart',
        ]) {
          expect(labels, `${name}: ${m.kind} ${m.metadata.name} label ${key}`).to.have.property(key);
        }
        if (m.kind === 'Deployment') {
          const selector = m.spec.selector.matchLabels as Record<string, string>;
          expect(Object.keys(selector).sort()).to.deep.equal([
            'app.kubernetes.io/component',
            'app.kubernetes.io/instance',
            'app.kubernetes.io/name',
          ]);
          for (const [k, v] of Object.entries(selector))
            expect(m.spec.template.metadata.labels[k], `${m.metadata.name} pod label ${k}`).to.equal(v);
        }
      }
    }
    const manifests = set('defaults');
    const web = find(manifests, 'Deployment', `${FULL}-web`);
    const worker = find(manifests, 'Deployment', `${FULL}-worker`);
    expect(web.spec.selector.matchLabels['app.kubernetes.io/component']).to.equal('web');
    expect(worker.spec.selector.matchLabels['app.kubernetes.io/component']).to.equal('worker');
    expect(find(manifests, 'Service', `${FULL}-web`).spec.selector).to.deep.equal(web.spec.selector.matchLabels);
    for (const pdb of findAll(manifests, 'PodDisruptionBudget')) {
      const target = pdb.metadata.name.endsWith('-web') ? web : worker;
      expect(pdb.spec.selector.matchLabels).to.deep.equal(target.spec.selector.matchLabels);
    }
  });

  it('runs web and worker from the same image with different commands, and no Service for the worker', () => {
    const manifests = set('defaults');
    const web = container(find(manifests, 'Deployment', `${FULL}-web`), 'web');
    const worker = container(find(manifests, 'Deployment', `${FULL}-worker`), 'worker');
    expect(web.image).to.equal(worker.image);
    // args, not command: the image's entrypoint (tini) stays PID 1.
    expect(web.command).to.equal(undefined);
    expect(web.args).to.deep.equal(['node', 'dist/services/web/main.js']);
    expect(worker.args).to.deep.equal(['node', 'dist/services/worker/main.js']);
    expect(findAll(manifests, 'Service').map((s) => s.metadata.name)).to.deep.equal([`${FULL}-web`]);
  });

  it('probes the web on /healthz/ready and /healthz/live at the web port, the worker at HEALTH_PORT', () => {
    const manifests = set('defaults');
    const config = find(manifests, 'ConfigMap', FULL).data as Record<string, string>;
    const web = container(find(manifests, 'Deployment', `${FULL}-web`), 'web');
    expect(web.ports).to.deep.equal([
      { name: 'http', containerPort: Number(config.PORT), protocol: 'TCP' },
      { name: 'metrics', containerPort: Number(config.METRICS_PORT), protocol: 'TCP' },
    ]);
    expect(web.readinessProbe.httpGet).to.deep.equal({ path: '/healthz/ready', port: 'http' });
    expect(web.livenessProbe.httpGet).to.deep.equal({ path: '/healthz/live', port: 'http' });
    expect(web.startupProbe.httpGet).to.deep.equal({ path: '/healthz/live', port: 'http' });
    const worker = container(find(manifests, 'Deployment', `${FULL}-worker`), 'worker');
    expect(worker.ports).to.deep.equal([
      { name: 'health', containerPort: Number(config.HEALTH_PORT), protocol: 'TCP' },
    ]);
    expect(worker.readinessProbe.httpGet).to.deep.equal({ path: '/healthz/ready', port: 'health' });
    expect(worker.livenessProbe.httpGet).to.deep.equal({ path: '/healthz/live', port: 'health' });
    expect(worker.startupProbe.httpGet).to.deep.equal({ path: '/healthz/live', port: 'health' });
    expect(find(manifests, 'Service', `${FULL}-web`).spec.ports[0].targetPort).to.equal('http');
  });

  it('gives the web a preStop sleep and a grace period covering preStop, SHUTDOWN_DELAY_MS and drain', async () => {
    const web = find(set('defaults'), 'Deployment', `${FULL}-web`);
    const c = container(web, 'web');
    expect(c.lifecycle.preStop).to.deep.equal({ sleep: { seconds: 5 } });
    // 5 s preStop + 5 s SHUTDOWN_DELAY_MS + 15 s drain + 5 s margin
    expect(podSpec(web).terminationGracePeriodSeconds).to.equal(30);

    const [old, longer, none] = await Promise.all([
      render({ release: RELEASE, kubeVersion: '1.29.0' }),
      render({ release: RELEASE, set: { 'web.preStop.seconds': 12, 'config.SHUTDOWN_DELAY_MS': 8500 } }),
      render({ release: RELEASE, values: ['migrations-off.yaml'] }),
    ]);
    expect(
      container(find(old, 'Deployment', `${FULL}-web`), 'web').lifecycle.preStop,
      'no sleep action before 1.30',
    ).to.deep.equal({ exec: { command: ['sleep', '5'] } });
    expect(podSpec(find(longer, 'Deployment', `${FULL}-web`)).terminationGracePeriodSeconds).to.equal(12 + 9 + 15 + 5);
    const noPreStop = find(none, 'Deployment', `${FULL}-web`);
    expect(container(noPreStop, 'web').lifecycle).to.equal(undefined);
    expect(podSpec(noPreStop).terminationGracePeriodSeconds).to.equal(5 + 15 + 5);
  });

  it('derives the worker grace period from SQS_WAIT_TIME plus processing budget plus margin', async () => {
    const worker = find(set('defaults'), 'Deployment', `${FULL}-worker`);
    expect(podSpec(worker).terminationGracePeriodSeconds).to.equal(20 + 30 + 10);
    const [short, explicit] = await Promise.all([
      render({ release: RELEASE, set: { 'config.SQS_WAIT_TIME': 5, 'worker.processingBudgetSeconds': 20 } }),
      render({ release: RELEASE, set: { 'worker.terminationGracePeriodSeconds': 21 } }),
    ]);
    expect(podSpec(find(short, 'Deployment', `${FULL}-worker`)).terminationGracePeriodSeconds).to.equal(5 + 20 + 10);
    expect(find(short, 'ConfigMap', FULL).data.SQS_WAIT_TIME).to.equal('5');
    expect(podSpec(find(explicit, 'Deployment', `${FULL}-worker`)).terminationGracePeriodSeconds).to.equal(21);
  });

  it('rolls the pods when the configuration or the Secret changes (checksum annotations)', async () => {
    const [base, changedConfig, changedSecret] = await Promise.all([
      render({ release: RELEASE, values: ['ingress-web-hpa.yaml'] }),
      render({ release: RELEASE, values: ['ingress-web-hpa.yaml'], set: { 'config.LOG_LEVEL': 'debug' } }),
      render({ release: RELEASE, values: ['ingress-web-hpa.yaml'], set: { 'secrets.UI_SECRET': 'another' } }),
    ]);
    for (const deployment of [`${FULL}-web`, `${FULL}-worker`]) {
      const a = (m: Manifest[]) =>
        find(m, 'Deployment', deployment).spec.template.metadata.annotations as Record<string, string>;
      expect(a(base)['checksum/config']).to.match(/^[0-9a-f]{64}$/);
      expect(a(changedConfig)['checksum/config']).to.not.equal(a(base)['checksum/config']);
      expect(a(changedSecret)['checksum/secret']).to.not.equal(a(base)['checksum/secret']);
      expect(a(changedSecret)['checksum/config']).to.equal(a(base)['checksum/config']);
    }
  });

  it('hardens every app container: non-root, read-only root filesystem, no escalation, drop ALL, RuntimeDefault; /tmp writable', () => {
    for (const [name, manifests] of rendered) {
      for (const m of manifests.filter((x) => APP_KINDS.includes(x.kind))) {
        if (['postgresql', 'sqs'].includes(m.metadata.labels?.['app.kubernetes.io/component'] ?? '')) continue; // local-only third-party images
        const spec = podSpec(m);
        expect(spec.securityContext.runAsNonRoot, `${name} ${m.metadata.name}`).to.equal(true);
        expect(spec.securityContext.runAsUser).to.be.a('number').greaterThan(0);
        expect(spec.securityContext.seccompProfile).to.deep.equal({ type: 'RuntimeDefault' });
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          const where = `${name} ${m.metadata.name}/${c.name}`;
          expect(c.securityContext.readOnlyRootFilesystem, where).to.equal(true);
          expect(c.securityContext.allowPrivilegeEscalation, where).to.equal(false);
          expect(c.securityContext.capabilities.drop, where).to.deep.equal(['ALL']);
          expect(c.resources?.limits?.memory, where).to.be.a('string');
          if (m.kind !== 'Pod')
            expect(
              (c.volumeMounts ?? []).map((v: { mountPath: string }) => v.mountPath),
              where,
            ).to.include('/tmp');
        }
      }
    }
  });

  it('runs the migrations as a pre-install,pre-upgrade hook Job whose Secret and ServiceAccount exist before it', () => {
    for (const [name, manifests] of rendered) {
      for (const job of findAll(manifests, 'Job')) {
        const h = hook(job);
        expect(h, `${name}: Job ${job.metadata.name} is a hook`).to.not.equal(undefined);
        if (!h) continue;
        if (name !== 'local') expect(h.events).to.deep.equal(['pre-install', 'pre-upgrade']);
        expect(h.deletePolicy).to.include.members(['before-hook-creation', 'hook-succeeded']);
        expect(job.spec.backoffLimit).to.be.a('number');
        expect(job.spec.activeDeadlineSeconds).to.be.a('number').lessThan(300); // Helm's default --timeout
        expect(podSpec(job).restartPolicy).to.equal('Never');
        expect(container(job, 'migrate').args).to.deep.equal(['node', 'dist/migrations/cli.js', 'latest']);

        // Whatever the Job refers to must exist when it starts: a hook of the
        // same events with a lower weight, or something made outside the chart.
        const spec = podSpec(job);
        const refs: { kind: string; name: string }[] = [];
        if (spec.serviceAccountName) refs.push({ kind: 'ServiceAccount', name: spec.serviceAccountName });
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          for (const e of c.env ?? []) {
            if (e.valueFrom?.secretKeyRef) refs.push({ kind: 'Secret', name: e.valueFrom.secretKeyRef.name });
            if (e.valueFrom?.configMapKeyRef) refs.push({ kind: 'ConfigMap', name: e.valueFrom.configMapKeyRef.name });
          }
          for (const e of c.envFrom ?? []) {
            if (e.secretRef) refs.push({ kind: 'Secret', name: e.secretRef.name });
            if (e.configMapRef) refs.push({ kind: 'ConfigMap', name: e.configMapRef.name });
          }
        }
        for (const ref of refs) {
          const made = manifests.find((m) => m.kind === ref.kind && m.metadata.name === ref.name);
          if (!made) continue; // made outside the chart (existingSecret, serviceAccount.create=false)
          const dep = hook(made);
          expect(dep, `${name}: ${ref.kind} ${ref.name} used by the migrations Job must be a hook`).to.not.equal(
            undefined,
          );
          if (!dep) continue;
          expect(dep.events).to.include.members(h.events);
          expect(dep.weight).to.be.lessThan(h.weight);
        }
      }
    }
    const defaults = set('defaults');
    expect(findAll(defaults, 'Job').map((j) => j.metadata.name)).to.deep.equal([`${FULL}-migrations`]);
    const withInline = set('ingress-web-hpa');
    const job = find(withInline, 'Job', `${FULL}-migrations`);
    const dbEnv = container(job, 'migrate').env.find((e: { name: string }) => e.name === 'DATABASE_URL');
    expect(dbEnv.valueFrom.secretKeyRef.name).to.equal(`${FULL}-migrations`);
    expect(find(withInline, 'Secret', `${FULL}-migrations`).data.DATABASE_URL).to.be.a('string');
    const prodJob = find(set('production'), 'Job', `${FULL}-migrations`);
    expect(
      container(prodJob, 'migrate').env.find((e: { name: string }) => e.name === 'DATABASE_URL').valueFrom.secretKeyRef
        .name,
    ).to.equal('form-data-credentials');
    expect(findAll(set('migrations-off'), 'Job')).to.deep.equal([]);
    expect(set('migrations-off').filter((m) => hook(m))).to.deep.equal([]);
  });

  it("leaves room under the worker's memory limit above its V8 old-space cap", () => {
    // RSS outside the old space: the compiled worker idles at about 85 MiB (npm run bench, docs/performance.md),
    // of which the old space is a small part; 96 MiB is kept for it, the young generation and buffers.
    const mebibytes = (quantity: string): number => {
      const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
      if (!match) throw new Error(`unexpected memory quantity ${quantity}`);
      return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
    };
    const checked: string[] = [];
    for (const name of Object.keys(VALUE_SETS)) {
      const worker = findAll(set(name), 'Deployment').find((d) => d.metadata.name.endsWith('-worker'));
      if (!worker) continue;
      checked.push(name);
      const c = podSpec(worker).containers[0];
      const nodeOptions = (c.env as { name: string; value?: string }[]).find((e) => e.name === 'NODE_OPTIONS')?.value;
      const cap = /--max-old-space-size=(\d+)/.exec(nodeOptions ?? '')?.[1];
      expect(cap, `${name}: the worker's NODE_OPTIONS cap the old space`).to.be.a('string');
      expect(Number(cap) + 96, name).to.be.at.most(mebibytes(c.resources.limits.memory));
    }
    expect(checked, 'value sets with a worker').to.include('defaults').and.include('production');
  });

  it('uses existingSecret and an IRSA ServiceAccount in production, with no Secret or static keys of its own', () => {
    const manifests = set('production');
    expect(findAll(manifests, 'Secret')).to.deep.equal([]);
    for (const d of findAll(manifests, 'Deployment')) {
      // One ServiceAccount, so one IAM role, per component.
      const component = d.metadata.name.slice(FULL.length + 1);
      expect(podSpec(d).serviceAccountName).to.equal(`${FULL}-${component}`);
      const sa = find(manifests, 'ServiceAccount', `${FULL}-${component}`);
      expect(sa.metadata.annotations?.['eks.amazonaws.com/role-arn']).to.equal(
        `arn:aws:iam::123456789012:role/form-data-${component}`,
      );
      const c = podSpec(d).containers[0];
      expect(c.image).to.equal(
        '123456789012.dkr.ecr.eu-west-1.amazonaws.com/form-data@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
      );
      const fromSecrets = (
        c.env as { name: string; valueFrom?: { secretKeyRef: { name: string; optional?: boolean } } }[]
      ).filter((e) => e.valueFrom);
      const env = Object.fromEntries(fromSecrets.map((e) => [e.name, e.valueFrom!.secretKeyRef]));
      const nodeOptions = (c.env as { name: string; value?: string }[]).find((e) => e.name === 'NODE_OPTIONS')?.value;
      expect(nodeOptions, `NODE_OPTIONS of ${c.name}`).to.equal(
        c.name === 'worker' ? '--max-semi-space-size=8 --max-old-space-size=256' : '--max-semi-space-size=16',
      );
      // Each component gets only the secrets it reads.
      const own = c.name === 'web' ? 'UI_SECRET' : 'DATABASE_URL';
      expect(Object.keys(env).sort()).to.deep.equal(
        [
          'AWS_ACCESS_KEY_ID',
          'AWS_SECRET_ACCESS_KEY',
          'SENTRY_DSN',
          own,
          ...(c.name === 'web' ? ['UI_SECRET_NEXT'] : []),
        ].sort(),
      );
      expect(env[own]).to.deep.equal({ name: 'form-data-credentials', key: own });
      expect(env.AWS_ACCESS_KEY_ID?.optional).to.equal(true);
      expect(env.SENTRY_DSN?.optional).to.equal(true);
    }
    const web = find(manifests, 'Deployment', `${FULL}-web`);
    expect(podSpec(web).topologySpreadConstraints[0].labelSelector.matchLabels['app.kubernetes.io/instance']).to.equal(
      RELEASE,
    );
    expect(
      findAll(manifests, 'NetworkPolicy')
        .map((n) => n.metadata.name)
        .sort(),
    ).to.deep.equal([`${FULL}-web`, `${FULL}-worker`]);
  });

  it('scales the worker with a KEDA ScaledObject on the SQS queue (keda mode) and omits replicas', () => {
    const manifests = set('keda');
    const worker = find(manifests, 'Deployment', `${FULL}-worker`);
    expect(worker.spec).to.not.have.property('replicas');
    expect(find(manifests, 'Deployment', `${FULL}-web`).spec.replicas).to.equal(2);
    const so = find(manifests, 'ScaledObject', `${FULL}-worker`);
    expect(so.spec.scaleTargetRef.name).to.equal(worker.metadata.name);
    expect(so.spec.minReplicaCount).to.equal(0);
    expect(so.spec.maxReplicaCount).to.equal(20);
    const [trigger] = so.spec.triggers;
    expect(trigger.type).to.equal('aws-sqs-queue');
    expect(trigger.metadata).to.include({
      queueURL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/directory-form-data',
      queueLength: '50',
      activationQueueLength: '1',
      awsRegion: 'eu-west-1',
      scaleOnInFlight: 'true',
    });
    const auth = find(manifests, 'TriggerAuthentication', trigger.authenticationRef.name);
    expect(auth.spec.podIdentity).to.deep.equal({ provider: 'aws', identityOwner: 'workload' });
    expect(findAll(manifests, 'HorizontalPodAutoscaler')).to.deep.equal([]);
  });

  it('gives the ScaledObject a KEDA fallback (one worker while its scaler fails) at minReplicas 0', async () => {
    const so = find(set('keda'), 'ScaledObject', `${FULL}-worker`);
    expect(so.spec.fallback).to.deep.equal({ failureThreshold: 3, replicas: 1 });
    const keda = { 'worker.autoscaling.enabled': true, 'worker.autoscaling.mode': 'keda' };
    const [atOne, forced, off] = await Promise.all([
      render({ release: RELEASE, set: { ...keda, 'worker.autoscaling.minReplicas': 1 } }),
      render({
        release: RELEASE,
        set: {
          ...keda,
          'worker.autoscaling.minReplicas': 2,
          'worker.autoscaling.keda.fallback.enabled': true,
          'worker.autoscaling.keda.fallback.replicas': 3,
          'worker.autoscaling.keda.fallback.failureThreshold': 5,
        },
      }),
      render({
        release: RELEASE,
        set: { ...keda, 'worker.autoscaling.minReplicas': 0, 'worker.autoscaling.keda.fallback.enabled': false },
      }),
    ]);
    const spec = (m: Manifest[]): Record<string, unknown> => find(m, 'ScaledObject', `${FULL}-worker`).spec;
    expect(spec(atOne), 'auto with minReplicas 1').to.not.have.property('fallback');
    expect(spec(forced).fallback).to.deep.equal({ failureThreshold: 5, replicas: 3 });
    expect(spec(off)).to.not.have.property('fallback');
    const refused = await renderError({ set: { ...keda, 'worker.autoscaling.keda.fallback.enabled': 'maybe' } });
    expect(refused).to.match(/fallback/);
  });

  it('scales the worker with an autoscaling/v2 HPA on an External queue-depth metric (hpa mode)', () => {
    const manifests = set('hpa');
    const worker = find(manifests, 'Deployment', `${FULL}-worker`);
    expect(worker.spec).to.not.have.property('replicas');
    const hpa = find(manifests, 'HorizontalPodAutoscaler', `${FULL}-worker`);
    expect(hpa.apiVersion).to.equal('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).to.deep.equal({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: worker.metadata.name,
    });
    expect(hpa.spec.metrics).to.deep.equal([
      {
        type: 'External',
        external: {
          metric: {
            name: 'sqs_approximate_number_of_messages_visible',
            selector: { matchLabels: { queue: 'directory-form-data' } },
          },
          target: { type: 'AverageValue', averageValue: '30' },
        },
      },
    ]);
    expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).to.equal(600);
    expect(findAll(manifests, 'ScaledObject')).to.deep.equal([]);
  });

  it('routes only the form endpoint through the default Ingress (metrics, probes and the OpenAPI document stay in the cluster)', async () => {
    const manifests = await render({ release: RELEASE, set: { 'web.ingress.enabled': 'true' } });
    const ingress = find(manifests, 'Ingress', `${FULL}-web`);
    expect(
      ingress.spec.rules.flatMap((r: { http: { paths: { path: string; pathType: string }[] } }) =>
        r.http.paths.map((p) => [p.path, p.pathType]),
      ),
    ).to.deep.equal([['/form', 'Prefix']]);
  });

  it('renders the Ingress and a CPU HPA for the web when asked, and omits the web replicas then', () => {
    const manifests = set('ingress-web-hpa');
    const web = find(manifests, 'Deployment', `${FULL}-web`);
    expect(web.spec).to.not.have.property('replicas');
    expect(find(manifests, 'Deployment', `${FULL}-worker`).spec.replicas).to.equal(1);
    const hpa = find(manifests, 'HorizontalPodAutoscaler', `${FULL}-web`);
    expect(hpa.spec.metrics[0].resource).to.deep.equal({
      name: 'cpu',
      target: { type: 'Utilization', averageUtilization: 60 },
    });
    const ingress = find(manifests, 'Ingress', `${FULL}-web`);
    expect(ingress.spec.rules[0].http.paths[0].backend.service).to.deep.equal({
      name: `${FULL}-web`,
      port: { name: 'http' },
    });
    expect(ingress.spec.tls[0].secretName).to.equal('forms-example-com-tls');
    expect(container(web, 'web').lifecycle.preStop).to.deep.equal({ exec: { command: ['sleep', '5'] } });
  });

  it('has a helm test Pod that calls the web readiness endpoint with the app image', () => {
    const manifests = set('defaults');
    const pod = find(manifests, 'Pod', `${FULL}-test-readiness`);
    expect(hook(pod)?.events).to.deep.equal(['test']);
    const c = pod.spec.containers[0];
    expect(c.image).to.equal(container(find(manifests, 'Deployment', `${FULL}-web`), 'web').image);
    expect(c.args.slice(0, 2)).to.deep.equal(['node', '-e']);
    expect(c.args[2]).to.include(`http://${FULL}-web:80/healthz/ready`);
    expect(pod.spec.restartPolicy).to.equal('Never');
  });

  it('has an end-to-end helm test Pod only when tests.endToEnd.enabled: signed post through the Service, row awaited', async () => {
    expect(set('defaults').some((m) => m.metadata.name === `${FULL}-test-end-to-end`)).to.equal(false);
    const manifests = await render({
      release: RELEASE,
      values: ['runtime.yaml'],
      set: { 'tests.endToEnd.enabled': true, 'tests.endToEnd.timeoutSeconds': 45 },
    });
    const pod = find(manifests, 'Pod', `${FULL}-test-end-to-end`);
    expect(hook(pod)?.events).to.deep.equal(['test']);
    expect(await validateManifests([pod])).to.deep.equal([]);
    const c = container(pod, 'end-to-end');
    expect(c.image).to.equal(container(find(manifests, 'Deployment', `${FULL}-web`), 'web').image);
    expect(c.args[2])
      .to.include(`http://${FULL}-web:80`)
      .and.include("'x-signature': signature")
      .and.include('45 * 1000');
    // UI_SECRET from the web's Secret (to sign), DATABASE_URL from the worker's (its role reads form_form).
    expect(
      c.env.map((e: { name: string; valueFrom: { secretKeyRef: { name: string } } }) => [
        e.name,
        e.valueFrom.secretKeyRef.name,
      ]),
    ).to.deep.equal([
      ['UI_SECRET', `${FULL}-web`],
      ['DATABASE_URL', `${FULL}-worker`],
    ]);
    expect(c.securityContext).to.deep.equal(
      container(find(manifests, 'Deployment', `${FULL}-web`), 'web').securityContext,
    );
  });

  it('creates the in-cluster PostgreSQL and SQS emulator only with the local values', () => {
    for (const [name, manifests] of rendered) {
      const local = manifests.filter((m) =>
        ['postgresql', 'sqs'].includes(m.metadata.labels?.['app.kubernetes.io/component'] ?? ''),
      );
      if (name === 'local') {
        expect(local.map((m) => `${m.kind}/${m.metadata.name}`).sort()).to.deep.equal([
          `Deployment/${FULL}-postgresql`,
          `Deployment/${FULL}-sqs`,
          `Service/${FULL}-postgresql`,
          `Service/${FULL}-sqs`,
        ]);
        const sqs = find(manifests, 'Deployment', `${FULL}-sqs`);
        expect(podSpec(sqs).containers[0].image).to.match(/^kibertoad\/fauxqs/);
        expect(find(manifests, 'Service', `${FULL}-sqs`).spec.ports[0].port).to.equal(4566);
        const config = find(manifests, 'ConfigMap', FULL).data as Record<string, string>;
        expect(config.SQS_ENDPOINT_URL).to.equal(`http://${FULL}-sqs:4566`);
        const dbUrl = Buffer.from(
          find(manifests, 'Secret', `${FULL}-worker`).data.DATABASE_URL as string,
          'base64',
        ).toString();
        expect(new URL(dbUrl).host).to.equal(`${FULL}-postgresql:5432`);
      } else {
        expect(local, name).to.deep.equal([]);
      }
    }
  });

  it('prints NOTES telling how to reach the web', async function () {
    const { stdout, stderr, code } = await helm([
      'install',
      RELEASE,
      CHART,
      '--dry-run=client',
      '--namespace',
      'forms',
      '-f',
      path.join(VALUES, 'production.yaml'),
    ]);
    if (code !== 0 && /cluster unreachable/.test(stderr)) {
      // Helm 3's client-side dry run still asks a cluster for its version.
      console.log('      (skipped: this helm needs a cluster for install --dry-run=client)');
      this.skip();
    }
    expect(code, stderr).to.equal(0);
    expect(stdout).to.include('NOTES:');
    expect(stdout).to.include(`port-forward service/${FULL}-web`);
    expect(stdout).to.include(`http://${FULL}-web.forms.svc:80/form/`);
    expect(stdout).to.match(
      /Database connections at the peak: \d+ worker pods \(\d+ \+ \d+ surge\) × 2 \(DATABASE_POOL_MAX\) \+ 1 \(migrations Job\) \+ 1 \(an export\) = \d+\./,
    );
  });

  describe('connection budget (database.maxConnections)', () => {
    // KEDA at 10 pods, the rolling-update surge of 3, DATABASE_POOL_MAX 2, the migrations Job and an export: 28.
    const set = { 'worker.autoscaling.enabled': true, 'worker.autoscaling.maxReplicas': 10 };

    it('refuses a peak above database.maxConnections, naming each term', async () => {
      const stderr = await renderError({ set: { ...set, 'database.maxConnections': 27 } });
      expect(stderr).to.include(
        'database.maxConnections is 27 but this release can open 28 database connections: 13 worker pods (10 + 3 surge) × 2 (DATABASE_POOL_MAX) + 1 (migrations Job) + 1 (an export) = 28',
      );
    });

    it('accepts the peak exactly, and follows DATABASE_POOL_MAX, the replicas and the migrations switch', async () => {
      await render({ set: { ...set, 'database.maxConnections': 28 } });
      const stderr = await renderError({
        set: { ...set, 'config.DATABASE_POOL_MAX': 10, 'migrations.enabled': false, 'database.maxConnections': 100 },
      });
      expect(stderr).to.include(
        '13 worker pods (10 + 3 surge) × 10 (DATABASE_POOL_MAX) + 0 (migrations Job) + 1 (an export) = 131',
      );
      await render({
        set: { 'worker.autoscaling.enabled': false, 'worker.replicaCount': 1, 'database.maxConnections': 6 },
      });
    });
  });

  describe('refused values', () => {
    // Schema messages: Helm 4 (and Helm >= 3.18) names the value as a JSON
    // pointer, older Helm 3 with dots; both wordings are accepted.
    const cases: { file: string; message: RegExp }[] = [
      {
        file: 'grace-not-above-wait.yaml',
        message: /worker\.terminationGracePeriodSeconds \(20\) must exceed config\.SQS_WAIT_TIME \(20\)/,
      },
      { file: 'both-secrets.yaml', message: /existingSecret and inline secrets\.\* are mutually exclusive/ },
      {
        file: 'keda-too-old.yaml',
        message: /operatorVersion is 2\.18\.3; the chart needs KEDA 2\.19\.0 or later.*kedacore\/keda#7244/,
      },
      {
        file: 'unknown-mode.yaml',
        message: /worker[./]autoscaling[./]mode.*one of (the following: )?["']keda["'], ["']hpa["']/,
      },
      {
        file: 'wrong-type-wait.yaml',
        message: /config[./]SQS_WAIT_TIME.*(got string, want integer|Expected: integer, given: string)/,
      },
      {
        file: 'wrong-type-replicas.yaml',
        message: /web[./]replicaCount.*(got string, want integer|Expected: integer, given: string)/,
      },
      { file: 'wait-out-of-range.yaml', message: /config[./]SQS_WAIT_TIME.*(maximum|less than or equal to 20)/ },
      {
        file: 'unknown-key.yaml',
        message: /config.*(SQS_WAIT_TIMEOUT.*not allowed|property SQS_WAIT_TIMEOUT is not allowed)/,
      },
    ];

    it('keeps a test case for every file in test/chart/values/refused/', async () => {
      const files = (await readdir(path.join(VALUES, 'refused'))).filter((f) => f.endsWith('.yaml')).sort();
      expect(files).to.deep.equal(cases.map((c) => c.file).sort());
    });

    for (const { file, message } of cases) {
      it(`refuses ${file} with a clear message, under Helm 4 and Helm 3`, async () => {
        const { helm4, helm3 } = await renderErrors({ values: [path.join(VALUES, 'refused', file)] });
        expect(helm4).to.match(message);
        expect(helm3).to.match(message);
      });
    }

    it('refuses values against the schema in helm lint too', async () => {
      // (Helm's lint mode only logs a template's `fail`; the schema is enforced.)
      const results = await Promise.all(
        ['unknown-mode.yaml', 'wrong-type-wait.yaml', 'unknown-key.yaml'].flatMap((file) =>
          ([4, 3] as const).map((major) => helm(['lint', CHART, '-f', path.join(VALUES, 'refused', file)], major)),
        ),
      );
      for (const result of results) {
        expect(result.code).to.not.equal(0);
        expect(result.stdout + result.stderr).to.match(/don't meet the specifications of the schema/);
      }
    });

    it('refuses an unknown autoscaling mode in the templates too (schema validation skipped)', async () => {
      const stderr = await renderError({
        values: [path.join(VALUES, 'refused', 'unknown-mode.yaml')],
        extraArgs: ['--skip-schema-validation'],
      });
      expect(stderr).to.match(/worker\.autoscaling\.mode must be "keda" or "hpa", not "cron"/);
    });

    it('refuses a web grace period that does not cover preStop plus SHUTDOWN_DELAY_MS', async () => {
      const stderr = await renderError({ set: { 'web.terminationGracePeriodSeconds': 10 } });
      expect(stderr).to.match(/web\.terminationGracePeriodSeconds \(10\) must exceed/);
    });
  });
});
