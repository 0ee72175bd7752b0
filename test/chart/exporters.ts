/**
 * The third-party exporters whose series the chart's alerts and dashboard
 * read, and the series each one exports, read from the exporter's own source
 * at the version named here (KEDA: pkg/metricscollector/prommetrics.go of the
 * Go module, downloaded through the Go module proxy by `go mod download`).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { findTool } from '../../harness/netns.ts';
import { chartExpressions } from './expressions.ts';
import { render, type Manifest } from './helm.ts';
import { parsePromQL } from './promql.ts';

const run = promisify(execFile);
/** Series of the services themselves (prom-client) and of Prometheus; prometheus.test.ts scrapes those for real. */
const OWN = /^(form_data_|nodejs_|process_)|^up$/;
const GRAFANA_VALUES = { namespace: 'forms', web_job: 'form-data-web', worker_job: 'form-data-worker' };

/** The KEDA release the chart's KEDA series are checked against: its minimum (form-data.kedaMinimumVersion). */
export const KEDA_VERSION = '2.19.0';
export const KEDA_MODULE = 'github.com/kedacore/keda/v2';

/** One series family an exporter defines: its name (histograms: the base name) and label names. */
export interface ExportedFamily {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  labels: string[];
}

/** Labels a scrape adds or renames (ServiceMonitor target labels; `exported_` is what a clash makes of the exporter's own). */
export const SCRAPE_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'endpoint', 'container']);

/** Path of `go` (PATH, else Go's default install folder), or undefined. */
export function goBinary(): Promise<string | undefined> {
  return findTool('go', ['/usr/local/go/bin']);
}

/** Downloads (or finds in the module cache) KEDA's module at `version`; resolves with its folder. */
export async function kedaSource(go: string, version = KEDA_VERSION): Promise<string> {
  const { stdout } = await run(go, ['mod', 'download', '-json', `${KEDA_MODULE}@v${version}`], {
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-modcacherw' },
    maxBuffer: 4 * 1024 * 1024,
  });
  const info = JSON.parse(stdout) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download ${KEDA_MODULE}@v${version}: ${info.Error ?? 'no Dir'}`);
  return info.Dir;
}

/**
 * The families KEDA's metrics collector registers, parsed from the Go source:
 * `prometheus.NewXVec(prometheus.XOpts{Namespace, Subsystem, Name}, labels)`.
 */
export async function kedaFamilies(dir: string): Promise<ExportedFamily[]> {
  const source = await readFile(path.join(dir, 'pkg/metricscollector/prommetrics.go'), 'utf8');
  const collectors = await readFile(path.join(dir, 'pkg/metricscollector/metricscollectors.go'), 'utf8');
  const namespace = /DefaultPromMetricsNamespace\s*=\s*"([^"]+)"/.exec(collectors)?.[1];
  if (!namespace) throw new Error('DefaultPromMetricsNamespace not found in KEDA source');
  const lists = new Map<string, string[]>();
  for (const m of source.matchAll(/(\w+)\s*=\s*\[\]string\{([^}]*)\}/g)) lists.set(m[1]!, stringsOf(m[2]!));
  const families: ExportedFamily[] = [];
  const constructor =
    /prometheus\.New(Counter|Gauge|Histogram|Summary)Vec\(\s*prometheus\.\w+Opts\{([\s\S]*?)\n\s*\},\s*([\w]+|\[\]string\{[^}]*\})/g;
  for (const m of source.matchAll(constructor)) {
    const opts = m[2]!;
    const field = (key: string): string | undefined => new RegExp(`${key}:\\s*"([^"]*)"`).exec(opts)?.[1];
    const name = field('Name');
    if (!name) continue;
    const ns = /Namespace:\s*DefaultPromMetricsNamespace/.test(opts) ? namespace : (field('Namespace') ?? '');
    const labelsRef = m[3]!;
    const labels = labelsRef.startsWith('[]string') ? stringsOf(labelsRef) : lists.get(labelsRef);
    if (!labels) throw new Error(`label list ${labelsRef} of ${name} not found in KEDA source`);
    families.push({
      name: [ns, field('Subsystem'), name].filter(Boolean).join('_'),
      type: m[1]!.toLowerCase() as ExportedFamily['type'],
      labels,
    });
  }
  return families;
}

function stringsOf(list: string): string[] {
  return [...list.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
}

/** The series names a family appears under (histograms: _bucket, _sum, _count). */
export function seriesNames(family: ExportedFamily): string[] {
  if (family.type === 'histogram' || family.type === 'summary')
    return [family.name, `${family.name}_bucket`, `${family.name}_sum`, `${family.name}_count`];
  return [family.name];
}

/** Every third-party selector the chart's alerts and dashboard read (KEDA on, its alert on), with where. */
export async function thirdPartySelectors(): Promise<{ name: string; labels: string[]; where: string }[]> {
  const manifests: Manifest[] = await render({
    set: {
      'monitoring.prometheusRule.enabled': true,
      'monitoring.dashboard.enabled': true,
      'worker.autoscaling.enabled': true,
      'worker.autoscaling.mode': 'keda',
      'worker.autoscaling.minReplicas': 0,
      'monitoring.prometheusRule.alerts.scalerErrors.enabled': true,
    },
  });
  const out: { name: string; labels: string[]; where: string }[] = [];
  for (const e of chartExpressions(manifests, { ...GRAFANA_VALUES, __rate_interval: '1m', __interval: '30s' })) {
    for (const selector of parsePromQL(e.expr).selectors) {
      for (const name of selector.names.filter((n) => !OWN.test(n))) {
        out.push({
          name,
          labels: selector.matchers.map((m) => m.label).filter((l) => l !== '__name__'),
          where: e.where,
        });
      }
    }
  }
  return out;
}

/** What is wrong with reading `name{labels}` from `families`, or undefined. */
export function mismatch(
  families: readonly ExportedFamily[],
  name: string,
  labels: readonly string[],
): string | undefined {
  const family = families.find((f) => seriesNames(f).includes(name));
  if (!family) return `${name} is not exported`;
  const unknown = labels.filter((l) => {
    const own = l.startsWith('exported_') ? l.slice('exported_'.length) : l;
    return !family.labels.includes(own) && !SCRAPE_LABELS.has(l);
  });
  return unknown.length > 0
    ? `${name} has no label ${unknown.join(', ')} (it has ${family.labels.join(', ')})`
    : undefined;
}
