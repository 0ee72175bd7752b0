/**
 * The forge's workflows pass actionlint (with shellcheck on their `run:` scripts) and do what docs/releasing.md
 * says: ci.yml runs .ci/run; release.yml, on a version tag, builds, signs and attests the image, pushes and signs
 * the chart and creates the release, through the same release script the rehearsal runs.
 */
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { ROOT, run } from '../../scripts/release/tools.ts';
import { toolsOrSkip } from './tools.ts';

const WORKFLOWS = path.join(ROOT, '.github/workflows');

interface Step {
  name?: string;
  uses?: string;
  run?: string;
}
type Workflow = { on: Record<string, unknown>; jobs: Record<string, { steps: Step[] }> };

async function workflow(name: string): Promise<Workflow> {
  return parse(await readFile(path.join(WORKFLOWS, name), 'utf8')) as Workflow;
}

describe('release: the forge workflows', function () {
  this.timeout(1_800_000);
  let actionlint: string;
  let shellcheck = false;

  before(async function () {
    const tools = await toolsOrSkip(this, ['actionlint']);
    if (!tools) return;
    actionlint = tools.actionlint!;
    shellcheck = (await run('sh', ['-c', 'command -v shellcheck'])).code === 0;
    if (!shellcheck && process.env.CI) throw new Error('shellcheck is missing under CI (.ci/run installs it)');
    if (!shellcheck) console.log('      (shellcheck missing: actionlint checks the workflows without it)');
  });

  it('pass actionlint', async () => {
    const files = (await readdir(WORKFLOWS)).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(WORKFLOWS, f));
    expect(files.map((f) => path.basename(f)).sort()).to.deep.equal(['ci.yml', 'release.yml']);
    const result = await run(actionlint, ['-no-color', '-oneline', ...files]);
    expect(result.stdout + result.stderr).to.equal('');
    expect(result.code).to.equal(0);
  });

  it('actionlint refuses a broken workflow (it does check)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'form-data-actionlint-'));
    try {
      const file = path.join(dir, 'broken.yml');
      await writeFile(
        file,
        'on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.no_such_thing }}\n',
      );
      const result = await run(actionlint, ['-no-color', '-oneline', file]);
      expect(result.code).to.not.equal(0);
      expect(result.stdout).to.contain('no_such_thing');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ci.yml runs .ci/run; release.yml runs on version tags and signs what it publishes', async () => {
    const ci = await workflow('ci.yml');
    expect(Object.values(ci.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ''))).to.satisfy((runs: string[]) =>
      runs.some((r) => r.includes('bash .ci/run')),
    );
    const release = await workflow('release.yml');
    expect(release.on).to.deep.equal({ push: { tags: ['v[0-9]+.[0-9]+.[0-9]+*'] } });
    const script = Object.values(release.jobs)
      .flatMap((j) => j.steps.map((s) => s.run ?? ''))
      .join('\n');
    for (const command of [
      'npm run --silent release -- --check --tag',
      'cosign sign --yes "$IMAGE"',
      'cosign attest --yes --type cyclonedx --predicate sbom.cdx.json',
      'npm run --silent release -- --stage-chart',
      'helm push',
      'cosign sign --yes "${CHARTS#oci://}/form-data@$digest"',
      'cosign verify-attestation --type cyclonedx',
      'npm run --silent release -- --notes',
      'gh release create',
    ])
      expect(script).to.contain(command);
  });
});
