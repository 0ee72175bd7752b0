/**
 * A strict RFC 4180 reader for checking the export's output. csv-parse (the
 * csv family's parser) is not a dependency of the project; this stays
 * independent of csv-stringify, which writes the files it reads.
 */

/** Splits CSV text into records of fields; throws on a malformed quote or an unterminated field. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let i = 0;
  let quotedField = false;
  const endField = (): void => {
    record.push(field);
    field = '';
    quotedField = false;
  };
  const endRecord = (): void => {
    endField();
    records.push(record);
    record = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      if (field !== '' || quotedField) throw new Error(`quote inside an unquoted field at offset ${i}`);
      quotedField = true;
      i += 1;
      for (;;) {
        if (i >= text.length) throw new Error('unterminated quoted field');
        const q = text[i]!;
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i += 1;
          break;
        }
        field += q;
        i += 1;
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\r' && next !== '\n') throw new Error(`text after a closing quote at offset ${i}`);
      continue;
    }
    if (c === ',') {
      endField();
      i += 1;
    } else if (c === '\r' && text[i + 1] === '\n') {
      endRecord();
      i += 2;
    } else if (c === '\n') {
      endRecord();
      i += 1;
    } else {
      if (quotedField) throw new Error(`text after a closing quote at offset ${i}`);
      field += c;
      i += 1;
    }
  }
  if (field !== '' || quotedField || record.length > 0) endRecord();
  return records;
}

/** Records as objects keyed by the header (the first record); checks every record has the header's width. */
export function parseCsvObjects(text: string): { header: string[]; rows: Record<string, string>[] } {
  const [header, ...records] = parseCsv(text);
  if (!header) throw new Error('no header');
  const rows = records.map((r, n) => {
    if (r.length !== header.length) throw new Error(`record ${n + 1} has ${r.length} fields, the header ${header.length}`);
    return Object.fromEntries(header.map((h, k) => [h, r[k]!]));
  });
  return { header, rows };
}
