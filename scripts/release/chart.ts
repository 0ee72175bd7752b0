/**
 * The chart's release metadata: its versions, the repository address written once in Chart.yaml (`home`), the image
 * reference derived from it, and the Artifact Hub annotations derived from CHANGELOG.md; helm-docs writes the README.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Scalar, parse, parseDocument, stringify } from 'yaml';
import { parseChangelog, sectionFor, type ChangelogRelease } from './changelog.ts';
import { ROOT, run, toolPath } from './tools.ts';

export const CHART_DIR = path.join(ROOT, 'charts/form-data');
export const CHANGELOG = path.join(ROOT, 'CHANGELOG.md');
export const LOCAL_VALUES_FILE = path.join(CHART_DIR, 'values-local.yaml');

/** The fields of Chart.yaml the release reads. */
export interface ChartMeta {
  name: string;
  version: string;
  appVersion: string;
  home: string;
  sources: string[];
  icon: string;
  maintainers: { name: string; url?: string; email?: string }[];
  annotations: Record<string, string>;
}

export async function readChart(dir = CHART_DIR): Promise<ChartMeta> {
  return parse(await readFile(path.join(dir, 'Chart.yaml'), 'utf8')) as ChartMeta;
}

export async function readChangelog(file = CHANGELOG): Promise<ChangelogRelease[]> {
  return parseChangelog(await readFile(file, 'utf8'));
}

/** owner and name of the repository `home` names (https://github.com/OWNER/NAME). */
export function repositoryOf(chart: Pick<ChartMeta, 'home'>): { owner: string; name: string } {
  const match = /^https:\/\/github\.com\/([^/]+)\/([^/]+)$/.exec(chart.home);
  if (!match) throw new Error(`Chart.yaml home must be https://github.com/OWNER/NAME, not ${chart.home}`);
  return { owner: match[1]!, name: match[2]! };
}

/** The published image's repository: the forge's container registry, named after the repository. */
export function imageRepository(chart: Pick<ChartMeta, 'home'>): string {
  const { owner, name } = repositoryOf(chart);
  return `ghcr.io/${owner.toLowerCase()}/${name.toLowerCase()}`;
}

/** The Artifact Hub annotations that follow from the changelog and appVersion (the others are written by hand). */
export function derivedAnnotations(chart: ChartMeta, releases: readonly ChangelogRelease[]): Record<string, string> {
  const release = sectionFor(releases, chart.version);
  const changes = release.changes.flatMap(({ kind, items }) =>
    items.map((description) => ({ kind: kind.toLowerCase(), description })),
  );
  return {
    'artifacthub.io/images': stringify([{ name: chart.name, image: `${imageRepository(chart)}:${chart.appVersion}` }]),
    'artifacthub.io/containsSecurityUpdates': String(release.changes.some((c) => c.kind === 'Security')),
    'artifacthub.io/prerelease': String(chart.version.includes('-')),
    'artifacthub.io/changes': stringify(changes, { lineWidth: 0 }),
  };
}

/** Writes the derived annotations into Chart.yaml, keeping its comments and order. Resolves to whether it changed. */
export async function writeDerivedAnnotations(dir = CHART_DIR, changelog = CHANGELOG): Promise<boolean> {
  const file = path.join(dir, 'Chart.yaml');
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  const derived = derivedAnnotations(doc.toJS() as ChartMeta, await readChangelog(changelog));
  for (const [key, value] of Object.entries(derived)) {
    const node = new Scalar(value);
    node.type = value.includes('\n') ? Scalar.BLOCK_LITERAL : Scalar.QUOTE_SINGLE;
    doc.setIn(['annotations', key], node);
  }
  const out = doc.toString({ singleQuote: true });
  if (out === text) return false;
  await writeFile(file, out);
  return true;
}

/** Runs helm-docs on a chart directory (README.md from README.md.gotmpl and values.yaml's `# --` comments). */
export async function helmDocs(dir = CHART_DIR): Promise<void> {
  const result = await run(
    await toolPath('helm-docs'),
    [
      '--chart-search-root',
      dir,
      '--template-files',
      'README.md.gotmpl',
      '--sort-values-order',
      'file',
      '--log-level',
      'warning',
    ],
    { cwd: dir },
  );
  // helm-docs logs a template error as a warning and exits 0.
  if (result.code !== 0 || /level=(warning|error|fatal)/.test(result.stderr))
    throw new Error(`helm-docs failed (${result.code}): ${result.stderr.trim()}`);
}

/** `npm run chart:docs`: annotations from the changelog, then the README. */
export async function writeChartDocs(): Promise<void> {
  await writeDerivedAnnotations();
  await helmDocs();
}

/**
 * What `npm run chart:docs` would change, on a copy of the chart: an empty list when Chart.yaml's derived
 * annotations and README.md are up to date.
 */
export async function staleChartDocs(): Promise<string[]> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'form-data-chart-docs-'));
  try {
    const copy = path.join(work, 'form-data');
    await cp(CHART_DIR, copy, { recursive: true });
    await writeDerivedAnnotations(copy);
    await helmDocs(copy);
    const stale: string[] = [];
    for (const file of ['Chart.yaml', 'README.md']) {
      const [now, fresh] = await Promise.all([
        readFile(path.join(CHART_DIR, file), 'utf8').catch(() => ''),
        readFile(path.join(copy, file), 'utf8'),
      ]);
      if (now !== fresh) stale.push(`charts/form-data/${file}: ${firstDifference(now, fresh)}`);
    }
    return stale;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function firstDifference(now: string, fresh: string): string {
  const a = now.split('\n');
  const b = fresh.split('\n');
  const at = a.findIndex((line, i) => line !== b[i]);
  const line = at === -1 ? a.length : at;
  return `line ${line + 1} is ${JSON.stringify(a[line] ?? '(end)')}, npm run chart:docs writes ${JSON.stringify(b[line] ?? '(end)')}`;
}

/**
 * A copy of the chart for packaging, under `dest`/form-data, whose values.yaml names the published image's
 * repository (comments kept), so that `helm install oci://…/form-data --version X` deploys the image of the release.
 */
export async function stageChart(dest: string, repository: string): Promise<string> {
  const staged = path.join(dest, 'form-data');
  await rm(staged, { recursive: true, force: true });
  await cp(CHART_DIR, staged, { recursive: true });
  const file = path.join(staged, 'values.yaml');
  const doc = parseDocument(await readFile(file, 'utf8'));
  if (!doc.hasIn(['image', 'repository'])) throw new Error('values.yaml has no image.repository');
  doc.setIn(['image', 'repository'], repository);
  await writeFile(file, doc.toString());
  return staged;
}

/** The release notes of the chart's version: its CHANGELOG.md section as written. */
export async function releaseNotes(): Promise<string> {
  const [chart, releases] = await Promise.all([readChart(), readChangelog()]);
  return `${sectionFor(releases, chart.version).body}\n`;
}
