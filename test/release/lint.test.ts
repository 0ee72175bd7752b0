/**
 * The rendered manifests of every value set pass the linter with zero findings. kube-linter (the choice)
 * cannot be had here: golang.stackrox.io/kube-linter is refused by the Go module proxy and no PyPI, npm or Debian
 * package ships it; kube-score (github.com/zegl/kube-score), a static checker of the same kind, stands in. Each check
 * the chart does not meet is an exception annotated on the object (kube-score/ignore), with its reason written in
 * templates/_helpers.tpl (form-data.lintExceptions); this test holds the two together.
 */
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { CHART_DIR } from '../../scripts/release/chart.ts';
import { run } from '../../scripts/release/tools.ts';
import { LOCAL_VALUES, VALUES, render, type Manifest } from '../chart/helm.ts';
import { toolsOrSkip } from './tools.ts';

/** Every value set the chart is tested with: its defaults, test/chart/values/, ci/ and values-local.yaml. */
async function valueSets(): Promise<{ name: string; files: string[] }[]> {
  const tests = (await readdir(VALUES)).filter((f) => f.endsWith('.yaml')).sort();
  const ci = (await readdir(path.join(CHART_DIR, 'ci'))).filter((f) => f.endsWith('-values.yaml')).sort();
  return [
    { name: 'defaults', files: [] },
    ...tests.map((f) => ({ name: `test/chart/values/${f}`, files: [path.join(VALUES, f)] })),
    ...ci.map((f) => ({ name: `ci/${f}`, files: [path.join(CHART_DIR, 'ci', f)] })),
    { name: 'values-local.yaml', files: [LOCAL_VALUES] },
  ];
}

const IGNORE = 'kube-score/ignore';

describe('release: the linter (kube-score in place of kube-linter) on every value set', function () {
  this.timeout(1_800_000);
  let kubeScore: string;
  let work: string;

  before(async function () {
    const tools = await toolsOrSkip(this, ['kube-score']);
    if (!tools) return;
    kubeScore = tools['kube-score']!;
    work = await mkdtemp(path.join(os.tmpdir(), 'form-data-lint-'));
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function score(name: string, manifests: readonly Manifest[]): Promise<{ code: number; findings: string[] }> {
    const file = path.join(work, `${name.replace(/[^a-z0-9.-]/gi, '_')}.yaml`);
    await writeFile(file, manifests.map((m) => stringify(m)).join('---\n'));
    const result = await run(kubeScore, ['score', '--output-format', 'ci', file], { timeoutMs: 300_000 });
    const findings = result.stdout.split('\n').filter((l) => l.trim() && !/^\[(OK|SKIPPED)\]/.test(l));
    if (result.stderr.trim()) findings.push(`stderr: ${result.stderr.trim()}`);
    return { code: result.code, findings };
  }

  it('finds nothing in any value set', async () => {
    const sets = await valueSets();
    const report: string[] = [];
    for (const set of sets) {
      const { code, findings } = await score(set.name, await render({ values: set.files }));
      report.push(`${set.name}: ${findings.length === 0 && code === 0 ? 'clean' : findings.join('; ')}`);
    }
    console.log(report.map((l) => `      ${l}`).join('\n'));
    expect(report.filter((l) => !l.endsWith(': clean'))).to.deep.equal([]);
  });

  it('gives a reason in the chart for every exception the objects carry, and would find them without it', async () => {
    const helpers = await readFile(path.join(CHART_DIR, 'templates/_helpers.tpl'), 'utf8');
    const reasoned = new Set(
      [...helpers.matchAll(/^- ([a-z-]+)(?:, ([a-z-]+))?(?: \([a-z]+\))?:/gm)].flatMap((m) => [m[1], m[2]]),
    );
    const local = /Local dependencies[^]*?Recreate\./.exec(helpers);
    expect(local, 'the reason for the local dependencies').to.not.equal(null);
    const used = new Set<string>();
    const stripped: Manifest[] = [];
    for (const set of await valueSets()) {
      for (const m of await render({ values: set.files })) {
        const ignore = m.metadata.annotations?.[IGNORE];
        if (ignore && !/-(postgresql|sqs)$/.test(m.metadata.name)) for (const id of ignore.split(',')) used.add(id);
        if (set.name === 'defaults' && ignore) {
          const annotations = { ...m.metadata.annotations };
          delete annotations[IGNORE];
          stripped.push({ ...m, metadata: { ...m.metadata, annotations } });
        } else if (set.name === 'defaults') stripped.push(m);
      }
    }
    expect(
      [...used].filter((id) => !reasoned.has(id)),
      'exceptions without a reason',
    ).to.deep.equal([]);
    // The linter does run and does fail: without the annotations the defaults have findings.
    const bare = await score('defaults-without-exceptions', stripped);
    expect(bare.code).to.not.equal(0);
    expect(bare.findings.join('\n')).to.contain('ImagePullPolicy is not set to Always');
  });
});
