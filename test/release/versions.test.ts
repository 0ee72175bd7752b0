/**
 * The version policy holds (docs/releasing.md#versions): chart version, appVersion, package.json, CHANGELOG.md and
 * the image tag agree, and the chart's metadata follows the repository address written once in Chart.yaml.
 */
import { expect } from 'chai';
import { readChangelog, readChart } from '../../scripts/release/chart.ts';
import { compareVersions, parseChangelog, sectionFor } from '../../scripts/release/changelog.ts';
import { packageVersion, versionProblems } from '../../scripts/release/versions.ts';
import { findAll, render } from '../chart/helm.ts';

describe('release: versions', () => {
  it('chart version, appVersion, package.json, CHANGELOG.md and the Chart.yaml metadata agree', async () => {
    const [chart, releases, app] = await Promise.all([readChart(), readChangelog(), packageVersion()]);
    expect(versionProblems(chart, app, releases)).to.deep.equal([]);
  });

  it('the image the chart deploys by default is tagged with appVersion', async () => {
    const chart = await readChart();
    const manifests = await render();
    const images = findAll(manifests, 'Deployment')
      .concat(findAll(manifests, 'Job'))
      .flatMap((m) => m.spec.template.spec.containers.map((c: { image: string }) => c.image));
    expect(images).to.not.be.empty;
    for (const image of images) expect(image).to.equal(`form-data:${chart.appVersion}`);
  });

  it('refuses what breaks the policy: versions apart, no changelog section, a wrong tag, an undated release', async () => {
    const [chart, releases] = await Promise.all([readChart(), readChangelog()]);
    const apart = versionProblems({ ...chart, appVersion: '9.9.9' }, chart.version, releases);
    expect(apart.join('\n')).to.contain('appVersion 9.9.9 differs');
    const noSection = versionProblems(chart, chart.version, parseChangelog('# Changelog\n'));
    expect(noSection.join('\n')).to.contain(`no "## [${chart.version}]`);
    const tag = versionProblems(chart, chart.version, releases, { tag: 'v0.0.0-other' });
    expect(tag.join('\n')).to.contain('is not v');
    const bumped = { ...chart, version: '99.0.0', appVersion: '99.0.0' };
    const withUnreleased = parseChangelog('# Changelog\n\n## [Unreleased]\n\n### Fixed\n\n- a fix\n');
    expect(sectionFor(withUnreleased, '99.0.0').version).to.equal('Unreleased');
    expect(versionProblems(bumped, '99.0.0', withUnreleased, { tag: 'v99.0.0' }).join('\n')).to.contain(
      'no dated "## [99.0.0]',
    );
  });

  it('reads Keep a Changelog: kinds, continued items, and refuses other shapes', () => {
    const text =
      '# Changelog\n\n## [Unreleased]\n\n## [1.2.0] - 2026-01-02\n\n### Security\n\n- one\n  two\n\n### Fixed\n\n- three\n';
    const [unreleased, release] = parseChangelog(text);
    expect(unreleased!.version).to.equal('Unreleased');
    expect(release!.changes).to.deep.equal([
      { kind: 'Security', items: ['one two'] },
      { kind: 'Fixed', items: ['three'] },
    ]);
    expect(() => parseChangelog('## [1.0.0]\n')).to.throw('a released version has a date');
    expect(() => parseChangelog('## [1.0.0] - 2026-01-01\n\n### Improved\n')).to.throw('is not one of');
    expect(compareVersions('1.10.0', '1.9.3')).to.equal(1);
  });
});
