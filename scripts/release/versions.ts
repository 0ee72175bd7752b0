/**
 * The version policy's checks (docs/releasing.md#versions): one version for the app (package.json), the chart
 * (version) and its appVersion, which is also the image's tag; a CHANGELOG.md section for it; and, at release time,
 * a git tag v<version> and a dated section.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChangelogRelease } from './changelog.ts';
import { sectionFor } from './changelog.ts';
import { derivedAnnotations, imageRepository, repositoryOf, type ChartMeta } from './chart.ts';
import { ROOT } from './tools.ts';

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$/;

export async function packageVersion(): Promise<string> {
  return (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** What disagrees, one line each; empty when the versions, changelog and metadata agree. */
export function versionProblems(
  chart: ChartMeta,
  appPackageVersion: string,
  releases: readonly ChangelogRelease[],
  release?: { tag: string },
): string[] {
  const problems: string[] = [];
  if (!SEMVER.test(chart.version)) problems.push(`Chart.yaml version ${chart.version} is not a semantic version`);
  if (chart.appVersion !== chart.version)
    problems.push(`Chart.yaml appVersion ${chart.appVersion} differs from version ${chart.version}`);
  if (appPackageVersion !== chart.version)
    problems.push(`package.json version ${appPackageVersion} differs from Chart.yaml version ${chart.version}`);
  let section: ChangelogRelease | undefined;
  try {
    section = sectionFor(releases, chart.version);
  } catch (error) {
    problems.push((error as Error).message);
  }
  try {
    const derived = derivedAnnotations(chart, releases);
    for (const [key, value] of Object.entries(derived))
      if (chart.annotations?.[key] !== value) problems.push(`Chart.yaml ${key} is stale: run npm run chart:docs`);
    const { owner, name } = repositoryOf(chart);
    const home = `https://github.com/${owner}/${name}`;
    if (!chart.sources?.includes(home)) problems.push(`Chart.yaml sources do not name ${home}`);
    if (!chart.maintainers?.some((m) => m.name === owner)) problems.push(`Chart.yaml maintainers do not name ${owner}`);
    if (!chart.icon?.startsWith(`https://raw.githubusercontent.com/${owner}/${name}/`))
      problems.push(`Chart.yaml icon is not a file of ${home}`);
    for (const line of (chart.annotations?.['artifacthub.io/links'] ?? '').split('\n').filter((l) => /url:/.test(l)))
      if (!line.includes(home)) problems.push(`artifacthub.io/links: ${line.trim()} is not under ${home}`);
    if (!derived['artifacthub.io/images']!.includes(`${imageRepository(chart)}:${chart.appVersion}`))
      problems.push('the images annotation does not name the image at appVersion');
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (release) {
    if (release.tag !== `v${chart.version}`) problems.push(`tag ${release.tag} is not v${chart.version}`);
    if (section && section.date === null)
      problems.push(`CHANGELOG.md has no dated "## [${chart.version}] - YYYY-MM-DD" section to release`);
  }
  return problems;
}
