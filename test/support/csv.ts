/**
 * Reads the export's CSV back with csv-parse (the csv family's parser, not the
 * csv-stringify that wrote it), strictly: a malformed quote, a field after a
 * closing quote or a record of another width throws.
 */
import { parse } from 'csv-parse/sync';

/** Splits CSV text into records of fields; throws on malformed CSV. A BOM is kept in the first field. */
export function parseCsv(text: string): string[][] {
  return parse(text, {
    bom: false,
    relax_quotes: false,
    relax_column_count: false,
    skip_empty_lines: false,
  }) as string[][];
}

/** Records as objects keyed by the header (the first record); every record must have the header's width. */
export function parseCsvObjects(text: string): { header: string[]; rows: Record<string, string>[] } {
  const [header, ...records] = parseCsv(text);
  if (!header) throw new Error('no header');
  const rows = records.map((r) => Object.fromEntries(header.map((h, k) => [h, r[k]!])));
  return { header, rows };
}
