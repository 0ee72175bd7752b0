/**
 * The chart's alerts and dashboard against a real Prometheus (Debian's
 * prometheus 2.42 server, started by the test on a free port): it scrapes a
 * real web and worker on loopback, labelled as the chart's ServiceMonitors
 * label them (job = Service name, namespace), and evaluates the rules as the
 * chart renders them, with short `for` and windows set through the values.
 * Real faults (SQS and PostgreSQL cut by TCP proxies the test owns, the worker
 * stopped with SIGTERM) take the alerts to firing in /api/v1/alerts.
 */
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { startEmulator, queueCounts, type Emulator } from '../../harness/sqs.ts';
import { createTestEnv, eventually, type TestEnv } from '../support/stack.ts';
import { validForm } from '../../harness/forms.ts';
import { startProcess, type ProcessHandle } from '../../harness/process.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { freePort } from '../../harness/ports.ts';
import { jsonBody, post } from '../../harness/http.ts';
import { ROOT, render, type Manifest } from './helm.ts';
import { parsePromQL } from './promql.ts';
import { chartExpressions } from './expressions.ts';
import { alertRulesOf, defaultRunbookBase, requireBinary, startPrometheus, writeRuleFile } from './prometheus.ts';
import type { ApiAlert, PrometheusServer } from './prometheus.ts';

const NAMESPACE = 'forms';
const WEB_JOB = 'form-data-web';
const WORKER_JOB = 'form-data-worker';
/** Scrape and rule evaluation interval. */
const INTERVAL = '1s';
/** Short for and windows, through the chart's values, so that the faults fire in seconds. */
const FAST: Record<string, string | number | boolean> = {
  'monitoring.prometheusRule.enabled': true,
  'monitoring.dashboard.enabled': true,
  'monitoring.prometheusRule.alerts.databaseDown.for': '2s',
  'monitoring.prometheusRule.alerts.formsNotStored.window': '10s',
  'monitoring.prometheusRule.alerts.formsNotStored.for': '2s',
  'monitoring.prometheusRule.alerts.enqueueFailures.window': '30s',
  'monitoring.prometheusRule.alerts.workerNotPolling.thresholdSeconds': 3,
  'monitoring.prometheusRule.alerts.workerNotPolling.for': '2s',
};
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

/** Every vector selector of the alerts, the dashboard's targets and its variable queries, with where it is read. */
function selectorsOf(manifests: readonly Manifest[]): Map<string, string[]> {
  const expressions = chartExpressions(manifests, GRAFANA_VALUES);
  const out = new Map<string, string[]>();
  for (const { where, expr } of expressions) {
    for (const selector of parsePromQL(expr).selectors) {
      out.set(selector.text, [...(out.get(selector.text) ?? []), where]);
    }
  }
  return out;
}

function seconds(fromMs: number): string {
  return ((Date.now() - fromMs) / 1000).toFixed(1);
}

describe('chart alerts and dashboard: a real Prometheus scraping the real web and worker', function () {
  this.timeout(180_000);
  let prometheus: PrometheusServer | undefined;
  let emulator: Emulator | undefined;
  let t: TestEnv | undefined;
  let database: TcpProxy | undefined;
  let sqs: TcpProxy | undefined;
  let workerSqs: TcpProxy | undefined;
  let dir: string | undefined;
  let manifests: Manifest[];
  let base: string;
  let worker: ProcessHandle;
  const started: ProcessHandle[] = [];

  before(async function () {
    const bin = await requireBinary(this, 'prometheus');
    this.timeout(120_000);
    emulator = await startEmulator();
    t = await createTestEnv(emulator.endpoint, { QUEUE_METRICS_INTERVAL_SECONDS: '1' });
    // The rules name the queues of config.*, as a release does.
    manifests = await render({
      release: 'form-data',
      namespace: NAMESPACE,
      set: {
        ...FAST,
        'config.SQS_FORM_DATA_QUEUE_NAME': t.formQueue,
        'config.SQS_INVALID_MESAGES_QUEUE_NAME': t.invalidQueue,
      },
    });
    const pg = new URL(t.config.database.url);
    database = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
    const viaProxy = new URL(t.config.database.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(database.port);
    const queueHost = new URL(emulator.endpoint);
    sqs = await startTcpProxy(queueHost.hostname, Number(queueHost.port));
    workerSqs = await startTcpProxy(queueHost.hostname, Number(queueHost.port));

    const [webPort, workerPort] = [await freePort(), await freePort()];
    const env = { ...t.env, LOG_LEVEL: 'warn', DATABASE_URL: viaProxy.toString(), DATABASE_TIMEOUT_MS: '1000' };
    // Web and worker reach SQS through proxies of their own, so that each can be cut alone.
    const webEnv = {
      ...env,
      PORT: String(webPort),
      SQS_ENDPOINT_URL: `http://127.0.0.1:${sqs.port}`,
      SQS_REQUEST_TIMEOUT_MS: '500',
      SQS_MAX_ATTEMPTS: '2',
    };
    const workerEnv = {
      ...env,
      HEALTH_PORT: String(workerPort),
      SQS_ENDPOINT_URL: `http://127.0.0.1:${workerSqs.port}`,
      SQS_REQUEST_TIMEOUT_MS: '1000',
    };
    const web = startProcess(process.execPath, ['services/web/main.ts'], webEnv, { cwd: ROOT });
    worker = startProcess(process.execPath, ['services/worker/main.ts'], workerEnv, { cwd: ROOT });
    started.push(web, worker);
    base = `http://127.0.0.1:${webPort}`;
    const ready = async (url: string): Promise<true | undefined> =>
      (await fetch(url).catch(() => undefined))?.ok ? true : undefined;
    await eventually(() => ready(`${base}/healthz/ready`), 30_000, 'the web to answer ready');
    await eventually(() => ready(`http://127.0.0.1:${workerPort}/healthz/ready`), 30_000, 'the worker to answer ready');

    dir = await mkdtemp(path.join(tmpdir(), 'form-data-rules-'));
    const ruleFile = path.join(dir, 'rules.yaml');
    await writeRuleFile(ruleFile, manifests);
    prometheus = await startPrometheus(bin, {
      ruleFile,
      interval: INTERVAL,
      targets: [
        { job: WEB_JOB, address: `127.0.0.1:${webPort}`, labels: { namespace: NAMESPACE, pod: 'form-data-web-0' } },
        {
          job: WORKER_JOB,
          address: `127.0.0.1:${workerPort}`,
          labels: { namespace: NAMESPACE, pod: 'form-data-worker-0' },
        },
      ],
    });
    const p = prometheus;
    await eventually(
      async () => {
        const up = await p.api<{ result: unknown[] }>('query', { query: `up{namespace="${NAMESPACE}"} == 1` });
        return up.result.length === 2 ? true : undefined;
      },
      30_000,
      'Prometheus to scrape the web and the worker',
    );
    const groups = await p.api<{ groups: { rules: { name: string }[] }[] }>('rules');
    const loaded = groups.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name).sort()).to.deep.equal([...alertRulesOf(manifests).keys()].sort());
  });

  after(async () => {
    await prometheus?.stop();
    await Promise.all(started.map((p) => p.ensureStopped()));
    await database?.close();
    await sqs?.close();
    await workerSqs?.close();
    await t?.cleanup();
    await emulator?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function expectFiring(alert: ApiAlert | undefined, anchor: string, severity: string): Promise<void> {
    expect(alert?.labels).to.include({ namespace: NAMESPACE, severity });
    expect(alert?.annotations.runbook_url).to.equal(`${await defaultRunbookBase()}#${anchor}`);
    expect(alert?.annotations.summary).to.be.a('string').and.not.equal('');
    const rules = await prometheus!.api<{ groups: { rules: { name: string; health: string }[] }[] }>('rules');
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      expect(rule.health, `${rule.name} evaluates`).to.not.equal('err');
    }
  }

  it('fires FormDataEnqueueFailures when SQS is cut for the web, and a 503 is answered', async () => {
    sqs!.cut();
    const cutAt = Date.now();
    try {
      const refused = await post(base, '/form/', jsonBody(validForm()));
      expect(refused.status, refused.text).to.equal(503);
      const alert = await prometheus!.waitForAlert('FormDataEnqueueFailures', 'firing', 30_000);
      console.log(`      FormDataEnqueueFailures firing ${seconds(cutAt)} s after the SQS cut`);
      await expectFiring(alert, 'enqueue-failures', 'warning');
    } finally {
      sqs!.restore();
    }
    const accepted = await post(base, '/form/', jsonBody(validForm()));
    expect(accepted.status, accepted.text).to.equal(202);
  });

  it('fires FormDataWorkerNotPolling when SQS is cut for the worker (its database answers), resolves it after', async () => {
    workerSqs!.cut();
    const cutAt = Date.now();
    let firingAfter: string;
    try {
      const alert = await prometheus!.waitForAlert('FormDataWorkerNotPolling', 'firing', 60_000);
      firingAfter = seconds(cutAt);
      await expectFiring(alert, 'worker-not-polling', 'critical');
      expect(alert?.labels).to.include({ job: WORKER_JOB, pod: 'form-data-worker-0' });
    } finally {
      workerSqs!.restore();
    }
    const restoredAt = Date.now();
    await prometheus!.waitForAlert('FormDataWorkerNotPolling', 'inactive', 60_000);
    console.log(
      `      FormDataWorkerNotPolling firing ${firingAfter} s after the cut (threshold 3 s, for 2s); ` +
        `resolved ${seconds(restoredAt)} s after the restore`,
    );
  });

  it('has every series an alert or a dashboard panel reads, under the names and labels its query uses', async () => {
    // Samples for the labelled series: a stored form, a refused one, an invalid message (the 503 is above).
    const accepted = await post(base, '/form/', jsonBody(validForm()));
    expect(accepted.status, accepted.text).to.equal(202);
    const { submission_id: id } = accepted.body as { submission_id: string };
    const row = async (): Promise<unknown> => t!.db('form_form').where({ submission_id: id }).first();
    await eventually(row, 30_000, 'the form to be stored');
    expect((await post(base, '/form/', jsonBody(validForm()), { signature: null })).status).to.be.within(400, 499);
    const urls = await t!.queueUrls();
    await t!.sqs.send(new SendMessageCommand({ QueueUrl: urls.form, MessageBody: 'not json' }));
    await eventually(
      async () => {
        const c = await queueCounts(t!.sqs, urls.invalid);
        return c.visible + c.inFlight + c.delayed > 0 ? true : undefined;
      },
      30_000,
      'the invalid message on the invalid queue',
    );

    const selectors = selectorsOf(manifests);
    expect(selectors.size).to.be.greaterThan(20);
    const p = prometheus!;
    const empty = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const [selector, where] of selectors) {
        const series = await p.api<unknown[]>('series', { 'match[]': selector });
        if (series.length === 0) out.push(`${selector} (${[...new Set(where)].join('; ')})`);
      }
      return out;
    };
    // The series appear within a few scrapes; what is still empty after that is a wrong name or label.
    let missing: string[] = [];
    await eventually(
      async () => {
        missing = await empty();
        return missing.length === 0 ? true : undefined;
      },
      20_000,
      'every selector to match a series',
    ).catch(() => undefined);
    expect(missing, `selectors that match no series:\n  ${missing.join('\n  ')}`).to.deep.equal([]);
    // The check can fail: a typo in a label value matches nothing.
    const typo = `form_data_forms_accepted_total{namespace="${NAMESPACE}", job="form-data-wbe"}`;
    expect(await p.api<unknown[]>('series', { 'match[]': typo })).to.deep.equal([]);
  });

  it('runs every alert expression, dashboard panel and variable query through the query API, each with its expected type', async () => {
    // The KEDA value set adds FormDataScalerErrors, which the default rendering leaves out.
    const keda = await render({
      release: 'form-data',
      namespace: NAMESPACE,
      set: {
        ...FAST,
        'worker.autoscaling.enabled': true,
        'worker.autoscaling.mode': 'keda',
        'worker.autoscaling.minReplicas': 0,
        'monitoring.prometheusRule.alerts.scalerErrors.enabled': true,
      },
    });
    const seen = new Set<string>();
    const expressions = [
      ...chartExpressions(manifests, GRAFANA_VALUES),
      ...chartExpressions(keda, GRAFANA_VALUES),
    ].filter((e) => !seen.has(e.where + e.expr) && seen.add(e.where + e.expr));
    expect(expressions.map((e) => e.where)).to.include('FormDataScalerErrors');
    const p = prometheus!;
    const end = Math.floor(Date.now() / 1000);
    const failures: string[] = [];
    const check = async (where: string, run: () => Promise<string | undefined>): Promise<void> => {
      try {
        const wrong = await run();
        if (wrong) failures.push(`${where}: ${wrong}`);
      } catch (error) {
        failures.push(`${where}: ${(error as Error).message}`);
      }
    };
    const counts = { alert: 0, panel: 0, variable: 0 };
    for (const e of expressions) {
      counts[e.kind] += 1;
      if (e.kind === 'variable') {
        // Grafana's label_values(selector, label): the label's values over the series the selector matches.
        await check(e.where, async () => {
          const values = await p.api<string[]>(`label/${e.label}/values`, { 'match[]': e.expr });
          return values.length > 0 ? undefined : `no values of ${e.label}`;
        });
        continue;
      }
      await check(`${e.where} (instant)`, async () => {
        const data = await p.api<{ resultType: string }>('query', { query: e.expr, time: String(end) });
        return data.resultType === 'vector' ? undefined : `result type ${data.resultType}, expected vector`;
      });
      if (e.kind === 'panel') {
        // Grafana runs a panel's target as a range query.
        await check(`${e.where} (range)`, async () => {
          const data = await p.api<{ resultType: string }>('query_range', {
            query: e.expr,
            start: String(end - 300),
            end: String(end),
            step: '15',
          });
          return data.resultType === 'matrix' ? undefined : `result type ${data.resultType}, expected matrix`;
        });
      }
    }
    console.log(
      `      ran ${counts.alert} alert expressions, ${counts.panel} panel targets (instant and range), ${counts.variable} variable queries`,
    );
    expect(failures, `expressions Prometheus refused or typed unexpectedly:\n  ${failures.join('\n  ')}`).to.deep.equal(
      [],
    );
    expect(counts.panel).to.be.greaterThan(20);
    // The check can fail: Prometheus type-checks what the UI grammar only parses.
    const refused = await p.api('query', { query: 'rate(form_data_forms_accepted_total)' }).then(
      () => 'accepted',
      (error: Error) => error.message,
    );
    expect(refused).to.match(/expected type range vector/);
  });

  it('takes FormDataDatabaseDown to firing when PostgreSQL is cut, and resolves it when it is back', async () => {
    expect((await prometheus!.alerts()).map((a) => a.labels.alertname)).to.not.include('FormDataDatabaseDown');
    database!.cut();
    const cutAt = Date.now();
    // A form to store: the worker finds the database gone when it tries.
    const accepted = await post(base, '/form/', jsonBody(validForm()));
    expect(accepted.status, accepted.text).to.equal(202);
    const { submission_id: id } = accepted.body as { submission_id: string };
    const pending = await prometheus!.waitForAlert('FormDataDatabaseDown', 'pending', 60_000);
    const pendingAfter = seconds(cutAt);
    expect(pending?.labels.severity).to.equal('critical');
    const firing = await prometheus!.waitForAlert('FormDataDatabaseDown', 'firing', 30_000);
    const firingAfter = seconds(cutAt);
    await expectFiring(firing, 'database-down', 'critical');

    database!.restore();
    const restoredAt = Date.now();
    await prometheus!.waitForAlert('FormDataDatabaseDown', 'inactive', 60_000);
    console.log(
      `      FormDataDatabaseDown pending ${pendingAfter} s, firing ${firingAfter} s after the cut; ` +
        `resolved ${seconds(restoredAt)} s after the restore`,
    );
    const row = async (): Promise<unknown> => t!.db('form_form').where({ submission_id: id }).first();
    await eventually(row, 30_000, 'the form accepted during the outage to be stored');
  });

  it('fires FormDataFormsNotStored when every worker is stopped while the web accepts forms', async () => {
    const send = async (): Promise<void> => {
      const r = await post(base, '/form/', jsonBody(validForm()));
      expect(r.status, r.text).to.equal(202);
    };
    // While the worker stores, the alert stays inactive.
    await send();
    await prometheus!.waitForAlert('FormDataFormsNotStored', 'inactive', 30_000);
    worker.kill('SIGTERM');
    const exit = await worker.exited;
    expect(exit.code, 'the worker drains and exits 0').to.equal(0);
    const stoppedAt = Date.now();
    let sending = true;
    const feeder = (async () => {
      while (sending) {
        await send();
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    try {
      const firing = await prometheus!.waitForAlert('FormDataFormsNotStored', 'firing', 60_000);
      const after = seconds(stoppedAt);
      console.log(`      FormDataFormsNotStored firing ${after} s after the last worker stopped (window 10s, for 2s)`);
      await expectFiring(firing, 'forms-not-stored', 'critical');
    } finally {
      sending = false;
      await feeder;
    }
  });
});
