/**
 * Points in time given on the command line: a date (midnight UTC) or an
 * ISO-8601 timestamp with a zone.
 */

/** A validated point in time. */
export interface Instant {
  /** Canonical ISO-8601 text with an offset, the form handed to PostgreSQL (microsecond precision). */
  iso: string;
  /** Microseconds since the Unix epoch, for comparing bounds. */
  epochMicros: bigint;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** Why a text is not an Instant; `message` says what is expected. */
export class InstantError extends Error {
  override name = 'InstantError';
}

/**
 * Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` followed
 * by `Z` or an offset (`+01:00`, `+0100`, `+01`).
 * @throws InstantError on any other text, an impossible date or a missing zone.
 */
export function parseInstant(text: string): Instant {
  const date = DATE.exec(text);
  if (date) return build(text, [date[1], date[2], date[3]], 'Z');
  const stamp = TIMESTAMP.exec(text);
  if (!stamp) throw new InstantError(`${JSON.stringify(text)} is not a date (YYYY-MM-DD) or an ISO-8601 timestamp (YYYY-MM-DDTHH:MM:SSZ)`);
  if (stamp[8] === undefined) {
    throw new InstantError(`${JSON.stringify(text)} has no time zone; add Z for UTC or an offset such as +01:00`);
  }
  return build(text, stamp.slice(1, 8), stamp[8]);
}

function build(text: string, parts: readonly (string | undefined)[], zone: string): Instant {
  const [year, month, day, hour, minute, second] = [0, 1, 2, 3, 4, 5].map((i) => Number(parts[i] ?? '0')) as [number, number, number, number, number, number];
  const micros = Number((parts[6] ?? '').padEnd(6, '0'));
  const calendar = new Date(0);
  calendar.setUTCFullYear(year, month - 1, day);
  const validDate = year >= 1 && calendar.getUTCFullYear() === year && calendar.getUTCMonth() === month - 1 && calendar.getUTCDate() === day;
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
  if (hours > 15 || minutes > 59) throw new InstantError(`${JSON.stringify(text)} has an offset out of range (at most ±15:59)`);
  return (zone.startsWith('-') ? -1 : 1) * (hours * 60 + minutes);
}
