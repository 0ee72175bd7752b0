/**
 * The chart's alerts evaluated by Prometheus' own rule engine (`promtool test
 * rules`), on the rules exactly as the chart renders them: with its defaults,
 * and with KEDA at minReplicas 0. Each alert fires on the fault it names at the
 * time its `for` says, with the documented labels and runbook link; none fires
 * on a healthy release, during a rolling restart, or (KEDA) while the worker is
 * scaled to zero with an empty queue. `promtool check rules` runs on every value
 * set of test/chart/values/.
 */
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { ROOT, VALUES, render, type Manifest } from './helm.ts';
import { RUNBOOK_ANCHORS, alertRulesOf, defaultRunbookBase, promtool, writeRuleFile, type Rule } from './prometheus.ts';
import { requireTool, TOOLS } from '../support/tools.ts';

const NAMESPACE = 'forms';
const WEB = `namespace="${NAMESPACE}", job="form-data-web"`;
const WORKER = `namespace="${NAMESPACE}", job="form-data-worker"`;
const FORM_QUEUE = 'directory-form-data';
const INVALID_QUEUE = 'directory-form-data-invalid';
/** Minutes of input series in each scenario (one sample a minute, as a 1m scrape). */
const MINUTES = 60;

/** The chart's default runbook page (monitoring.runbookBaseUrl). */
const RUNBOOK_BASE = await defaultRunbookBase();

interface Series {
  series: string;
  values: string;
}

/** The series one web pod exports (and its `up`); each value string in promtool's notation. */
function webPod(
  pod: string,
  v: { up?: string; accepted?: string; ok?: string; failed?: string; enqueueFailed?: string } = {},
): Series[] {
  const target = `${WEB}, instance="${pod}:8000", pod="${pod}"`;
  const out: Series[] = [
    { series: `up{${target}}`, values: v.up ?? `1x${MINUTES}` },
    { series: `form_data_forms_accepted_total{${target}}`, values: v.accepted ?? `0+10x${MINUTES}` },
    {
      series: `form_data_http_requests_total{${target}, route="/form/", method="POST", status="202"}`,
      values: v.ok ?? `0+10x${MINUTES}`,
    },
    { series: `form_data_forms_enqueue_failed_total{${target}}`, values: v.enqueueFailed ?? `0x${MINUTES}` },
  ];
  if (v.failed) {
    const series = `form_data_http_requests_total{${target}, route="/form/", method="POST", status="503"}`;
    out.push({ series, values: v.failed });
  }
  return out;
}

/** The series one worker pod exports (and its `up`). */
function workerPod(
  pod: string,
  v: {
    up?: string;
    stored?: string;
    visible?: string;
    invalidVisible?: string;
    oldest?: string;
    pollAge?: string;
    databaseUp?: string;
    invalidNotJson?: string;
  } = {},
): Series[] {
  const target = `${WORKER}, instance="${pod}:8001", pod="${pod}"`;
  const invalid: Series[] = v.invalidNotJson
    ? [{ series: `form_data_worker_invalid_messages_total{${target}, reason="not_json"}`, values: v.invalidNotJson }]
    : [];
  return [
    ...invalid,
    { series: `up{${target}}`, values: v.up ?? `1x${MINUTES}` },
    { series: `form_data_worker_messages_total{${target}, outcome="stored"}`, values: v.stored ?? `0+10x${MINUTES}` },
    { series: `form_data_sqs_messages_visible{${target}, queue="${FORM_QUEUE}"}`, values: v.visible ?? `0x${MINUTES}` },
    {
      series: `form_data_sqs_messages_visible{${target}, queue="${INVALID_QUEUE}"}`,
      values: v.invalidVisible ?? `0x${MINUTES}`,
    },
    { series: `form_data_worker_oldest_message_age_seconds{${target}}`, values: v.oldest ?? `0x${MINUTES}` },
    { series: `form_data_worker_last_poll_age_seconds{${target}}`, values: v.pollAge ?? `1x${MINUTES}` },
    {
      series: `form_data_worker_dependency_up{${target}, dependency="database"}`,
      values: v.databaseUp ?? `1x${MINUTES}`,
    },
    { series: `form_data_worker_dependency_up{${target}, dependency="sqs"}`, values: `1x${MINUTES}` },
  ];
}

/**
 * KEDA's errors of this release's ScaledObject (`keda_scaled_object_errors_total{namespace, scaledObject}`,
 * as test/chart/keda.test.ts reads it from KEDA's source), labelled as a ServiceMonitor without honorLabels does.
 */
function kedaScalerErrors(values: string): Series {
  return {
    series:
      `keda_scaled_object_errors_total{namespace="keda", job="keda-operator", exported_namespace="${NAMESPACE}", ` +
      'scaledObject="form-data-worker"}',
    values,
  };
}

/** A fault: from minute `trueAt` on, the alert's condition holds; it must fire `for` later. */
interface Fault {
  alert: string;
  fault: string;
  series: Series[];
  trueAt: number;
  /** Labels the alert carries besides alertname. */
  labels: Record<string, string>;
  /** What the description's `$value` pipeline prints at the firing time. */
  value?: string;
  /** Alerts that must stay silent throughout this fault. */
  silent?: string[];
  variants?: Variant[];
}

type Variant = 'defaults' | 'keda-zero';

const FAULTS: Fault[] = [
  {
    alert: 'FormDataQueueBackingUp',
    fault: '150 messages visible on the form queue',
    series: [...webPod('web-a'), ...workerPod('worker-a', { visible: `0x9 150x${MINUTES - 10}` })],
    trueAt: 10,
    labels: { namespace: NAMESPACE, queue: FORM_QUEUE, severity: 'warning' },
    value: '150',
  },
  {
    alert: 'FormDataOldestMessageTooOld',
    fault: 'the workers receive messages sent 31m 40s earlier',
    series: [...webPod('web-a'), ...workerPod('worker-a', { oldest: `0x9 1900x${MINUTES - 10}` })],
    trueAt: 10,
    labels: { namespace: NAMESPACE, severity: 'critical' },
    value: '31m 40s',
  },
  {
    alert: 'FormDataInvalidMessages',
    fault: '3 messages visible on the invalid queue',
    series: [...webPod('web-a'), ...workerPod('worker-a', { invalidVisible: `0x9 3x${MINUTES - 10}` })],
    trueAt: 10,
    labels: { namespace: NAMESPACE, queue: INVALID_QUEUE, severity: 'warning' },
    value: '3',
  },
  {
    alert: 'FormDataInvalidMessages',
    fault: 'a worker moves its first message to the invalid queue (its counter starts at 0), the queue depth unread',
    series: [
      ...webPod('web-a'),
      ...workerPod('worker-a', { invalidNotJson: `0x9 1x${MINUTES - 10}` }).filter(
        (s) => !s.series.startsWith('form_data_sqs_messages_visible'),
      ),
    ],
    trueAt: 10,
    labels: { namespace: NAMESPACE, severity: 'warning' },
    value: '1',
  },
  {
    alert: 'FormDataWorkerNotPolling',
    fault: 'a worker whose database answers stops receiving from SQS',
    series: [
      ...webPod('web-a'),
      ...workerPod('worker-a', { pollAge: `1x9 130+60x${MINUTES - 10}`, stored: `0+10x9 90x${MINUTES - 10}` }),
    ],
    trueAt: 10,
    labels: {
      namespace: NAMESPACE,
      job: 'form-data-worker',
      instance: 'worker-a:8001',
      pod: 'worker-a',
      severity: 'critical',
    },
    value: '7m 10s',
  },
  {
    alert: 'FormDataWorkerDown',
    fault: 'the worker pods exist but none can be scraped (up 0)',
    series: [...webPod('web-a'), ...workerPod('worker-a', { up: `1x9 0x${MINUTES - 10}` })],
    trueAt: 10,
    labels: { namespace: NAMESPACE, severity: 'critical' },
  },
  {
    alert: 'FormDataDatabaseDown',
    fault: 'no worker reaches PostgreSQL (the workers stop polling and storing)',
    series: [
      ...webPod('web-a'),
      ...workerPod('worker-a', {
        databaseUp: `1x9 0x${MINUTES - 10}`,
        pollAge: `1x9 10+60x${MINUTES - 10}`,
        stored: `0+10x9 90x${MINUTES - 10}`,
      }),
    ],
    trueAt: 10,
    labels: { namespace: NAMESPACE, severity: 'critical' },
    silent: ['FormDataWorkerNotPolling'],
  },
  {
    alert: 'FormDataWebErrorRate',
    fault: 'a third of the /form/ requests answered 503',
    series: [...webPod('web-a', { failed: `0x10 5+5x${MINUTES - 11}` }), ...workerPod('worker-a')],
    trueAt: 11,
    labels: { namespace: NAMESPACE, severity: 'critical' },
    value: '33.33%',
  },
  {
    alert: 'FormDataEnqueueFailures',
    fault: 'SQS refuses 3 forms a minute',
    series: [...webPod('web-a', { enqueueFailed: `0x10 3+3x${MINUTES - 11}` }), ...workerPod('worker-a')],
    trueAt: 11,
    labels: { namespace: NAMESPACE, severity: 'warning' },
    value: '3',
  },
  {
    alert: 'FormDataWebDown',
    fault: 'no web pod can be scraped (up 0)',
    series: [...webPod('web-a', { up: `1x9 0x${MINUTES - 10}` }), ...workerPod('worker-a')],
    trueAt: 10,
    labels: { namespace: NAMESPACE, severity: 'critical' },
  },
  {
    alert: 'FormDataFormsNotStored',
    fault: 'the web accepts 10 forms a minute and no worker exists at all',
    series: webPod('web-a'),
    trueAt: 1,
    labels: { namespace: NAMESPACE, severity: 'critical' },
    value: '100',
  },
  {
    alert: 'FormDataFormsNotStored',
    fault: 'the web accepts 10 forms a minute and the running worker stores none',
    series: [...webPod('web-a'), ...workerPod('worker-a', { stored: `0+10x9 90x${MINUTES - 10}` })],
    trueAt: 19,
    labels: { namespace: NAMESPACE, severity: 'critical' },
    value: '100',
  },
  {
    alert: 'FormDataScalerErrors',
    // As KEDA 2.20 counts (pkg/fallback, pkg/scaling/scale_handler.go): the errors before its fallback applies
    // (failureThreshold, 3 by default), then none while it serves the fallback.
    fault: "KEDA's scaler fails 3 times in a row, then its fallback applies and it counts no more",
    series: [...webPod('web-a'), ...workerPod('worker-a'), kedaScalerErrors(`0x10 3x${MINUTES - 11}`)],
    trueAt: 11,
    labels: { namespace: NAMESPACE, severity: 'warning' },
    value: '3',
    variants: ['keda-zero'],
  },
];

/** Healthy situations: no alert may fire at any of the checked minutes. */
interface Quiet {
  name: string;
  series: Series[];
  variants: Variant[];
}

const RESTART = 20; // minute the new pods' first scrape happens
const QUIET: Quiet[] = [
  {
    name: 'a healthy release: forms accepted and stored, queues empty',
    series: [...webPod('web-a'), ...workerPod('worker-a'), kedaScalerErrors(`0x${MINUTES}`)],
    variants: ['defaults', 'keda-zero'],
  },
  {
    name: "one transient error of KEDA's scaler (below the fallback's failureThreshold)",
    series: [...webPod('web-a'), ...workerPod('worker-a'), kedaScalerErrors(`0x10 1x${MINUTES - 11}`)],
    variants: ['keda-zero'],
  },
  {
    name: 'a rolling restart of web and worker (old pods go stale, new pods start at 0)',
    series: [
      ...webPod('web-a', {
        up: `1x${RESTART} stale`,
        accepted: `0+10x${RESTART} stale`,
        ok: `0+10x${RESTART} stale`,
        enqueueFailed: `0x${RESTART} stale`,
      }),
      ...webPod('web-b', {
        up: `_x${RESTART - 1} 1x${MINUTES - RESTART}`,
        accepted: `_x${RESTART - 1} 0+10x${MINUTES - RESTART}`,
        ok: `_x${RESTART - 1} 0+10x${MINUTES - RESTART}`,
        enqueueFailed: `_x${RESTART - 1} 0x${MINUTES - RESTART}`,
      }),
      ...workerPod('worker-a', {
        up: `1x${RESTART} stale`,
        stored: `0+10x${RESTART} stale`,
        visible: `0x${RESTART} stale`,
        invalidVisible: `0x${RESTART} stale`,
        oldest: `0x${RESTART} stale`,
        pollAge: `1x${RESTART} stale`,
        databaseUp: `1x${RESTART} stale`,
      }),
      ...workerPod('worker-b', {
        up: `_x${RESTART - 1} 1x${MINUTES - RESTART}`,
        stored: `_x${RESTART - 1} 0+10x${MINUTES - RESTART}`,
        visible: `_x${RESTART - 1} 0x${MINUTES - RESTART}`,
        invalidVisible: `_x${RESTART - 1} 0x${MINUTES - RESTART}`,
        oldest: `_x${RESTART - 1} 0x${MINUTES - RESTART}`,
        pollAge: `_x${RESTART - 1} 1x${MINUTES - RESTART}`,
        databaseUp: `_x${RESTART - 1} 1x${MINUTES - RESTART}`,
      }),
    ],
    variants: ['defaults', 'keda-zero'],
  },
  {
    name: 'KEDA scales the worker to zero on an empty queue (minute 20), and back to one for a form (minute 40)',
    series: [
      // Forms stop at minute 5; one more arrives at minute 40.
      ...webPod('web-a', { accepted: '0+10x5 50x34 51x19', ok: '0+10x5 50x34 51x19' }),
      ...workerPod('worker-a', {
        up: '1x19 stale',
        stored: '0+10x5 50x13 stale',
        visible: '0x19 stale',
        invalidVisible: '0x19 stale',
        oldest: '0x19 stale',
        pollAge: '1x19 stale',
        databaseUp: '1x19 stale',
      }),
      // The new worker stored that form before its first scrape: its stored series starts at 1.
      ...workerPod('worker-b', {
        up: '_x41 1x18',
        stored: '_x41 1x18',
        visible: '_x41 0x18',
        invalidVisible: '_x41 0x18',
        oldest: '_x41 0x18',
        pollAge: '_x41 1x18',
        databaseUp: '_x41 1x18',
      }),
    ],
    variants: ['keda-zero'],
  },
];
const QUIET_AT = [5, 15, 25, 35, 41, 45, 50, 59];

const VARIANTS: Record<Variant, Record<string, string | number | boolean>> = {
  defaults: { 'monitoring.prometheusRule.enabled': true },
  'keda-zero': {
    'monitoring.prometheusRule.enabled': true,
    'worker.autoscaling.enabled': true,
    'worker.autoscaling.mode': 'keda',
    'worker.autoscaling.minReplicas': 0,
    'monitoring.prometheusRule.alerts.scalerErrors.enabled': true,
  },
};

/** Minutes of a Prometheus duration as the chart's defaults write them (e.g. 15m, 0m, 1h). */
function minutes(duration: string): number {
  const match = /^(\d+)([smh])$/.exec(duration);
  if (!match) throw new Error(`unexpected duration ${duration}`);
  const n = Number(match[1]);
  return match[2] === 'h' ? n * 60 : match[2] === 'm' ? n : n / 60;
}

/** The annotations Prometheus renders for `rule`: labels and the `$value` pipeline filled in. */
function renderedAnnotations(
  rule: Rule,
  labels: Record<string, string>,
  value: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, template] of Object.entries(rule.annotations ?? {})) {
    out[key] = template
      .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, name: string) => labels[name] ?? '')
      .replace(/\{\{ \$value[^}]*\}\}/g, () => {
        if (value === undefined) {
          throw new Error(`${rule.alert!}: the description prints $value; give the scenario a value`);
        }
        return value;
      });
  }
  return out;
}

function alertTest(rules: Map<string, Rule>, fault: Fault): { evalTimes: number[]; tests: unknown[] } {
  const rule = rules.get(fault.alert);
  if (!rule) throw new Error(`${fault.alert} is not rendered`);
  const firesAt = fault.trueAt + minutes(rule.for ?? '0m');
  const expected = {
    exp_labels: fault.labels,
    exp_annotations: {
      ...renderedAnnotations(rule, fault.labels, fault.value),
      runbook_url: `${RUNBOOK_BASE}#${RUNBOOK_ANCHORS[fault.alert]!}`,
    },
  };
  const tests: unknown[] = [
    { eval_time: `${firesAt - 1}m`, alertname: fault.alert, exp_alerts: [] },
    { eval_time: `${firesAt}m`, alertname: fault.alert, exp_alerts: [expected] },
  ];
  for (const other of fault.silent ?? []) {
    tests.push({ eval_time: `${MINUTES - 1}m`, alertname: other, exp_alerts: [] });
  }
  return { evalTimes: [firesAt - 1, firesAt], tests };
}

describe('chart alerts: evaluated by promtool on the rendered rules', function () {
  this.timeout(120_000);
  let bin: string;
  let dir: string;
  const rendered = new Map<Variant, Manifest[]>();

  before(async function () {
    bin = await requireTool(this, TOOLS.promtool);
    dir = await mkdtemp(path.join(tmpdir(), 'form-data-promtool-'));
    for (const [variant, set] of Object.entries(VARIANTS) as [Variant, Record<string, string | number | boolean>][]) {
      const manifests = await render({ release: 'form-data', namespace: NAMESPACE, set });
      rendered.set(variant, manifests);
      await writeRuleFile(path.join(dir, `${variant}.rules.yaml`), manifests);
    }
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function run(
    variant: Variant,
    name: string,
    series: Series[],
    tests: unknown[],
  ): Promise<{ code: number; output: string }> {
    const file = path.join(dir, `${variant}-${name.replace(/[^a-z0-9]+/gi, '-')}.test.yaml`);
    const alertTests = tests;
    const test = { name, interval: '1m', input_series: series, alert_rule_test: alertTests };
    const rule_files = [`${variant}.rules.yaml`];
    await writeFile(file, stringify({ rule_files, evaluation_interval: '1m', tests: [test] }));
    return promtool(bin, ['test', 'rules', path.basename(file)], dir);
  }

  it('renders every alert of the runbook table (KEDA at zero adds FormDataScalerErrors)', () => {
    const all = Object.keys(RUNBOOK_ANCHORS).sort();
    expect([...alertRulesOf(rendered.get('keda-zero')!).keys()].sort()).to.deep.equal(all);
    expect([...alertRulesOf(rendered.get('defaults')!).keys()].sort()).to.deep.equal(
      all.filter((a) => a !== 'FormDataScalerErrors'),
    );
    const proven = new Set(FAULTS.map((f) => f.alert));
    expect(
      all.filter((a) => !proven.has(a)),
      'alerts without a fault scenario',
    ).to.deep.equal([]);
  });

  for (const variant of Object.keys(VARIANTS) as Variant[]) {
    for (const fault of FAULTS.filter((f) => (f.variants ?? ['defaults', 'keda-zero']).includes(variant))) {
      it(`${variant}: ${fault.alert} fires on "${fault.fault}" exactly its for after the condition holds`, async () => {
        const { tests } = alertTest(alertRulesOf(rendered.get(variant)!), fault);
        const result = await run(variant, `${fault.alert} ${fault.fault}`, fault.series, tests);
        expect(result.code, result.output).to.equal(0);
      });
    }
    for (const quiet of QUIET.filter((q) => q.variants.includes(variant))) {
      it(`${variant}: no alert fires during ${quiet.name}`, async () => {
        const alerts = [...alertRulesOf(rendered.get(variant)!).keys()];
        const tests = QUIET_AT.flatMap((minute) =>
          alerts.map((alertname) => ({ eval_time: `${minute}m`, alertname, exp_alerts: [] })),
        );
        const result = await run(variant, quiet.name, quiet.series, tests);
        expect(result.code, result.output).to.equal(0);
      });
    }
  }

  it('keda-zero: with no worker at all, only FormDataFormsNotStored fires (the others read workers)', async () => {
    const alerts = [...alertRulesOf(rendered.get('keda-zero')!).keys()].filter((a) => a !== 'FormDataFormsNotStored');
    const tests = alerts.map((alertname) => ({ eval_time: '45m', alertname, exp_alerts: [] }));
    const result = await run('keda-zero', 'no worker at all', webPod('web-a'), tests);
    expect(result.code, result.output).to.equal(0);
  });

  it('fails when an alert fires a minute earlier than expected, or with another label (it can fail)', async () => {
    const fault = FAULTS.find((f) => f.alert === 'FormDataDatabaseDown')!;
    const { tests } = alertTest(alertRulesOf(rendered.get('defaults')!), fault);
    const early = tests.map((t, i) =>
      i === 0 ? { ...(tests[1] as object), eval_time: (t as { eval_time: string }).eval_time } : t,
    );
    expect((await run('defaults', 'early', fault.series, early)).code).to.not.equal(0);
    const relabelled = alertTest(alertRulesOf(rendered.get('defaults')!), {
      ...fault,
      labels: { ...fault.labels, severity: 'warning' },
    });
    expect((await run('defaults', 'relabelled', fault.series, relabelled.tests)).code).to.not.equal(0);
  });

  it('passes promtool check rules on every value set of test/chart/values/ (with the PrometheusRule on)', async () => {
    const files = (await readdir(VALUES)).filter((f) => f.endsWith('.yaml')).sort();
    expect(files.length).to.be.greaterThan(3);
    for (const file of files) {
      const manifests = await render({
        release: 'form-data',
        namespace: NAMESPACE,
        values: [file],
        set: {
          'monitoring.prometheusRule.enabled': true,
          'monitoring.prometheusRule.alerts.scalerErrors.enabled': true,
        },
      });
      const rules = path.join(dir, `check-${file}`);
      await writeRuleFile(rules, manifests);
      const result = await promtool(bin, ['check', 'rules', path.basename(rules)], dir);
      expect(result.code, `${file}: ${result.output}`).to.equal(0);
      expect(result.output, file).to.match(new RegExp(`SUCCESS: ${alertRulesOf(manifests).size} rules found`));
    }
  });
});

describe('chart alerts: runbooks', () => {
  it('has a runbook heading for every alert in the docs (README.md or docs/), at its runbook_url anchor', async () => {
    const docs = (await readdir(path.join(ROOT, 'docs')).catch(() => [] as string[])).filter((f) => f.endsWith('.md'));
    const pages = [path.join(ROOT, 'README.md'), ...docs.map((f) => path.join(ROOT, 'docs', f))];
    const anchors = new Set<string>();
    for (const page of pages) {
      for (const [, heading] of (await readFile(page, 'utf8')).matchAll(/^#{2,4} (.+)$/gm)) {
        anchors.add(
          heading!
            .trim()
            .toLowerCase()
            .replace(/[^a-z0-9 -]/g, '')
            .replace(/ /g, '-'),
        );
      }
    }
    const missing = Object.entries(RUNBOOK_ANCHORS).filter(([, anchor]) => !anchors.has(anchor));
    expect(missing, 'alerts without a runbook heading').to.deep.equal([]);
  });
});
