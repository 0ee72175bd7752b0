/**
 * The documentation's links: every relative link in README.md, docs/ and the
 * pages they link to names a file of the repository, and every anchor a heading
 * of the page it names (as GitHub makes anchors).
 */
import { expect } from 'chai';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { headings, links } from './support/markdown.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function docPages(root: string): Promise<string[]> {
  const docs = (await readdir(path.join(root, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  return ['README.md', ...docs.sort()];
}

/** Follows the relative links from `start` (paths under `root`); returns what does not resolve. */
async function brokenLinks(root: string, start: string[]): Promise<{ broken: string[]; pages: string[] }> {
  const pending = [...start];
  const seen = new Set<string>();
  const broken: string[] = [];
  while (pending.length > 0) {
    const page = pending.shift()!;
    if (seen.has(page)) continue;
    seen.add(page);
    const text = await readFile(path.join(root, page), 'utf8');
    for (const { target, line } of links(text)) {
      if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto: …
      const [file = '', anchor] = target.split('#');
      const resolved = file === '' ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), file));
      const where = `${page}:${line} → ${target}`;
      const absolute = path.join(root, resolved);
      if (resolved.startsWith('..') || !existsSync(absolute)) {
        broken.push(`${where}: no file ${resolved}`);
        continue;
      }
      if (statSync(absolute).isDirectory()) continue;
      if (resolved.endsWith('.md')) pending.push(resolved);
      if (anchor === undefined) continue;
      if (!resolved.endsWith('.md')) {
        broken.push(`${where}: an anchor into a file that is not Markdown`);
        continue;
      }
      const anchors = headings(await readFile(absolute, 'utf8')).map((h) => h.anchor);
      if (!anchors.includes(anchor)) broken.push(`${where}: no heading with the anchor #${anchor}`);
    }
  }
  return { broken, pages: [...seen] };
}

describe('documentation links', () => {
  it('README.md links to every page of docs/', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const linked = new Set(links(readme).map((l) => l.target.split('#')[0]));
    const unlinked = (await docPages(ROOT)).slice(1).filter((page) => !linked.has(page));
    expect(unlinked, 'pages of docs/ the README does not link to').to.deep.equal([]);
  });

  it('every relative link and anchor of README.md, docs/ and the pages they link to resolves', async () => {
    const { broken, pages } = await brokenLinks(ROOT, await docPages(ROOT));
    expect(broken).to.deep.equal([]);
    expect(pages).to.include.members(['README.md', 'docs/operating.md', 'chaos/FINDINGS.md']);
  });

  it('reports a missing file, a missing anchor and an anchor that only a code block holds', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'form-data-docs-'));
    try {
      await mkdir(path.join(root, 'docs'));
      await writeFile(
        path.join(root, 'README.md'),
        '# Title\n\n[ok](docs/a.md#web-5xx-rate) [gone](docs/b.md) [bad](docs/a.md#web-down) [self](#title)\n',
      );
      await writeFile(path.join(root, 'docs/a.md'), '# A\n\n## Web 5xx rate\n\n```\n## Web down\n[x](#nowhere)\n```\n');
      const { broken } = await brokenLinks(root, await docPages(root));
      expect(broken).to.deep.equal([
        'README.md:3 → docs/b.md: no file docs/b.md',
        'README.md:3 → docs/a.md#web-down: no heading with the anchor #web-down',
      ]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('makes anchors as GitHub does', () => {
    const page = "## A\n## A\n## Exporting forms (CSV)\n## The chart's tests\n### `npm run export` in Kubernetes\n";
    expect(headings(page).map((h) => h.anchor)).to.deep.equal([
      'a',
      'a-1',
      'exporting-forms-csv',
      'the-charts-tests',
      'npm-run-export-in-kubernetes',
    ]);
  });
});
