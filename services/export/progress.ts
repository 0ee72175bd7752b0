/**
 * What the export tells the person running it, on stderr: a progress line
 * rewritten in place while stderr is a terminal, and a summary line always.
 */
import type { Writable } from 'node:stream';

/** Least time between two progress lines. */
const INTERVAL_MS = 250;

/** Counts of a finished export. */
export interface ExportSummary {
  /** Rows written to the CSV. */
  rows: number;
  /** Columns, `created` included. */
  columns: number;
  /** Rows left out because their data is not a JSON object. */
  skipped: number;
  /** The first skipped rows (at most SKIPPED_ROWS_SHOWN), with why. */
  skippedRows: SkippedRow[];
  /** Wall time from start to the last byte written. */
  durationMs: number;
}

/** A row left out of the CSV. */
export interface SkippedRow {
  id: number;
  reason: string;
}

/** How many skipped rows the summary names. */
export const SKIPPED_ROWS_SHOWN = 20;

/** Progress of an export. */
export interface Progress {
  /** Announces the key pass over `total` rows. */
  keys(total: number): void;
  /** Reports `rows` handled so far by the row pass (written or skipped); draws at most every INTERVAL_MS. */
  update(rows: number): void;
  /** Draws the final state and ends the line. */
  finish(rows: number): void;
}

/** A progress line on `out` when `enabled` (a terminal), else nothing. */
export function createProgress(out: Writable, enabled: boolean, now: () => number = Date.now): Progress {
  if (!enabled) return { keys: () => undefined, update: () => undefined, finish: () => undefined };
  let total = 0;
  let started = now();
  let last = -Infinity;
  const draw = (rows: number): void => {
    const elapsed = (now() - started) / 1000;
    const percent = total > 0 ? Math.floor((rows / total) * 100) : 100;
    const rate = elapsed >= 0.5 ? `, ${Math.round(rows / elapsed).toLocaleString('en')} rows/s` : '';
    out.write(`\r\x1b[Kexport: ${rows.toLocaleString('en')} / ${total.toLocaleString('en')} rows (${percent}%)${rate}`);
  };
  return {
    keys(rows) {
      total = rows;
      out.write(`\r\x1b[Kexport: collecting the keys of ${rows.toLocaleString('en')} rows…`);
    },
    update(rows) {
      const t = now();
      if (last === -Infinity) started = t;
      if (t - last < INTERVAL_MS) return;
      last = t;
      draw(rows);
    },
    finish(rows) {
      draw(rows);
      out.write('\n');
    },
  };
}

/** The summary line, e.g. `export: 1000 rows, 12 columns, 0 skipped, 1.2 s, written to forms.csv`. */
export function formatSummary(summary: ExportSummary, destination: string): string {
  const parts = [
    `${summary.rows} rows`,
    `${summary.columns} columns`,
    `${summary.skipped} skipped`,
    `${(summary.durationMs / 1000).toFixed(1)} s`,
    `written to ${destination}`,
  ];
  return `export: ${parts.join(', ')}\n`;
}

/** The line naming skipped rows, or '' when none were skipped. */
export function formatSkipped(summary: ExportSummary): string {
  if (summary.skipped === 0) return '';
  const named = summary.skippedRows.map((r) => `id ${r.id} (${r.reason})`).join(', ');
  const more =
    summary.skipped > summary.skippedRows.length ? `, and ${summary.skipped - summary.skippedRows.length} more` : '';
  return `export: skipped ${summary.skipped} rows whose data is not a JSON object: ${named}${more}\n`;
}
