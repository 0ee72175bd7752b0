/**
 * The command line of the export: `--since DATE [--until DATE] [--output FILE]
 * [--bom] [--no-escape-formulas]`, or `--help`.
 */
import { parseArgs } from 'node:util';
import { InstantError, parseInstant, type Instant } from './instant.ts';

/** One line naming every option; printed after a usage error. */
export const USAGE = 'usage: export --since DATE [--until DATE] [--output FILE] [--bom] [--no-escape-formulas] (--help for details)';

/** Printed by --help. */
export const HELP = `Writes the stored forms as CSV: a "created" column, then one column per key of the forms' data.

usage: export --since DATE [--until DATE] [--output FILE] [--bom] [--no-escape-formulas]

  --since DATE          first instant exported (inclusive); required
  --until DATE          end of the range (exclusive); default: no end
  --output FILE         write FILE (through a temporary file renamed at the end);
                        default or "-": standard output
  --bom                 start the file with a UTF-8 byte-order mark (Excel); default off
  --no-escape-formulas  keep cells that start with = + - @ as they are; by default
                        they get a leading ' so spreadsheets do not run them
  --help, -h            this text

DATE is YYYY-MM-DD (midnight UTC) or an ISO-8601 timestamp with a zone,
e.g. 2017-01-01T09:30:00Z or 2017-01-01T09:30:00+01:00.

Environment: DATABASE_URL, DATABASE_TIMEOUT_MS (connect timeout only; the
export's own statements have no timeout). Progress goes to stderr when it is a
terminal; a summary line always goes to stderr.
Exit codes: 0 done, 1 failed (nothing written to FILE), 2 bad arguments or
configuration, 130/143 interrupted, 141 standard output closed early.`;

/** What the command was asked to do. */
export interface ExportArguments {
  /** First instant exported (inclusive). */
  since: Instant;
  /** End of the range (exclusive); undefined means no end. */
  until: Instant | undefined;
  /** File to write; undefined means standard output. */
  output: string | undefined;
  /** Start with a UTF-8 BOM; default false. */
  bom: boolean;
  /** Prefix cells that a spreadsheet would run as a formula with `'`; default true. */
  escapeFormulas: boolean;
}

export type ParsedCommand = { kind: 'help' } | { kind: 'export'; args: ExportArguments };

/** A bad command line; the message is one line without the usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Reads the command line (without `node` and the script).
 * @throws UsageError
 */
export function parseExportArguments(argv: readonly string[]): ParsedCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      allowNegative: true,
      options: {
        since: { type: 'string' },
        until: { type: 'string' },
        output: { type: 'string', short: 'o' },
        bom: { type: 'boolean', default: false },
        'escape-formulas': { type: 'boolean', default: true },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message.split('\n')[0] : String(error));
  }
  if (values.help) return { kind: 'help' };
  if (values.since === undefined) throw new UsageError('--since is required');
  const since = instant('--since', values.since);
  const until = values.until === undefined ? undefined : instant('--until', values.until);
  if (until && until.epochMicros <= since.epochMicros) throw new UsageError(`--until (${values.until}) must be after --since (${values.since})`);
  if (values.output === '') throw new UsageError('--output needs a file name (or - for standard output)');
  return {
    kind: 'export',
    args: {
      since,
      until,
      output: values.output === '-' ? undefined : values.output,
      bom: values.bom,
      escapeFormulas: values['escape-formulas'],
    },
  };
}

function instant(option: string, text: string): Instant {
  try {
    return parseInstant(text);
  } catch (error) {
    if (error instanceof InstantError) throw new UsageError(`${option}: ${error.message}`);
    throw error;
  }
}
