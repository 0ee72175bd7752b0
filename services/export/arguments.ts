/**
 * The command line of the export: `--since DATE [--until DATE] [--output FILE]
 * [--bom] [--no-escape-formulas]`, or `--help`; and the points in time it
 * takes: a date (midnight UTC) or an ISO-8601 timestamp with a zone.
 */
import { parseArgs } from 'node:util';
import { InstantError, UsageError } from './errors.ts';

/** One line naming every option; printed after a usage error. */
export const USAGE =
  'usage: export --since DATE [--until DATE] [--output FILE] [--bom] [--no-escape-formulas] (--help for details)';

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
  if (until && until.epochMicros <= since.epochMicros)
    throw new UsageError(`--until (${values.until}) must be after --since (${values.since})`);
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

/** A validated point in time. */
export interface Instant {
  /** Canonical ISO-8601 text with an offset, the form handed to PostgreSQL (microsecond precision). */
  iso: string;
  /** Microseconds since the Unix epoch, for comparing bounds. */
  epochMicros: bigint;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` followed
 * by `Z` or an offset (`+01:00`, `+0100`, `+01`).
 * @throws InstantError on any other text, an impossible date or a missing zone.
 */
export function parseInstant(text: string): Instant {
  const date = DATE.exec(text);
  if (date) return build(text, [date[1], date[2], date[3]], 'Z');
  const stamp = TIMESTAMP.exec(text);
  if (!stamp)
    throw new InstantError(
      `${JSON.stringify(text)} is not a date (YYYY-MM-DD) or an ISO-8601 timestamp (YYYY-MM-DDTHH:MM:SSZ)`,
    );
  if (stamp[8] === undefined) {
    throw new InstantError(`${JSON.stringify(text)} has no time zone; add Z for UTC or an offset such as +01:00`);
  }
  return build(text, stamp.slice(1, 8), stamp[8]);
}

function build(text: string, parts: readonly (string | undefined)[], zone: string): Instant {
  const [year, month, day, hour, minute, second] = [0, 1, 2, 3, 4, 5].map((i) => Number(parts[i] ?? '0')) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const micros = Number((parts[6] ?? '').padEnd(6, '0'));
  const calendar = new Date(0);
  calendar.setUTCFullYear(year, month - 1, day);
  const validDate =
    year >= 1 &&
    calendar.getUTCFullYear() === year &&
    calendar.getUTCMonth() === month - 1 &&
    calendar.getUTCDate() === day;
  if (!validDate) throw new InstantError(`${JSON.stringify(text)} is not a calendar date`);
  if (hour > 23 || minute > 59 || second > 59) throw new InstantError(`${JSON.stringify(text)} is not a time of day`);
  const offsetMinutes = parseOffset(text, zone);
  calendar.setUTCHours(hour, minute, second, 0);
  const epochMicros = (BigInt(calendar.getTime()) - BigInt(offsetMinutes) * 60_000n) * 1000n + BigInt(micros);
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const iso = `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:${pad(second)}.${pad(micros, 6)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  return { iso, epochMicros };
}

function parseOffset(text: string, zone: string): number {
  if (zone.toUpperCase() === 'Z') return 0;
  const digits = zone.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2) || '0');
  if (hours > 15 || minutes > 59)
    throw new InstantError(`${JSON.stringify(text)} has an offset out of range (at most ±15:59)`);
  return (zone.startsWith('-') ? -1 : 1) * (hours * 60 + minutes);
}
