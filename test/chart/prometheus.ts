/**
 * Prometheus for the alert tests: Debian's `promtool` and `prometheus` binaries
 * (found with test/support/tools.ts),
 * the chart's rendered rule groups as a rule file, and a Prometheus server of
 * the test's own (free port, temporary data dir) with its HTTP API.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { freePort } from '../../harness/ports.ts';
import { eventually } from '../support/stack.ts';
import { CHART, findAll, type Manifest } from './helm.ts';

/** The chart's default base of every runbook_url (`monitoring.runbookBaseUrl`). */
export async function defaultRunbookBase(): Promise<string> {
  const values = parse(await readFile(path.join(CHART, 'values.yaml'), 'utf8')) as {
    monitoring: { runbookBaseUrl: string };
  };
  return values.monitoring.runbookBaseUrl;
}

/** Each alert → the anchor of its runbook heading in the Alerts section of the docs (README.md or docs/). */
export const RUNBOOK_ANCHORS: Record<string, string> = {
  FormDataQueueBackingUp: 'queue-backing-up',
  FormDataOldestMessageTooOld: 'oldest-message-too-old',
  FormDataInvalidMessages: 'invalid-messages',
  FormDataWorkerNotPolling: 'worker-not-polling',
  FormDataWorkerDown: 'worker-down',
  FormDataDatabaseDown: 'database-down',
  FormDataWebErrorRate: 'web-5xx-rate',
  FormDataEnqueueFailures: 'enqueue-failures',
  FormDataWebDown: 'web-down',
  FormDataFormsNotStored: 'forms-not-stored',
  FormDataScalerErrors: 'scaler-errors',
};

/** An alerting or recording rule as the chart renders it. */
export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The rule groups of the rendered PrometheusRules, as a Prometheus rule file holds them. */
export function ruleGroupsOf(manifests: readonly Manifest[]): { name: string; rules: Rule[] }[] {
  return findAll(manifests, 'PrometheusRule').flatMap((r) => r.spec.groups as { name: string; rules: Rule[] }[]);
}

/** The alerting rules of the rendered PrometheusRules, by alert name. */
export function alertRulesOf(manifests: readonly Manifest[]): Map<string, Rule> {
  return new Map(
    ruleGroupsOf(manifests)
      .flatMap((g) => g.rules)
      .filter((r) => r.alert)
      .map((r) => [r.alert!, r]),
  );
}

/** Writes the rendered rule groups to `file` (a Prometheus rule file). */
export async function writeRuleFile(file: string, manifests: readonly Manifest[]): Promise<void> {
  await writeFile(file, stringify({ groups: ruleGroupsOf(manifests) }));
}

/** Runs promtool; resolves with its exit code and output (never rejects on a non-zero exit). */
export function promtool(bin: string, args: readonly string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: error ? Number(error.code) : 0, output: stdout + stderr });
    });
  });
}

/** A scrape target: a job (the Service name a ServiceMonitor would give) and its labels. */
export interface ScrapeTarget {
  job: string;
  address: string;
  labels: Record<string, string>;
}

/** An alert as /api/v1/alerts lists it. */
export interface ApiAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

export interface PrometheusServer {
  url: string;
  /** GET /api/v1/<endpoint> with query parameters; the `data` of a success answer. */
  api<T>(endpoint: string, params?: Record<string, string | string[]>): Promise<T>;
  alerts(): Promise<ApiAlert[]>;
  /** Waits until `alertname` is in `state` (or, for 'inactive', listed no more); resolves with the alert. */
  waitForAlert(
    alertname: string,
    state: 'pending' | 'firing' | 'inactive',
    timeoutMs: number,
  ): Promise<ApiAlert | undefined>;
  stop(): Promise<void>;
}

/**
 * Starts Prometheus on a free loopback port with a temporary data dir, scraping
 * `targets` every `interval` and evaluating `ruleFile` as often.
 */
export async function startPrometheus(
  bin: string,
  options: { targets: readonly ScrapeTarget[]; ruleFile: string; interval: string },
): Promise<PrometheusServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'form-data-prometheus-'));
  const config = {
    global: {
      scrape_interval: options.interval,
      scrape_timeout: options.interval,
      evaluation_interval: options.interval,
    },
    rule_files: [options.ruleFile],
    scrape_configs: options.targets.map((t) => ({
      job_name: t.job,
      static_configs: [{ targets: [t.address], labels: t.labels }],
    })),
  };
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ];
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };

  async function api<T>(endpoint: string, params: Record<string, string | string[]> = {}): Promise<T> {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) query.append(k, one);
    const response = await fetch(`${url}/api/v1/${endpoint}?${query.toString()}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') {
      throw new Error(`Prometheus ${endpoint} ${query.toString()}: ${body.error ?? response.status}`);
    }
    return body.data;
  }
  const alerts = async (): Promise<ApiAlert[]> => (await api<{ alerts: ApiAlert[] }>('alerts')).alerts;

  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`);
        return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok ? true : undefined;
      },
      30_000,
      'Prometheus to be ready',
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    api,
    alerts,
    async waitForAlert(alertname, state, timeoutMs) {
      const found = await eventually(
        async () => {
          const alert = (await alerts()).find((a) => a.labels.alertname === alertname);
          if (state === 'inactive') return alert ? undefined : { alert };
          return alert?.state === state ? { alert } : undefined;
        },
        timeoutMs,
        `${alertname} ${state} in /api/v1/alerts`,
      );
      return found.alert;
    },
    stop,
  };
}
