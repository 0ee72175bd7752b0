/**
 * CHANGELOG.md in Keep a Changelog form: `## [Unreleased]`, then `## [X.Y.Z] - YYYY-MM-DD` sections, each with
 * `### Added|Changed|Deprecated|Removed|Fixed|Security` lists. Hand-written: a line-based reader of that one
 * shape, which also refuses anything else, so the file stays in the form the release notes and Artifact Hub read.
 */
export const CHANGE_KINDS = ['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

export interface ChangelogRelease {
  /** X.Y.Z, or 'Unreleased'. */
  version: string;
  /** YYYY-MM-DD; null for Unreleased. */
  date: string | null;
  /** Items per kind, in file order; each item's lines joined by one space. */
  changes: { kind: ChangeKind; items: string[] }[];
  /** The section's Markdown below its heading, as written (release notes). */
  body: string;
}

/** The changelog does not have the expected shape. */
export class ChangelogError extends Error {
  override name = 'ChangelogError';
}

const RELEASE = /^## \[(Unreleased|\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\](?: - (\d{4}-\d{2}-\d{2}))?$/;
const KIND = /^### (.+)$/;

/** The releases of a changelog, newest first (Unreleased, when present, is the first). */
export function parseChangelog(text: string): ChangelogRelease[] {
  const releases: ChangelogRelease[] = [];
  let current: ChangelogRelease | undefined;
  let kind: { kind: ChangeKind; items: string[] } | undefined;
  let bodyLines: string[] = [];
  const close = (): void => {
    if (current) current.body = bodyLines.join('\n').trim();
    bodyLines = [];
  };
  for (const [index, line] of text.split('\n').entries()) {
    const where = `CHANGELOG.md line ${index + 1}`;
    const release = RELEASE.exec(line);
    if (line.startsWith('## ')) {
      if (!release)
        throw new ChangelogError(`${where}: expected "## [X.Y.Z] - YYYY-MM-DD" or "## [Unreleased]": ${line}`);
      const [, version, date] = release as unknown as [string, string, string | undefined];
      if ((version === 'Unreleased') !== (date === undefined))
        throw new ChangelogError(`${where}: a released version has a date, Unreleased none: ${line}`);
      close();
      current = { version, date: date ?? null, changes: [], body: '' };
      kind = undefined;
      releases.push(current);
      continue;
    }
    if (!current) continue;
    bodyLines.push(line);
    const heading = KIND.exec(line);
    if (heading) {
      const name = heading[1] as ChangeKind;
      if (!CHANGE_KINDS.includes(name))
        throw new ChangelogError(`${where}: "${heading[1]}" is not one of ${CHANGE_KINDS.join(', ')}`);
      kind = { kind: name, items: [] };
      current.changes.push(kind);
      continue;
    }
    if (line.startsWith('- ')) {
      if (!kind) throw new ChangelogError(`${where}: a list item outside a ### section`);
      kind.items.push(line.slice(2).trim());
    } else if (/^\s+\S/.test(line) && kind && kind.items.length > 0) {
      kind.items[kind.items.length - 1] += ` ${line.trim()}`;
    } else if (line.trim() !== '') {
      throw new ChangelogError(`${where}: expected a "### Kind" heading or a "- " list item: ${line}`);
    }
  }
  close();
  return releases;
}

/** The section of one version; throws when the changelog has none. */
export function releaseOf(releases: readonly ChangelogRelease[], version: string): ChangelogRelease {
  const found = releases.find((r) => r.version === version);
  if (!found) throw new ChangelogError(`CHANGELOG.md has no "## [${version}] - YYYY-MM-DD" section`);
  return found;
}

/** -1, 0 or 1 as X.Y.Z a is below, equal to or above b (pre-release tags are ignored). */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string): number[] => v.split('-')[0]!.split('.').map(Number);
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  return 0;
}

/**
 * The section that describes a chart version: its own `## [X.Y.Z] - date`, or, for a version above every released
 * one (bumped since the last release, not yet released), `## [Unreleased]`.
 */
export function sectionFor(releases: readonly ChangelogRelease[], version: string): ChangelogRelease {
  const own = releases.find((r) => r.version === version);
  if (own) return own;
  const released = releases.filter((r) => r.date !== null);
  const unreleased = releases.find((r) => r.version === 'Unreleased');
  if (unreleased && released.every((r) => compareVersions(version, r.version) > 0)) return unreleased;
  return releaseOf(releases, version);
}
