/**
 * The chart's third-party series against the exporter that makes them: every
 * series an alert or dashboard panel reads that is not the project's own (nor
 * Prometheus's `up`) must be one KEDA exports, with the labels it uses, as
 * KEDA's source at the chart's minimum version defines them. With a cluster
 * (KUBECONFIG and a KEDA operator), the running operator's /metrics is read too.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { CHART, render, type Manifest } from './helm.ts';
import { chartExpressions } from './expressions.ts';
import { parsePromQL } from './promql.ts';
import {
  goBinary,
  KEDA_MODULE,
  KEDA_VERSION,
  kedaFamilies,
  kedaSource,
  SCRAPE_LABELS,
  seriesNames,
  type ExportedFamily,
} from './exporters.ts';
import { findTool } from '../../harness/netns.ts';

const run = promisify(execFile);
/** Series of the services themselves (prom-client) and of Prometheus; prometheus.test.ts scrapes those for real. */
const OWN = /^(form_data_|nodejs_|process_)|^up$/;
const GRAFANA_VALUES = { namespace: 'forms', web_job: 'form-data-web', worker_job: 'form-data-worker' };

/** Every third-party selector the chart's alerts and dashboard read (KEDA on, its alert on), with where. */
async function thirdPartySelectors(): Promise<{ name: string; labels: string[]; where: string }[]> {
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
function mismatch(families: readonly ExportedFamily[], name: string, labels: readonly string[]): string | undefined {
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

describe(`chart: third-party series against KEDA ${KEDA_VERSION}'s source`, function () {
  this.timeout(300_000);
  let families: ExportedFamily[];
  let dir: string;

  before(async function () {
    const go = await goBinary();
    if (!go) {
      const why = `go not found: reading ${KEDA_MODULE}@v${KEDA_VERSION} needs go mod download`;
      if (process.env.CI) throw new Error(`${why}; required under CI`);
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    dir = await kedaSource(go);
    families = await kedaFamilies(dir);
  });

  it('names the minimum KEDA version once, in the chart, and it is the first release with fallback at zero', async () => {
    const helpers = await readFile(path.join(CHART, 'templates/_helpers.tpl'), 'utf8');
    const named = /define "form-data\.kedaMinimumVersion" -\}\}([^{]+)\{\{/.exec(helpers)?.[1];
    expect(named, 'form-data.kedaMinimumVersion').to.equal(KEDA_VERSION);
    const changelog = await readFile(path.join(dir, 'CHANGELOG.md'), 'utf8');
    const section = changelog.slice(changelog.indexOf(`## v${KEDA_VERSION}`));
    const release = section.slice(0, section.indexOf('\n## v', 1));
    expect(release, `KEDA v${KEDA_VERSION}'s changelog`).to.match(
      /Apply fallback in polling loop to enable scaling from zero.*#7239/,
    );
    // The release before it does not have it (its own section ends where the older ones begin).
    const older = section.slice(release.length);
    expect(older).not.to.match(/Apply fallback in polling loop to enable scaling from zero/);
  });

  it('reads only series KEDA exports, under the names and labels KEDA gives them', async () => {
    expect(
      families.map((f) => f.name),
      'the parser finds KEDA families',
    ).to.include('keda_build_info');
    const selectors = await thirdPartySelectors();
    expect(selectors, 'third-party series the chart reads (FormDataScalerErrors)').to.not.be.empty;
    const wrong = selectors
      .map((s) => ({ ...s, problem: mismatch(families, s.name, s.labels) }))
      .filter((s) => s.problem)
      .map((s) => `${s.where}: ${s.problem}`);
    expect(wrong).to.deep.equal([]);
    // The check can fail: the name the alert used to read is not exported.
    expect(mismatch(families, 'keda_scaler_errors_total', ['scaledObject'])).to.equal(
      'keda_scaler_errors_total is not exported',
    );
    expect(mismatch(families, 'keda_scaled_object_errors_total', ['scaler'])).to.match(/no label scaler/);
  });

  it("matches a running KEDA operator's /metrics (with KUBECONFIG and KEDA; the cluster tests)", async function () {
    const kubectl = await findTool('kubectl');
    if (!process.env.KUBECONFIG || !kubectl) {
      console.log('      skipped: no cluster (KUBECONFIG unset or kubectl missing); the cluster tests run this');
      return this.skip();
    }
    const { stdout: pods } = await run(kubectl, [
      'get',
      'pods',
      '-A',
      '-l',
      'app=keda-operator',
      '-o',
      'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}',
    ]);
    const pod = pods.trim().split('\n').find(Boolean);
    if (!pod) {
      console.log('      skipped: no KEDA operator pod (label app=keda-operator) in the cluster');
      return this.skip();
    }
    const [ns, name] = pod.split('/');
    const { stdout: exposition } = await run(
      kubectl,
      ['get', '--raw', `/api/v1/namespaces/${ns}/pods/${name}:8080/proxy/metrics`],
      { maxBuffer: 32 * 1024 * 1024 },
    );
    const version = /keda_build_info\{[^}]*version="v?([0-9.]+)/.exec(exposition)?.[1];
    expect(version, 'keda_build_info version').to.be.a('string');
    const [a, b, c] = version!.split('.').map(Number);
    const [ma, mb, mc] = KEDA_VERSION.split('.').map(Number);
    expect(a! * 1e6 + b! * 1e3 + c!, `KEDA ${version} is at least ${KEDA_VERSION}`).to.be.at.least(
      ma! * 1e6 + mb! * 1e3 + mc!,
    );
    // Families appear once a label set was recorded; those that did must carry the labels the chart reads.
    for (const s of await thirdPartySelectors()) {
      const line = new RegExp(`^${s.name}\\{([^}]*)\\}`, 'm').exec(exposition);
      if (!line) continue;
      const labels = [...line[1]!.matchAll(/(\w+)="/g)].map((m) => m[1]!);
      for (const l of s.labels.filter((x) => !SCRAPE_LABELS.has(x))) {
        expect(labels, `${s.name} on the running operator`).to.include(l.replace(/^exported_/, ''));
      }
    }
  });
});
