/**
 * Reading the project's Markdown as GitHub renders it: headings and their
 * anchors (github-slugger, GitHub's own algorithm), sections, tables and links.
 */
import GithubSlugger from 'github-slugger';

/** One ATX heading outside code fences. */
export interface Heading {
  depth: number;
  text: string;
  /** The anchor GitHub gives it, with -1, -2 … for repeated headings. */
  anchor: string;
  line: number;
}

/** Lines outside fenced code blocks, with their 0-based index. */
function proseLines(markdown: string): Array<{ text: string; index: number }> {
  const out: Array<{ text: string; index: number }> = [];
  let fence: string | undefined;
  markdown.split('\n').forEach((text, index) => {
    const marker = /^\s*(```+|~~~+)/.exec(text)?.[1];
    if (marker !== undefined) {
      if (fence === undefined) fence = marker[0];
      else if (marker[0] === fence) fence = undefined;
      return;
    }
    if (fence === undefined) out.push({ text, index });
  });
  return out;
}

/** Text of a heading as GitHub slugs it: inline code and link syntax removed. */
function headingText(raw: string): string {
  return raw
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replaceAll('`', '')
    .trim();
}

/** Every heading of a document, in order. */
export function headings(markdown: string): Heading[] {
  const slugger = new GithubSlugger();
  const out: Heading[] = [];
  for (const { text, index } of proseLines(markdown)) {
    const m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(text);
    if (!m) continue;
    const plain = headingText(m[2]!);
    out.push({ depth: m[1]!.length, text: plain, anchor: slugger.slug(plain), line: index });
  }
  return out;
}

/** The part of a document under a heading, up to the next heading of the same or a higher level. */
export function section(markdown: string, title: string): string {
  const all = headings(markdown);
  const start = all.findIndex((h) => h.text === title);
  if (start === -1) throw new Error(`no heading "${title}"`);
  const end = all.slice(start + 1).find((h) => h.depth <= all[start]!.depth);
  return markdown.split('\n').slice(all[start]!.line, end?.line).join('\n');
}

/** Headings below a heading, at exactly one level deeper. */
export function subheadings(markdown: string, title: string): Heading[] {
  const all = headings(markdown);
  const start = all.findIndex((h) => h.text === title);
  if (start === -1) throw new Error(`no heading "${title}"`);
  const depth = all[start]!.depth;
  const out: Heading[] = [];
  for (const h of all.slice(start + 1)) {
    if (h.depth <= depth) break;
    if (h.depth === depth + 1) out.push(h);
  }
  return out;
}

/** Body rows of the first table in a piece of Markdown, as trimmed cells. */
export function tableRows(markdown: string): string[][] {
  return markdown
    .split('\n')
    .filter((l) => l.startsWith('|') && !/^\|\s*:?-{3,}/.test(l))
    .slice(1)
    .map((l) =>
      l
        .replace(/^\|/, '')
        .replace(/\|\s*$/, '')
        .split(' | ')
        .map((c) => c.trim()),
    );
}

/** One row of a settings table (`variable | default | allowed | what it does`). */
export interface SettingRow {
  names: string[];
  default: string | undefined;
  allowed: string | undefined;
  description: string | undefined;
}

/** The first table under the heading `title`, read as a settings table: a row's names split at " / ", without backticks. */
export function settingsTable(markdown: string, title: string): SettingRow[] {
  return tableRows(section(markdown, title)).map(([names, def, allowed, description]) => ({
    names: (names ?? '').split(' / ').map((n) => n.replaceAll('`', '')),
    default: def,
    allowed,
    description,
  }));
}

/** The row a settings table should have for `setting`, whose allowed values read `allowed`. */
export function settingRow(
  setting: { names: readonly string[]; default: string; description: string },
  allowed: string,
): SettingRow {
  return { names: [...setting.names], default: setting.default, allowed, description: setting.description };
}

/** Inline link targets outside code (`[text](target)`), with their line. */
export function links(markdown: string): Array<{ target: string; line: number }> {
  const out: Array<{ target: string; line: number }> = [];
  for (const { text, index } of proseLines(markdown)) {
    const withoutCode = text.replace(/`[^`]*`/g, '');
    for (const m of withoutCode.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g))
      out.push({ target: m[1]!, line: index + 1 });
  }
  return out;
}
