/**
 * Monitoring in the chart: ServiceMonitors for the web and the worker (with the
 * worker's metrics Service), the PrometheusRule and the Grafana dashboard.
 * Rendered objects of the built-in API are validated against the Kubernetes
 * API types, the ServiceMonitors field by field and the rule groups by
 * `promtool check rules` (custom resources have no schema here: see
 * SCHEMALESS_KINDS in helm.ts), every PromQL expression is parsed with
 * Prometheus' own grammar, and every metric name the expressions use is looked
 * up in what a real web and a real worker export.
 */
import { expect } from 'chai';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { parse } from 'yaml';
import { startEmulator, queueCounts, type Emulator } from '../../harness/sqs.ts';
import { createTestEnv, eventually, type TestEnv } from '../support/stack.ts';
import { validForm } from '../../harness/forms.ts';
import { startProcess, type ProcessHandle } from '../../harness/process.ts';
import { freePort } from '../../harness/ports.ts';
import { jsonBody, post } from '../../harness/http.ts';
import {
  CHART,
  ROOT,
  VALUES,
  find,
  findAll,
  helm,
  render,
  renderError,
  SCHEMALESS_KINDS,
  validateManifests,
  type Manifest,
} from './helm.ts';
import { parsePromQL, substituteGrafanaVariables, type Selector } from './promql.ts';
import { familyOf, parseExposition, type Exposition } from './exposition.ts';
import { subheadings } from '../support/markdown.ts';
import { promtool, writeRuleFile } from './prometheus.ts';
import { requireTool, TOOLS } from '../support/tools.ts';

const RELEASE = 'form-data';
const FULL = 'form-data'; // the release name holds the chart name
const NAMESPACE = 'forms';
const WEB_JOB = `${FULL}-web`;
const WORKER_JOB = `${FULL}-worker`;
const MONITORING_VALUES = 'monitoring.yaml';
const ALL_ON = {
  'monitoring.serviceMonitor.enabled': true,
  'monitoring.prometheusRule.enabled': true,
  'monitoring.dashboard.enabled': true,
};
const DASHBOARD_KEY = 'form-data.json';

/** The page the alerts' runbook_url points at (chart default: this path), and its section of runbooks. */
const RUNBOOK_PAGE = 'docs/operating.md';
const RUNBOOK_SECTION = 'Alerts';
const RUNBOOK_BASE = `https://git.example.com/forms/form-data/-/blob/main/${RUNBOOK_PAGE}`; // test/chart/values/monitoring.yaml

/** The alerts' keys under monitoring.prometheusRule.alerts. */
const ALERT_KEYS = [
  'queueBackingUp',
  'oldestMessageTooOld',
  'invalidMessages',
  'workerNotPolling',
  'workerDown',
  'databaseDown',
  'webErrorRate',
  'enqueueFailures',
  'webDown',
  'formsNotStored',
  'scalerErrors',
];

/** What Grafana would put in for the dashboard's variables. */
const GRAFANA_VALUES: Record<string, string> = {
  namespace: NAMESPACE,
  web_job: WEB_JOB,
  worker_job: WORKER_JOB,
  datasource: 'prometheus',
  __rate_interval: '1m',
  __interval: '30s',
  __range: '1h',
};

/** Series Prometheus makes itself rather than scrapes. */
const PROMETHEUS_SERIES = new Set(['up']);

/** Labels Prometheus adds to scraped series (not in the services' output). */
const TARGET_LABELS = new Set(['job', 'namespace', 'instance', 'pod', 'service', 'endpoint', 'container', '__name__']);

/** Metric families the dashboard must chart (the list of panels). */
const DASHBOARD_METRICS = [
  'form_data_http_requests_total',
  'form_data_http_request_duration_seconds_bucket',
  'form_data_forms_accepted_total',
  'form_data_forms_refused_total',
  'form_data_forms_enqueue_failed_total',
  'form_data_sqs_send_duration_seconds_bucket',
  'form_data_sqs_send_batch_size_bucket',
  'form_data_sqs_messages_visible',
  'form_data_sqs_messages_in_flight',
  'form_data_worker_oldest_message_age_seconds',
  'form_data_worker_messages_total',
  'form_data_worker_invalid_messages_total',
  'form_data_worker_batch_duration_seconds_bucket',
  'form_data_worker_poll_loops_busy',
  'form_data_worker_last_poll_age_seconds',
  'form_data_worker_dependency_up',
  'process_resident_memory_bytes',
  'process_cpu_seconds_total',
  'nodejs_eventloop_lag_p99_seconds',
];

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface Target {
  refId: string;
  expr: string;
  datasource?: { type: string; uid: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}

interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  datasource?: { type: string; uid: string };
}

interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

/** A PromQL expression and where it comes from. */
interface Expression {
  where: string;
  expr: string;
}

/**
 * `promtool check rules` on the rule groups of the rendered PrometheusRule (a custom resource: no schema here).
 * Without promtool it skips the test, or fails it under CI (requireTool).
 */
async function checkRules(context: Mocha.Context, manifests: readonly Manifest[], what: string): Promise<void> {
  const bin = await requireTool(context, TOOLS.promtool);
  const dir = await mkdtemp(path.join(tmpdir(), 'form-data-promtool-'));
  try {
    await writeRuleFile(path.join(dir, 'rules.yaml'), manifests);
    const result = await promtool(bin, ['check', 'rules', 'rules.yaml'], dir);
    expect(result.code, `${what}: ${result.output}`).to.equal(0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function rulesOf(manifests: readonly Manifest[]): Rule[] {
  const groups = findAll(manifests, 'PrometheusRule').flatMap((r) => r.spec.groups as { rules?: Rule[] }[]);
  return groups.flatMap((g) => g.rules ?? []);
}

function alertsOf(manifests: readonly Manifest[]): Map<string, Rule> {
  return new Map(
    rulesOf(manifests)
      .filter((r) => r.alert)
      .map((r) => [r.alert!, r]),
  );
}

function isDashboard(m: Manifest, label = 'grafana_dashboard'): boolean {
  return m.kind === 'ConfigMap' && m.metadata.labels?.[label] !== undefined;
}

function dashboardOf(
  manifests: readonly Manifest[],
  label = 'grafana_dashboard',
): { configMap: Manifest; dashboard: Dashboard } {
  const configMaps = manifests.filter((m) => isDashboard(m, label));
  expect(configMaps, 'dashboard ConfigMaps').to.have.length(1);
  const configMap = configMaps[0]!;
  return { configMap, dashboard: JSON.parse(configMap.data[DASHBOARD_KEY] as string) as Dashboard };
}

/** ServiceMonitors, PodMonitors, PrometheusRules, the dashboard ConfigMap and the worker's metrics Service. */
function isMonitoringObject(m: Manifest): boolean {
  return (
    ['ServiceMonitor', 'PodMonitor', 'PrometheusRule'].includes(m.kind) ||
    isDashboard(m) ||
    (m.kind === 'Service' && m.metadata.name === WORKER_JOB)
  );
}

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : v.query.query;
}

/** The expressions of the alerts, the dashboard's targets and the selectors of its variable queries, Grafana variables filled in. */
function expressionsOf(manifests: readonly Manifest[]): Expression[] {
  const out: Expression[] = rulesOf(manifests).map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr }));
  const { dashboard } = dashboardOf(manifests);
  for (const panel of dashboard.panels) {
    for (const t of panel.targets ?? [])
      out.push({
        where: `panel "${panel.title}" ${t.refId}`,
        expr: substituteGrafanaVariables(t.expr, GRAFANA_VALUES),
      });
  }
  for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
    const call = /^label_values\((.+),\s*[A-Za-z_]\w*\)$/.exec(variableQuery(v).trim());
    if (call) out.push({ where: `variable ${v.name}`, expr: substituteGrafanaVariables(call[1]!, GRAFANA_VALUES) });
  }
  return out;
}

function selectorsOf(expressions: readonly Expression[]): { where: string; selector: Selector }[] {
  return expressions.flatMap(({ where, expr }) => parsePromQL(expr).selectors.map((selector) => ({ where, selector })));
}

function labelsMatch(labels: Record<string, string> | undefined, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([k, v]) => labels?.[k] === v);
}

describe('chart monitoring: ServiceMonitors, PrometheusRule, Grafana dashboard', function () {
  this.timeout(120_000);
  let off: Manifest[];
  let on: Manifest[];
  let full: Manifest[];

  before(async function () {
    this.timeout(120_000);
    [off, on, full] = await Promise.all([
      render({ release: RELEASE, namespace: NAMESPACE }),
      render({ release: RELEASE, namespace: NAMESPACE, set: ALL_ON }),
      render({ release: RELEASE, namespace: NAMESPACE, values: [MONITORING_VALUES] }),
    ]);
  });

  it('passes helm lint --strict with monitoring on', async () => {
    const results = await Promise.all([
      helm(['lint', '--strict', CHART, '-f', path.join(VALUES, MONITORING_VALUES)]),
      helm(['lint', '--strict', CHART, ...Object.entries(ALL_ON).flatMap(([k, v]) => ['--set', `${k}=${String(v)}`])]),
    ]);
    for (const r of results) expect(r.code, r.stdout + r.stderr).to.equal(0);
  });

  it('renders no monitoring object by default, and changes nothing else when monitoring is on', async () => {
    expect(off.filter(isMonitoringObject).map((m) => `${m.kind}/${m.metadata.name}`)).to.deep.equal([]);
    expect(findAll(off, 'Service').map((s) => s.metadata.name)).to.deep.equal([WEB_JOB]);
    expect(
      on
        .filter(isMonitoringObject)
        .map((m) => `${m.kind}/${m.metadata.name}`)
        .sort(),
    ).to.deep.equal([
      `ConfigMap/${FULL}-dashboard`,
      `PrometheusRule/${FULL}`,
      `Service/${WORKER_JOB}`,
      `ServiceMonitor/${WEB_JOB}`,
      `ServiceMonitor/${WORKER_JOB}`,
    ]);
    expect(on.filter((m) => !isMonitoringObject(m))).to.deep.equal(off);
    // The same with a NetworkPolicy: it already lets networkPolicy.metricsFrom in.
    const [prodOff, prodOn] = await Promise.all([
      render({ release: RELEASE, namespace: NAMESPACE, values: ['production.yaml'] }),
      render({ release: RELEASE, namespace: NAMESPACE, values: ['production.yaml'], set: ALL_ON }),
    ]);
    expect(findAll(prodOff, 'NetworkPolicy')).to.have.length(2);
    expect(prodOn.filter((m) => !isMonitoringObject(m))).to.deep.equal(prodOff);
  });

  it('renders objects of the built-in API valid against the Kubernetes API types; the rest are custom resources checked elsewhere', async () => {
    const monitoring = full.filter(isMonitoringObject);
    expect(monitoring.map((m) => m.kind).sort()).to.deep.equal([
      'ConfigMap',
      'PrometheusRule',
      'Service',
      'ServiceMonitor',
      'ServiceMonitor',
    ]);
    const custom = monitoring.filter((m) => SCHEMALESS_KINDS[`${m.apiVersion} ${m.kind}`] !== undefined);
    expect(custom.map((m) => m.kind).sort()).to.deep.equal(['PrometheusRule', 'ServiceMonitor', 'ServiceMonitor']);
    expect(await validateManifests(monitoring.filter((m) => !custom.includes(m)))).to.deep.equal([]);
    // The validation does catch a malformed object.
    const broken = structuredClone(find(full, 'Service', WORKER_JOB));
    broken.spec.ports[0].port = 'metrics';
    const [failure] = await validateManifests([broken]);
    expect(failure).to.match(/\/spec\/ports\/0\/port: Type 'string' is not assignable to type 'number'/);
    // ServiceMonitor intervals: values.schema.json refuses a malformed one (see 'refuses ... values' below).
  });

  it('scrapes /metrics of the web Service and of a worker metrics Service that select the right pods and ports', () => {
    const config = find(full, 'ConfigMap', FULL).data as Record<string, string>;
    for (const [component, job, containerName] of [
      ['web', WEB_JOB, 'web'],
      ['worker', WORKER_JOB, 'worker'],
    ] as const) {
      const sm = find(full, 'ServiceMonitor', job);
      expect(sm.metadata.namespace).to.equal(NAMESPACE);
      expect(sm.metadata.labels?.release, 'labels for the serviceMonitorSelector').to.equal('kube-prometheus-stack');
      expect(sm.spec.namespaceSelector).to.deep.equal({ matchNames: [NAMESPACE] });
      const services = findAll(full, 'Service').filter((s) =>
        labelsMatch(s.metadata.labels, sm.spec.selector.matchLabels as Record<string, string>),
      );
      expect(
        services.map((s) => s.metadata.name),
        `Services ${sm.metadata.name} selects`,
      ).to.deep.equal([job]); // job label = Service name
      const service = services[0]!;
      const deployment = find(full, 'Deployment', `${FULL}-${component}`);
      expect(service.spec.selector).to.deep.equal(deployment.spec.selector.matchLabels);
      expect(sm.spec.endpoints).to.have.length(1);
      const endpoint = sm.spec.endpoints[0];
      expect(endpoint).to.include({ path: '/metrics', scheme: 'http', interval: '15s', scrapeTimeout: '5s' });
      expect(endpoint.metricRelabelings).to.deep.equal([
        { action: 'drop', sourceLabels: ['__name__'], regex: 'nodejs_gc_duration_seconds_bucket' },
      ]);
      const port = (service.spec.ports as { name: string; port: number; targetPort: string | number }[]).find(
        (p) => p.name === endpoint.port,
      );
      expect(port, `${job}: port ${endpoint.port as string}`).to.not.equal(undefined);
      const container = (
        deployment.spec.template.spec.containers as { name: string; ports: { name: string; containerPort: number }[] }[]
      ).find((c) => c.name === containerName)!;
      const containerPort = container.ports.find((p) => p.name === port!.targetPort);
      expect(containerPort, `${job}: targetPort ${String(port!.targetPort)} is a container port`).to.not.equal(
        undefined,
      );
      expect(String(containerPort!.containerPort)).to.equal(
        component === 'web' ? config.METRICS_PORT : config.HEALTH_PORT,
      );
    }
    const workerService = find(full, 'Service', WORKER_JOB);
    expect(workerService.spec).to.include({ type: 'ClusterIP', clusterIP: 'None' });
  });

  it('renders only the enabled components, and into another namespace that selects the release namespace', async () => {
    const [noWorker, noWeb, elsewhere] = await Promise.all([
      render({ release: RELEASE, namespace: NAMESPACE, set: { ...ALL_ON, 'worker.enabled': false } }),
      render({ release: RELEASE, namespace: NAMESPACE, set: { ...ALL_ON, 'web.enabled': false } }),
      render({
        release: RELEASE,
        namespace: NAMESPACE,
        set: {
          ...ALL_ON,
          'monitoring.serviceMonitor.namespace': 'monitoring',
          'monitoring.prometheusRule.namespace': 'monitoring',
          'monitoring.dashboard.namespace': 'grafana',
        },
      }),
    ]);
    expect(findAll(noWorker, 'ServiceMonitor').map((s) => s.metadata.name)).to.deep.equal([WEB_JOB]);
    expect(findAll(noWorker, 'Service').map((s) => s.metadata.name)).to.deep.equal([WEB_JOB]);
    expect([...alertsOf(noWorker).keys()].sort()).to.deep.equal([
      'FormDataEnqueueFailures',
      'FormDataWebDown',
      'FormDataWebErrorRate',
    ]);
    expect(findAll(noWeb, 'ServiceMonitor').map((s) => s.metadata.name)).to.deep.equal([WORKER_JOB]);
    expect(
      [...alertsOf(noWeb).keys()].every((a) => !a.startsWith('FormDataWeb') && a !== 'FormDataEnqueueFailures'),
    ).to.equal(true);

    // Objects in a shared namespace are prefixed with the release namespace.
    for (const sm of findAll(elsewhere, 'ServiceMonitor')) {
      expect(sm.metadata.namespace).to.equal('monitoring');
      expect(sm.metadata.name).to.match(new RegExp(`^${NAMESPACE}-${FULL}-(web|worker)$`));
      expect(sm.spec.namespaceSelector).to.deep.equal({ matchNames: [NAMESPACE] });
    }
    expect(findAll(elsewhere, 'PrometheusRule').map((r) => `${r.metadata.namespace}/${r.metadata.name}`)).to.deep.equal(
      [`monitoring/${NAMESPACE}-${FULL}`],
    );
    expect(dashboardOf(elsewhere).configMap.metadata).to.include({
      namespace: 'grafana',
      name: `${NAMESPACE}-${FULL}-dashboard`,
    });
    // The series keep the namespace of the pods.
    for (const rule of rulesOf(elsewhere)) expect(rule.expr, rule.alert).to.include(`namespace="${NAMESPACE}"`);
  });

  it('lets networkPolicy.metricsFrom through the NetworkPolicies to the port each ServiceMonitor scrapes', async () => {
    const metricsFrom = [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
      },
    ];
    for (const sm of findAll(full, 'ServiceMonitor')) {
      const service = find(full, 'Service', sm.metadata.name);
      const targetPort = (service.spec.ports as { name: string; targetPort: string }[]).find(
        (p) => p.name === sm.spec.endpoints[0].port,
      )!.targetPort;
      const policies = findAll(full, 'NetworkPolicy').filter((np) =>
        labelsMatch(
          service.spec.selector as Record<string, string>,
          np.spec.podSelector.matchLabels as Record<string, string>,
        ),
      );
      expect(policies, `NetworkPolicies of ${service.metadata.name}'s pods`).to.have.length(1);
      const rules = (policies[0]!.spec.ingress as { ports: { port: string }[]; from?: unknown[] }[]).filter((r) =>
        r.ports.some((p) => p.port === targetPort),
      );
      expect(rules, `ingress rules to port ${targetPort}`).to.have.length.greaterThan(0);
      expect(
        rules.some(
          (r) => r.from === undefined || metricsFrom.every((peer) => r.from!.some((f) => isDeepStrictEqual(f, peer))),
        ),
        `${sm.metadata.name}: Prometheus may reach ${targetPort}`,
      ).to.equal(true);
    }
    // webFrom restricts the form port only: /metrics has a port of its own, which metricsFrom alone governs.
    const restricted = await render({
      set: {
        ...ALL_ON,
        'networkPolicy.enabled': true,
        'networkPolicy.webFrom[0].namespaceSelector.matchLabels.name': 'ingress',
      },
    });
    const rules = find(restricted, 'NetworkPolicy', `${FULL}-web`).spec.ingress as {
      ports: { port: string }[];
      from?: unknown[];
    }[];
    expect(rules.find((r) => r.ports[0]!.port === 'metrics')?.from, 'metrics port without metricsFrom').to.equal(
      undefined,
    );
    expect(rules.find((r) => r.ports[0]!.port === 'http')?.from).to.have.length(2); // webFrom and the helm test Pod
  });

  it('gives every alert a severity, summary, description and a runbook_url to its own runbook heading', async () => {
    const runbooks = subheadings(await readFile(path.join(ROOT, RUNBOOK_PAGE), 'utf8'), RUNBOOK_SECTION).map(
      (h) => h.anchor,
    );
    expect(runbooks, `runbook headings under ${RUNBOOK_PAGE} → ${RUNBOOK_SECTION}`).to.have.length.greaterThan(0);
    const alerts = alertsOf(full);
    const used: string[] = [];
    for (const [name, rule] of alerts) {
      expect(rule.labels?.severity, `${name} severity`).to.be.oneOf(['critical', 'warning']);
      expect(rule.labels?.team, `${name}: additionalAlertLabels`).to.equal('forms');
      expect(rule.for, `${name} for`).to.match(/^\d+[smh]$/);
      expect(rule.annotations?.summary, `${name} summary`).to.be.a('string').and.not.equal('');
      expect(rule.annotations?.description, `${name} description`).to.be.a('string').with.length.greaterThan(40);
      const url = rule.annotations?.runbook_url ?? '';
      expect(url.startsWith(`${RUNBOOK_BASE}#`), `${name} runbook_url ${url}`).to.equal(true);
      const anchor = url.slice(RUNBOOK_BASE.length + 1);
      expect(runbooks, `${name}: #${anchor} is a runbook heading of ${RUNBOOK_PAGE}`).to.include(anchor);
      used.push(anchor);
    }
    // One runbook per alert, and no runbook without its alert.
    // FormDataScalerErrors renders only with KEDA and alerts.scalerErrors on (alerts.test.ts checks its runbook).
    const rendered = runbooks.filter((anchor) => anchor !== 'scaler-errors');
    expect([...used].sort(), 'runbooks the alerts link to').to.deep.equal([...rendered].sort());
    expect(alerts.get('FormDataWorkerDown')!.labels?.namespace, 'absent() carries no namespace').to.equal(NAMESPACE);
    // The default base is the runbook page's path in the repository.
    for (const rule of alertsOf(on).values())
      expect(rule.annotations?.runbook_url).to.match(new RegExp(`^${RUNBOOK_PAGE.replaceAll('.', '\\.')}#[a-z0-9-]+$`));
  });

  it('scopes every series the alerts read to the release (namespace and job as the ServiceMonitors produce them) and aggregates across replicas', () => {
    const jobs = new Set([WEB_JOB, WORKER_JOB]);
    for (const rule of rulesOf(full)) {
      for (const { selector } of selectorsOf([{ where: rule.alert!, expr: rule.expr }])) {
        const m = Object.fromEntries(selector.matchers.filter((x) => x.op === '=').map((x) => [x.label, x.value]));
        expect(m.namespace, `${rule.alert!}: ${selector.text}`).to.equal(NAMESPACE);
        expect(jobs.has(m.job ?? ''), `${rule.alert!}: ${selector.text}`).to.equal(true);
        const isWorker = selector.names.some(
          (n) => n.startsWith('form_data_worker_') || n.startsWith('form_data_sqs_messages_'),
        );
        if (isWorker) expect(m.job, `${rule.alert!}: ${selector.text}`).to.equal(WORKER_JOB);
      }
    }
    const alerts = alertsOf(full);
    expect(alerts.get('FormDataQueueBackingUp')!.expr).to.match(
      /max by \(namespace, queue\) \(\s*form_data_sqs_messages_visible\{[^}]*queue="directory-form-data"\}/,
    );
    expect(alerts.get('FormDataInvalidMessages')!.expr).to.match(
      /max by \(namespace, queue\) \(\s*form_data_sqs_messages_visible\{[^}]*queue="directory-form-data-invalid"\}/,
    );
    expect(alerts.get('FormDataInvalidMessages')!.expr).to.match(
      /sum by \(namespace\) \(\s*increase\(form_data_worker_invalid_messages_total/,
    );
    expect(alerts.get('FormDataDatabaseDown')!.expr).to.match(
      /max by \(namespace\) \(\s*form_data_worker_dependency_up\{[^}]*dependency="database"\}\s*\) == 0/,
    );
    expect(alerts.get('FormDataWorkerDown')!.expr).to.equal(
      `absent(up{namespace="${NAMESPACE}", job="${WORKER_JOB}"} == 1)`,
    );
    expect(alerts.get('FormDataWebDown')!.expr).to.equal(`absent(up{namespace="${NAMESPACE}", job="${WEB_JOB}"} == 1)`);
  });

  it('takes thresholds, windows, for and severity from the values; disables single alerts; appends extraRules; takes other selectors', async function () {
    const alerts = alertsOf(full);
    expect(alerts.get('FormDataQueueBackingUp')).to.deep.include({ for: '20m' });
    expect(alerts.get('FormDataQueueBackingUp')!.expr).to.match(/\) > 250$/);
    expect(alerts.get('FormDataWebErrorRate')!.expr).to.match(/> 0\.1$/);
    const [tuned, keda] = await Promise.all([
      render({
        release: RELEASE,
        namespace: NAMESPACE,
        set: {
          'monitoring.prometheusRule.enabled': true,
          'monitoring.prometheusRule.alerts.databaseDown.enabled': false,
          'monitoring.prometheusRule.alerts.oldestMessageTooOld.thresholdSeconds': 600,
          'monitoring.prometheusRule.alerts.oldestMessageTooOld.window': '10m',
          'monitoring.prometheusRule.alerts.enqueueFailures.severity': 'info',
          'monitoring.prometheusRule.alerts.enqueueFailures.window': '30m',
          'monitoring.prometheusRule.selectors.worker': 'job="custom-worker"',
          'monitoring.prometheusRule.extraRules[0].alert': 'FormDataCustom',
          'monitoring.prometheusRule.extraRules[0].expr': 'vector(1)',
          'monitoring.prometheusRule.extraRules[0].labels.severity': 'info',
          'config.SQS_FORM_DATA_QUEUE_NAME': 'other-queue',
        },
      }),
      render({
        release: RELEASE,
        namespace: NAMESPACE,
        set: {
          ...ALL_ON,
          'worker.autoscaling.enabled': true,
          'worker.autoscaling.mode': 'keda',
          'worker.autoscaling.minReplicas': 0,
        },
      }),
    ]);
    const t = alertsOf(tuned);
    expect(t.has('FormDataDatabaseDown')).to.equal(false);
    expect(t.get('FormDataOldestMessageTooOld')!.expr).to.match(/\[10m\]\)\s*\) > 600$/);
    expect(t.get('FormDataEnqueueFailures')!.labels?.severity).to.equal('info');
    expect(t.get('FormDataEnqueueFailures')!.expr).to.include('[30m]');
    expect(t.get('FormDataQueueBackingUp')!.expr).to.include(
      'form_data_sqs_messages_visible{job="custom-worker", queue="other-queue"}',
    );
    expect(t.get('FormDataCustom')).to.deep.equal({
      alert: 'FormDataCustom',
      expr: 'vector(1)',
      labels: { severity: 'info' },
    });
    await checkRules(this, tuned, 'tuned');
    // KEDA may scale the worker to zero: no target then is normal.
    expect(alertsOf(keda).get('FormDataWorkerDown')!.expr).to.equal(
      `sum by (namespace) (up{namespace="${NAMESPACE}", job="${WORKER_JOB}"}) == 0`,
    );

    const values = parse(await readFile(path.join(CHART, 'values.yaml'), 'utf8')) as {
      monitoring: { prometheusRule: { alerts: Record<string, unknown> } };
    };
    expect(Object.keys(values.monitoring.prometheusRule.alerts)).to.deep.equal(ALERT_KEYS);
    const none = await render({
      set: {
        'monitoring.prometheusRule.enabled': true,
        ...Object.fromEntries(ALERT_KEYS.map((k) => [`monitoring.prometheusRule.alerts.${k}.enabled`, false])),
      },
    });
    const rule = find(none, 'PrometheusRule', FULL);
    expect(rule.spec.groups[0].rules, 'every alert disabled').to.deep.equal([]);
    await checkRules(this, none, 'every alert disabled');
  });

  it('ships the Grafana dashboard in a ConfigMap for the sidecar, with a datasource variable and panels with targets', async () => {
    const { configMap, dashboard } = dashboardOf(full);
    expect(configMap.metadata).to.deep.include({
      name: `${NAMESPACE}-${FULL}-dashboard`,
      namespace: 'grafana',
      annotations: { grafana_folder: 'Forms' },
    });
    expect(configMap.metadata.labels).to.include({ grafana_dashboard: '1', team: 'forms' });
    expect(Object.keys(configMap.data as Record<string, string>)).to.deep.equal([DASHBOARD_KEY]);
    expect(dashboard.uid).to.equal('form-data');
    expect(dashboard.title).to.equal('form-data');

    const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(variables.get('datasource')).to.deep.include({ type: 'datasource', query: 'prometheus' });
    for (const name of ['namespace', 'web_job', 'worker_job']) {
      expect(variables.get(name)?.type, `variable ${name}`).to.equal('query');
      expect(variables.get(name)?.datasource?.uid).to.equal('${datasource}');
    }

    const charts = dashboard.panels.filter((p) => p.type !== 'row');
    expect(charts.length).to.be.greaterThan(15);
    expect(new Set(dashboard.panels.map((p) => p.id)).size, 'unique panel ids').to.equal(dashboard.panels.length);
    for (const panel of charts) {
      expect(panel.datasource?.uid, `panel ${panel.title}`).to.equal('${datasource}');
      expect(panel.targets, `panel ${panel.title}`).to.be.an('array').that.is.not.empty;
      expect(new Set(panel.targets!.map((t) => t.refId)).size, `refIds of ${panel.title}`).to.equal(
        panel.targets!.length,
      );
      for (const t of panel.targets!) expect(t.expr, `${panel.title} ${t.refId}`).to.be.a('string').and.match(/\S/);
      expect(panel.gridPos.x + panel.gridPos.w, `panel ${panel.title} fits`).to.be.at.most(24);
    }
    const used = new Set(
      selectorsOf(expressionsOf(full).filter((e) => !e.where.startsWith('rule'))).flatMap((s) => s.selector.names),
    );
    expect(
      DASHBOARD_METRICS.filter((m) => !used.has(m)),
      'metrics the dashboard must chart',
    ).to.deep.equal([]);

    const [renamed, otherLabel] = await Promise.all([
      render({
        set: {
          'monitoring.dashboard.enabled': true,
          'monitoring.dashboard.uid': 'form-data-staging',
          'monitoring.dashboard.title': 'form-data (staging)',
        },
      }),
      render({
        set: {
          'monitoring.dashboard.enabled': true,
          'monitoring.dashboard.sidecarLabel': 'dashboards',
          'monitoring.dashboard.sidecarLabelValue': 'forms',
        },
      }),
    ]);
    const r = dashboardOf(renamed).dashboard;
    expect([r.uid, r.title]).to.deep.equal(['form-data-staging', 'form-data (staging)']);
    expect(r.panels).to.deep.equal(dashboard.panels);
    expect(dashboardOf(otherLabel, 'dashboards').configMap.metadata.labels?.dashboards).to.equal('forms');
  });

  it('writes every PromQL expression (alerts, dashboard targets, variable queries) so that Prometheus parses it', async () => {
    // The check itself finds errors.
    expect(parsePromQL('sum(rate(form_data_http_requests_total[5m])').errors).to.not.deep.equal([]);
    expect(parsePromQL('form_data_http_requests_total{route="/form/"').errors).to.not.deep.equal([]);

    const keda = await render({
      release: RELEASE,
      namespace: NAMESPACE,
      set: { ...ALL_ON, 'worker.autoscaling.enabled': true, 'worker.autoscaling.minReplicas': 0 },
    });
    const expressions = [...expressionsOf(full), ...expressionsOf(keda)];
    expect(expressions.length).to.be.greaterThan(40);
    const failures = expressions.flatMap(({ where, expr }) => parsePromQL(expr).errors.map((e) => `${where}: ${e}`));
    expect(failures).to.deep.equal([]);
    for (const { where, expr } of expressions)
      expect(parsePromQL(expr).selectors.length, `${where} reads no series`).to.be.greaterThan(0);
  });

  it('refuses malformed monitoring values (schema)', async () => {
    const cases: [Record<string, string | number | boolean>, RegExp][] = [
      [{ 'monitoring.serviceMonitor.interval': '30 seconds' }, /monitoring[./]serviceMonitor[./]interval/],
      [
        { 'monitoring.prometheusRule.alerts.queueBackingUp.for': 'soon' },
        /monitoring[./]prometheusRule[./]alerts[./]queueBackingUp[./]for/,
      ],
      [
        { 'monitoring.prometheusRule.alerts.invalidMessages.window': '0m' },
        /monitoring[./]prometheusRule[./]alerts[./]invalidMessages[./]window/,
      ],
      [
        { 'monitoring.prometheusRule.alerts.webErrorRate.ratio': 5 },
        /monitoring[./]prometheusRule[./]alerts[./]webErrorRate[./]ratio/,
      ],
      [{ 'monitoring.prometheusRule.alerts.queueBackingUp.treshold': 5 }, /treshold/],
      [{ 'monitoring.dashboard.enable': true }, /enable/],
    ];
    const errors = await Promise.all(cases.map(([set]) => renderError({ set })));
    errors.forEach((stderr, i) => expect(stderr, JSON.stringify(cases[i]![0])).to.match(cases[i]![1]));
  });
});

describe('chart monitoring: the metrics the alerts and the dashboard read exist in the real services', function () {
  this.timeout(120_000);
  let emulator: Emulator;
  let t: TestEnv;
  const started: ProcessHandle[] = [];
  let exported: { web: Exposition; worker: Exposition };
  let selectors: { where: string; selector: Selector }[];

  before(async function () {
    this.timeout(120_000);
    const [manifests, e] = await Promise.all([
      render({ release: RELEASE, namespace: NAMESPACE, values: [MONITORING_VALUES] }),
      startEmulator(),
    ]);
    emulator = e;
    selectors = selectorsOf(expressionsOf(manifests));
    t = await createTestEnv(emulator.endpoint, { QUEUE_METRICS_INTERVAL_SECONDS: '1' });
    const [webPort, workerPort] = [await freePort(), await freePort()];
    const env = { ...t.env, LOG_LEVEL: 'info' };
    const web = startProcess(
      process.execPath,
      ['services/web/main.ts'],
      { ...env, PORT: String(webPort) },
      { cwd: ROOT },
    );
    const worker = startProcess(
      process.execPath,
      ['services/worker/main.ts'],
      { ...env, HEALTH_PORT: String(workerPort) },
      { cwd: ROOT },
    );
    started.push(web, worker);
    await worker.waitForLog((l) => l.msg === 'worker polling');
    const base = `http://127.0.0.1:${webPort}`;
    await eventually(
      async () => ((await fetch(`${base}/healthz/ready`)).ok ? true : undefined),
      30_000,
      'the web to answer ready',
    );

    // Samples for the labelled series: a stored form, a refused one, an invalid message.
    const accepted = await post(base, '/form/', jsonBody(validForm()));
    expect(accepted.status, accepted.text).to.equal(202);
    const { id } = accepted.body as { id: string };
    await eventually(
      async () => t.db('form_form').where({ sqs_message_id: id }).first(),
      30_000,
      'the form to be stored',
    );
    const refused = await post(base, '/form/', jsonBody(validForm()), { signature: null });
    expect(refused.status).to.be.within(400, 499);
    const urls = await t.queueUrls();
    await t.sqs.send(new SendMessageCommand({ QueueUrl: urls.form, MessageBody: 'not json' }));
    await eventually(
      async () => {
        const c = await queueCounts(t.sqs, urls.invalid);
        return c.visible + c.inFlight + c.delayed > 0 ? true : undefined;
      },
      30_000,
      'the invalid message on the invalid queue',
    );

    const scrape = async (url: string): Promise<Exposition> => {
      const res = await fetch(url);
      expect(res.status, url).to.equal(200);
      return parseExposition(await res.text());
    };
    exported = { web: await scrape(`${base}/metrics`), worker: await scrape(`http://127.0.0.1:${workerPort}/metrics`) };
  });

  after(async () => {
    await Promise.all(started.map((p) => p.ensureStopped()));
    await t?.cleanup();
    await emulator?.stop();
  });

  function exporterOf(name: string): Exposition | undefined {
    if (familyOf(name, exported.web)) return exported.web;
    if (familyOf(name, exported.worker)) return exported.worker;
    return undefined;
  }

  it('exports every metric name the alerts and the dashboard use', () => {
    const missing = new Map<string, string[]>();
    for (const { where, selector } of selectors) {
      for (const name of selector.names) {
        if (PROMETHEUS_SERIES.has(name) || exporterOf(name)) continue;
        missing.set(name, [...(missing.get(name) ?? []), where]);
      }
    }
    const report = [...missing].map(([name, where]) => `${name} (${[...new Set(where)].join('; ')})`).join('\n  ');
    expect([...missing.keys()].sort(), `not in the output of the web or the worker:\n  ${report}`).to.deep.equal([]);
  });

  it('matches only labels (and fixed label values) that the exported samples carry', () => {
    const wrong: string[] = [];
    for (const { where, selector } of selectors) {
      for (const name of selector.names) {
        const samples = exporterOf(name)?.samples.get(name);
        if (!samples || samples.length === 0) continue; // no sample to compare with
        for (const m of selector.matchers.filter((x) => !TARGET_LABELS.has(x.label) && x.label !== 'queue')) {
          if (!samples.some((s) => m.label in s)) wrong.push(`${where}: ${name} has no label ${m.label}`);
          else if (m.op === '=' && !samples.some((s) => s[m.label] === m.value))
            wrong.push(`${where}: no ${name} sample has ${m.label}="${m.value}"`);
        }
      }
    }
    expect(wrong).to.deep.equal([]);
  });
});
