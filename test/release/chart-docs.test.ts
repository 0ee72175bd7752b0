/**
 * The chart's generated parts are current: README.md is what helm-docs writes from README.md.gotmpl and values.yaml,
 * and Chart.yaml's Artifact Hub annotations are what CHANGELOG.md and appVersion give (`npm run chart:docs`).
 */
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { CHART_DIR, staleChartDocs } from '../../scripts/release/chart.ts';
import { toolsOrSkip } from './tools.ts';

describe('release: the chart README and Artifact Hub annotations', function () {
  this.timeout(1_800_000);

  before(async function () {
    await toolsOrSkip(this, ['helm-docs']);
  });

  it('are what npm run chart:docs writes (helm-docs, CHANGELOG.md)', async () => {
    expect(await staleChartDocs()).to.deep.equal([]);
  });

  it('documents every value of values.yaml in the README values table (itself or the object holding it)', async () => {
    const readme = await readFile(path.join(CHART_DIR, 'README.md'), 'utf8');
    const leaves: string[] = [];
    const walk = (value: unknown, prefix: string): void => {
      if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
        for (const [k, v] of Object.entries(value)) walk(v, prefix ? `${prefix}.${k}` : k);
      } else leaves.push(prefix);
    };
    walk(parse(await readFile(path.join(CHART_DIR, 'values.yaml'), 'utf8')), '');
    // A key whose `# --` comment sits on an object is documented as that object, with its leaves in the default.
    // A list without one is documented item by item (key[0], key[1], …).
    const documented = (key: string): boolean =>
      readme.includes(`| ${key}[0]`) ||
      key.split('.').some((_, i, parts) => readme.includes(`| ${parts.slice(0, i + 1).join('.')} |`));
    const missing = leaves.filter((key) => !documented(key));
    expect(missing, 'values absent from the README table').to.deep.equal([]);
    expect(readme).to.match(/^## Installing$/m);
    expect(readme).to.match(/^## Upgrading$/m);
    expect(readme).to.match(/^## Connection budget$/m);
    expect(readme).to.match(/^## Autoscaling: KEDA or HPA$/m);
    expect(readme).to.match(/^## Security$/m);
  });
});
