/**
 * chart-testing's `ct lint` on the chart, as chart repositories run it: Chart.yaml against ct's schema (yamale),
 * yamllint on Chart.yaml, values.yaml and the value sets, the maintainers, `helm lint` with each
 * charts/form-data/ci/*-values.yaml, and the version-bump check against the last release.
 *
 * ct finds changed charts and old versions through git (a remote's target branch). A clean clone has no such
 * branch to compare with, so each run builds a throwaway repository: `main` holds the chart as last released (the
 * tag v<version> of the newest dated CHANGELOG.md section at or below the chart's version, when the repository has it;
 * else no chart: a new chart), and the branch under test holds the chart as it is on disk.
 *
 * The maintainer check asks the forge (https://github.com/<name>) whether each maintainer's account exists; only
 * GitHub Actions reaches it, so elsewhere `--validate-maintainers=false` and this test checks that Chart.yaml names
 * maintainers (ct's first condition, which it refuses below without network).
 */
import { expect } from 'chai';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CHART_DIR, readChangelog, readChart } from '../../scripts/release/chart.ts';
import { compareVersions } from '../../scripts/release/changelog.ts';
import { ROOT, must, run, toolModuleDir, type CommandResult } from '../../scripts/release/tools.ts';
import { helmBinary } from '../chart/helm.ts';
import { toolsOrSkip } from './tools.ts';

/** The forge is reachable only on its own runners. */
const VALIDATE_MAINTAINERS = process.env.GITHUB_ACTIONS === 'true';

describe('release: chart-testing (ct lint)', function () {
  this.timeout(1_800_000);
  let env: NodeJS.ProcessEnv;
  let ct: string;
  let etc: string;
  const work: string[] = [];

  before(async function () {
    const tools = await toolsOrSkip(this, ['ct', 'yamllint', 'yamale']);
    if (!tools) return;
    ct = tools.ct!;
    etc = path.join(await toolModuleDir('ct'), 'etc');
    const helm = await helmBinary(4);
    const dirs = [path.dirname(helm), path.dirname(tools.yamllint!), path.dirname(tools.yamale!)];
    env = { ...process.env, PATH: [...dirs, process.env.PATH].join(path.delimiter) };
    // helm is looked up as `helm`: the tests' Helm 4 must be the one on PATH.
    if (path.basename(helm) !== 'helm') throw new Error(`the Helm binary is not named helm: ${helm}`);
  });

  after(async () => {
    await Promise.all(work.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  const git = (cwd: string, args: string[]): Promise<string> =>
    must('git', ['-c', 'user.name=ct', '-c', 'user.email=ct@localhost', '-c', 'commit.gpgsign=false', ...args], {
      cwd,
    });

  /**
   * A repository whose origin/main holds `base` (the chart's files, or none) and whose HEAD holds the chart on
   * disk, changed by `change`.
   */
  async function repository(
    base: 'none' | 'current' | { tag: string },
    change?: (chart: string) => Promise<void>,
  ): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'form-data-ct-'));
    work.push(dir);
    const chart = path.join(dir, 'charts/form-data');
    await git(dir, ['init', '-q', '-b', 'main']);
    if (base === 'current') await cp(CHART_DIR, chart, { recursive: true });
    else if (base !== 'none') {
      const archive = path.join(dir, '.base.tar');
      await git(ROOT, ['archive', '--output', archive, base.tag, 'charts/form-data']);
      await must('tar', ['-xf', archive, '-C', dir]);
      await rm(archive);
    }
    await git(dir, ['add', '-A']);
    await git(dir, ['commit', '-q', '--allow-empty', '-m', 'base']);
    // The remote is never fetched: its branch is set here, its URL names the forge for the maintainer check.
    await git(dir, ['remote', 'add', 'origin', `${(await readChart()).home}.git`]);
    await git(dir, ['update-ref', 'refs/remotes/origin/main', 'HEAD']);
    await git(dir, ['checkout', '-q', '-b', 'change']);
    await rm(chart, { recursive: true, force: true });
    await cp(CHART_DIR, chart, { recursive: true });
    await change?.(chart);
    await git(dir, ['add', '-A']);
    await git(dir, ['commit', '-q', '--allow-empty', '-m', 'change']);
    return dir;
  }

  function lint(dir: string, validateMaintainers = VALIDATE_MAINTAINERS): Promise<CommandResult> {
    return run(
      ct,
      [
        'lint',
        '--config',
        path.join(ROOT, 'ct.yaml'),
        '--chart-yaml-schema',
        path.join(etc, 'chart_schema.yaml'),
        '--lint-conf',
        path.join(etc, 'lintconf.yaml'),
        `--validate-maintainers=${validateMaintainers}`,
      ],
      { cwd: dir, env, timeoutMs: 600_000 },
    );
  }

  /**
   * The tag of the newest release at or below the chart's version that this repository has: the chart as last
   * released (a chart changed since then must carry a higher version).
   */
  async function lastRelease(): Promise<{ tag: string } | 'none'> {
    const [chart, releases] = await Promise.all([readChart(), readChangelog()]);
    const earlier = releases.filter((r) => r.date !== null && compareVersions(r.version, chart.version) <= 0);
    for (const release of earlier) {
      const tag = `v${release.version}`;
      if ((await run('git', ['rev-parse', '--verify', '--quiet', `${tag}^{commit}`], { cwd: ROOT })).code === 0)
        return { tag };
    }
    return 'none';
  }

  it('passes on the chart, with every ci/ value set, against the last release', async () => {
    const base = await lastRelease();
    let result = await lint(await repository(base));
    let out = result.stdout + result.stderr;
    expect(result.code, out).to.equal(0);
    let against = base === 'none' ? 'no earlier release (a new chart)' : base.tag;
    if (base !== 'none' && out.includes('No chart changes detected')) {
      // The chart is exactly as released: nothing for ct to compare, so lint its contents as a new chart.
      against = `${base.tag}, unchanged since`;
      result = await lint(await repository('none'));
      out = result.stdout + result.stderr;
      expect(result.code, out).to.equal(0);
    }
    expect(out).to.contain('All charts linted successfully');
    expect(out).to.match(/New chart detected|Chart version ok/);
    expect(out).to.contain('Validation success');
    const sets = (await readdir(path.join(CHART_DIR, 'ci'))).filter((f) => f.endsWith('-values.yaml'));
    expect(sets).to.have.length.greaterThan(0);
    for (const set of sets) expect(out).to.contain(`Linting chart with values file "charts/form-data/ci/${set}"`);
    console.log(`      ct lint against ${against}: clean`);
  });

  it('refuses a chart change that keeps the version, and accepts it with the version bumped', async () => {
    const touch = async (chart: string): Promise<void> => {
      const values = path.join(chart, 'values.yaml');
      await writeFile(values, (await readFile(values, 'utf8')).replace('replicaCount: 2', 'replicaCount: 3'));
    };
    const kept = await lint(await repository('current', touch));
    expect(kept.code, kept.stdout).to.not.equal(0);
    expect(kept.stdout + kept.stderr).to.contain('Needs a version bump');

    const bumped = await lint(
      await repository('current', async (chart) => {
        await touch(chart);
        const file = path.join(chart, 'Chart.yaml');
        const text = await readFile(file, 'utf8');
        await writeFile(
          file,
          text.replace(/^version: (\d+)\.(\d+)\.(\d+)$/m, (_, a, b, c) => `version: ${a}.${b}.${Number(c) + 1}`),
        );
      }),
    );
    expect(bumped.code, bumped.stdout + bumped.stderr).to.equal(0);
    expect(bumped.stdout).to.contain('Chart version ok');
  });

  it('refuses a chart without maintainers', async () => {
    const chart = await readChart();
    expect(chart.maintainers.length).to.be.greaterThan(0);
    const result = await lint(
      await repository('none', async (dir) => {
        const file = path.join(dir, 'Chart.yaml');
        const text = await readFile(file, 'utf8');
        await writeFile(file, text.replace(/^maintainers:\n(?: {2}.*\n)+/m, ''));
      }),
      true,
    );
    expect(result.code).to.not.equal(0);
    expect(result.stdout + result.stderr).to.contain("chart doesn't have maintainers");
  });
});
