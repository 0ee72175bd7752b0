/**
 * One export: the key pass, then the row pass streamed through csv-stringify
 * into the output, both over one database snapshot.
 */
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stringify } from 'csv-stringify';
import type { Knex } from '../common/db.ts';
import { DatabaseError } from '../common/errors.ts';
import { OutputError } from './errors.ts';
import {
  buildColumns,
  decodeFormData,
  spreadsheetSafe,
  terminalSafe,
  toRecord,
  type Cell,
  type Columns,
} from './records.ts';
import { createProgress, SKIPPED_ROWS_SHOWN, type ExportSummary, type Progress, type SkippedRow } from './progress.ts';
import { withSnapshot, type Bounds, type FormSnapshot, type LegacyRow, type StoredRow } from './repository.ts';

/** What to export and how to write it. */
export interface ExportRequest extends Bounds {
  /** Start with a UTF-8 byte-order mark; default false. */
  bom?: boolean;
  /** Prefix cells starting with = + - @ (tab, CR) with `'`; default true. */
  escapeFormulas?: boolean;
}

/** The clients and streams an export uses; the caller owns (and closes) `db`. */
export interface ExportDependencies {
  /** Database the rows are read from. */
  db: Knex;
  /** Receives the CSV; ended by the export. */
  output: Writable;
  /** Names the output in errors; default "output". */
  outputName?: string;
  /** Receives the progress line. */
  stderr: Writable;
  /** Draw progress (stderr is a terminal); default false. */
  progress?: boolean;
  /** Aborts the export; its reason is the error the export rejects with. */
  signal?: AbortSignal;
  /** Runs between the key pass and the row pass (tests use it to change the table meanwhile). */
  afterKeyPass?: () => Promise<void>;
  /** Clock in ms; default Date.now. */
  now?: () => number;
}

/**
 * Writes the CSV of the rows in the bounds to `output`.
 * @throws DatabaseError, OutputError, HeaderMismatchError, or the abort reason
 */
export async function runExport(request: ExportRequest, deps: ExportDependencies): Promise<ExportSummary> {
  const now = deps.now ?? Date.now;
  const started = now();
  return withSnapshot(deps.db, request, async (snapshot) => {
    const progress = createProgress(deps.stderr, deps.progress ?? false, now);
    const total = await snapshot.count();
    progress.keys(total);
    const columns = buildColumns(await collectKeys(snapshot, deps.signal));
    await deps.afterKeyPass?.();
    deps.signal?.throwIfAborted();
    const counts = await writeRows(snapshot.rows(), columns, request, deps, progress);
    if (counts.rows + counts.skipped !== total) {
      throw new Error(
        `the row pass saw ${counts.rows + counts.skipped} rows, the count ${total}: the passes did not share a snapshot`,
      );
    }
    return { ...counts, columns: columns.headers.length, durationMs: now() - started };
  });
}

/** The union of the data keys: object rows by SQL, rows of the replaced service decoded here. */
async function collectKeys(snapshot: FormSnapshot, signal: AbortSignal | undefined): Promise<Set<string>> {
  const keys = new Set(await snapshot.objectKeys());
  const legacy = snapshot.legacyRows();
  try {
    for await (const row of legacy as AsyncIterable<LegacyRow>) {
      const decoded = decodeFormData(row.kind, row.text);
      if (decoded.ok) for (const key of Object.keys(decoded.data)) keys.add(key);
      signal?.throwIfAborted();
    }
  } catch (error) {
    if (signal?.aborted && error === signal.reason) throw error;
    throw new DatabaseError('key pass over legacy rows of form_form', error);
  } finally {
    legacy.destroy();
  }
  return keys;
}

async function writeRows(
  source: Readable,
  columns: Columns,
  request: ExportRequest,
  deps: ExportDependencies,
  progress: Progress,
): Promise<{ rows: number; skipped: number; skippedRows: SkippedRow[] }> {
  let rows = 0;
  let skipped = 0;
  const skippedRows: SkippedRow[] = [];
  const escapeFormulas = request.escapeFormulas ?? true;
  // Without escaping, control characters are still not written raw to a terminal.
  const toTerminal = (deps.output as { isTTY?: boolean }).isTTY === true;
  const safeText = escapeFormulas ? spreadsheetSafe : toTerminal ? terminalSafe : (text: string): string => text;
  const safeCell = (cell: Cell): Cell => (typeof cell === 'string' ? safeText(cell) : cell);
  const toRecords = new Transform({
    objectMode: true,
    transform(row: StoredRow, _encoding, callback) {
      const decoded = decodeFormData(row.kind, row.text);
      if (!decoded.ok) {
        skipped += 1;
        if (skippedRows.length < SKIPPED_ROWS_SHOWN) skippedRows.push({ id: row.id, reason: decoded.reason });
        callback();
      } else {
        let record;
        try {
          record = toRecord(columns, row.id, row.created, decoded.data).map(safeCell);
        } catch (error) {
          callback(error as Error);
          return;
        }
        rows += 1;
        callback(null, record);
      }
      progress.update(rows + skipped);
    },
  });
  const csv = stringify({
    header: true,
    columns: columns.headers.map(safeText),
    bom: request.bom ?? false,
    // Formulas are escaped by spreadsheetSafe (after any separator, not only at the start); every field is quoted.
    escape_formulas: false,
    quoted: escapeFormulas,
    record_delimiter: 'windows',
    // Setting record_delimiter turns off quoting of a lone \n or \r unless this is said explicitly.
    quote_record_delimiter: true,
  });
  // The stream that fails first is the cause; pipeline then destroys the others with its error.
  let first: { stream: object; error: unknown } | undefined;
  for (const stream of [source, toRecords, csv, deps.output]) {
    stream.once('error', (error: unknown) => {
      first ??= { stream, error };
    });
  }
  try {
    await pipeline(source, toRecords, csv, deps.output, deps.signal ? { signal: deps.signal } : {});
  } catch (error) {
    if (deps.signal?.aborted) throw deps.signal.reason;
    if (first?.stream === deps.output) throw new OutputError(deps.outputName ?? 'output', first.error);
    if (first?.stream === source) throw new DatabaseError('row pass over form_form', first.error);
    throw error;
  }
  progress.finish(rows + skipped);
  return { rows, skipped, skippedRows };
}
