/**
 * The columns of an export: `created`, then one per key found in the forms'
 * data, sorted by Unicode code point (the order of Python's `sorted`, which the
 * replaced service used).
 */

/** Header of the column holding the row's `created`. */
export const CREATED = 'created';

/** Prefix given to a data key whose name is already a header (a data key `created`). */
export const RENAMED_PREFIX = 'data.';

/** Headers of an export and where each data key goes. */
export interface Columns {
  /** All headers, `created` first. */
  headers: readonly string[];
  /** Index in `headers` of each data key. */
  indexOfKey: ReadonlyMap<string, number>;
}

/** Compares by code point (UTF-8 byte order), unlike `<` on UTF-16 code units. */
export function compareCodePoints(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The columns for the union of the data keys of all exported rows. */
export function buildColumns(keys: Iterable<string>): Columns {
  const sorted = [...new Set(keys)].sort(compareCodePoints);
  const taken = new Set<string>([CREATED, ...sorted]);
  const headers: string[] = [CREATED];
  const indexOfKey = new Map<string, number>();
  for (const key of sorted) {
    let header = key;
    if (header === CREATED) {
      do header = RENAMED_PREFIX + header;
      while (taken.has(header));
      taken.add(header);
    }
    indexOfKey.set(key, headers.length);
    headers.push(header);
  }
  return { headers, indexOfKey };
}
