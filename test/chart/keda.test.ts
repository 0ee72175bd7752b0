/**
 * The chart's third-party series against the exporter that makes them: every
 * series an alert or dashboard panel reads that is not the project's own (nor
 * Prometheus's `up`) must be one KEDA exports, with the labels it uses, as
 * KEDA's source at the chart's minimum version defines them. The running
 * operator's /metrics is read by test/cluster/keda.test.ts.
 */
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CHART } from './helm.ts';
import {
  goBinary,
  KEDA_MODULE,
  KEDA_VERSION,
  kedaFamilies,
  kedaSource,
  mismatch,
  thirdPartySelectors,
  type ExportedFamily,
} from './exporters.ts';

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
});
