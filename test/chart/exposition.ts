/**
 * The Prometheus text exposition format, read as far as the monitoring tests
 * need: the declared metric families and the label sets of the samples.
 */

export interface Exposition {
  /** Metric family name (as in `# TYPE`) → its type. */
  types: Map<string, string>;
  /** Sample name (a histogram's `_bucket`, `_sum`, `_count` included) → the label sets of its samples. */
  samples: Map<string, Record<string, string>[]>;
}

const SAMPLE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+/;
const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses one /metrics answer. */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples = new Map<string, Record<string, string>[]>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (sample[2] ?? '').matchAll(LABEL))
      labels[name!] = JSON.parse(`"${value!}"`) as string;
    const list = samples.get(sample[1]!) ?? [];
    list.push(labels);
    samples.set(sample[1]!, list);
  }
  return { types, samples };
}

/**
 * The exported family a name used in PromQL belongs to: the name itself, or
 * for `<histogram>_bucket|_sum|_count` (and a summary's `_sum|_count`) the histogram; undefined if none.
 */
export function familyOf(name: string, exposition: Exposition): string | undefined {
  if (exposition.types.has(name)) return name;
  const part = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!part) return undefined;
  const type = exposition.types.get(part[1]!);
  if (type === 'histogram' || (type === 'summary' && part[2] !== 'bucket')) return part[1];
  return undefined;
}
