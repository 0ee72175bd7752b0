/**
 * One stored row as one CSV record: the stored `data` decoded, the columns of
 * the export, each value as the text of a cell, and the record of a row.
 */
import { HeaderMismatchError } from './errors.ts';

/**
 * The `data` column as stored: a JSON object (rows the worker writes); in rows
 * of the replaced service, the whole queue message body `{"data": "<the form
 * as a JSON string>"}` (v1.0.4), or a JSON string whose text is the form (older
 * rows).
 * Numbers keep their exact text (JSON.rawJSON), so large integers and
 * decimals such as 1.50 are exported as stored.
 */
/** A number as its JSON source text. */
export interface RawNumber {
  readonly rawJSON: string;
}

/** A JSON value as decoded for the export. */
export type StoredValue = string | RawNumber | boolean | null | StoredValue[] | { [key: string]: StoredValue };

/** The data of one form. */
export type StoredObject = { [key: string]: StoredValue };

/** How the data of a row decoded: an object, or why it is not one. */
export type Decoded = { ok: true; data: StoredObject } | { ok: false; reason: string };

/** JSON.parse with the source-text context and JSON.rawJSON (Node ≥ 21), not yet in TypeScript's lib. */
const json = JSON as unknown as {
  parse(text: string, reviver: (key: string, value: unknown, context: { source?: string }) => unknown): unknown;
  rawJSON(text: string): RawNumber;
  isRawJSON(value: unknown): value is RawNumber;
};

function keepNumberText(_key: string, value: unknown, context: { source?: string }): unknown {
  return typeof value === 'number' && context.source !== undefined ? json.rawJSON(context.source) : value;
}

/** True for a number decoded by this module. */
export function isRawNumber(value: unknown): value is RawNumber {
  return json.isRawJSON(value);
}

/** Parses without the (slower) reviver unless the value holds a number. */
function parse(text: string): StoredValue {
  const plain: unknown = JSON.parse(text);
  return hasNumber(plain) ? (json.parse(text, keepNumberText) as StoredValue) : (plain as StoredValue);
}

function hasNumber(value: unknown): boolean {
  if (typeof value === 'number') return true;
  if (typeof value !== 'object' || value === null) return false;
  return Object.values(value).some(hasNumber);
}

function isObject(value: StoredValue): value is StoredObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isRawNumber(value);
}

function typeName(value: StoredValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (isRawNumber(value)) return 'a number';
  return `a ${typeof value}`;
}

/**
 * Decodes the data of one row.
 * @param kind `jsonb_typeof(data)`
 * @param text for an object, `data::text`; for a string, the string itself (`data #>> '{}'`)
 */
export function decodeFormData(kind: string, text: string): Decoded {
  if (kind !== 'object' && kind !== 'string') return { ok: false, reason: `data is a JSON ${kind}, not an object` };
  let value: StoredValue;
  try {
    value = parse(text);
  } catch {
    return { ok: false, reason: kind === 'string' ? 'data is a string that is not JSON' : 'data is not valid JSON' };
  }
  if (isObject(value)) return unwrapMessageBody(value);
  return { ok: false, reason: `data is a string holding ${typeName(value)}, not an object` };
}

/** Keys of a queue message body; a row whose keys are all among these, `data` included, holds a whole message body. */
export const MESSAGE_KEYS: readonly string[] = ['data', 'received_at', 'request_id', 'submission_id'];

/**
 * The form of a row that holds a whole queue message body, as the replaced
 * service's worker (v1.0.4) stores it: `{"data": "<the form as a JSON
 * string>"}`, or `{"data": {...}}`; any other row as it is. A form always has
 * keys of its own besides these (company_name, …), so a form is never taken
 * for a body.
 */
function unwrapMessageBody(row: StoredObject): Decoded {
  const keys = Object.keys(row);
  if (!('data' in row) || !keys.every((k) => MESSAGE_KEYS.includes(k))) return { ok: true, data: row };
  const inner = row.data!;
  if (isObject(inner)) return { ok: true, data: inner };
  if (typeof inner !== 'string')
    return { ok: false, reason: `data holds a message body whose data is ${typeName(inner)}` };
  let form: StoredValue;
  try {
    form = parse(inner);
  } catch {
    return { ok: false, reason: 'data holds a message body whose data is a string that is not JSON' };
  }
  if (isObject(form)) return { ok: true, data: form };
  return {
    ok: false,
    reason: `data holds a message body whose data is a string holding ${typeName(form)}, not an object`,
  };
}

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

/**
 * One value of a form as the text of a CSV cell.
 *
 * strings as they are; numbers as stored; booleans `true`/`false`; null or a
 * missing key an empty cell; a list of plain values joined with ", "; a list
 * holding objects or lists, and an object, as JSON.
 */
/** A cell handed to csv-stringify: text, a number (written as its exact text), or empty. */
export type Cell = string | number | null;

/** Separator of joined list items. */
export const LIST_SEPARATOR = ', ';

/** The cell of one value (`undefined`: the form has no such key). */
export function toCell(value: StoredValue | undefined): Cell {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (isRawNumber(value)) return numberCell(value);
  if (Array.isArray(value)) {
    if (value.every(isPlain)) return value.map(plainText).join(LIST_SEPARATOR);
    return JSON.stringify(value);
  }
  return JSON.stringify(value);
}

/**
 * A number the JavaScript number reproduces exactly is passed as a number, so
 * csv-stringify's formula escaping leaves a leading minus alone; any other
 * (1.50, 12345678901234567890) keeps its stored text.
 */
function numberCell(value: RawNumber): Cell {
  const n = Number(value.rawJSON);
  return String(n) === value.rawJSON ? n : value.rawJSON;
}

function isPlain(value: StoredValue): boolean {
  return value === null || typeof value !== 'object' || isRawNumber(value);
}

function plainText(value: StoredValue): string {
  if (value === null) return '';
  if (isRawNumber(value)) return value.rawJSON;
  return String(value);
}

/**
 * The cells of one form: `created`, then the value of each data key in header order.
 * @throws HeaderMismatchError when the data has a key the header lacks
 */
export function toRecord(columns: Columns, id: number, created: string, data: StoredObject): Cell[] {
  const cells = new Array<Cell>(columns.headers.length).fill(null);
  cells[0] = created;
  for (const key of Object.keys(data)) {
    const index = columns.indexOfKey.get(key);
    if (index === undefined)
      throw new HeaderMismatchError(`row ${id} has the key ${JSON.stringify(key)}, which the header lacks`);
    cells[index] = toCell(data[key]);
  }
  return cells;
}

/** A cell a spreadsheet would evaluate: a formula trigger first, after optional blanks. */
const LEADING_TRIGGER = /^[=+\-@\t\r]/;
/**
 * A trigger after a character a spreadsheet may split cells at (`,` `;` tab,
 * or a line end), with optional blanks between: read with another separator
 * than the export's, the text after it starts a cell of its own.
 */
const TRIGGER_AFTER_SEPARATOR = /([,;\t\r\n][ \t]*)(?=[=+\-@])/g;
// eslint-disable-next-line no-control-regex -- control characters are what is matched
const CONTROL = /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F\x80-\x9F]|\r(?!\n)/g;

/** A control character as something a terminal shows rather than runs: its Unicode control picture, or `\u0085`-style text. */
function controlPicture(c: string): string {
  const code = c.charCodeAt(0);
  if (code < 0x20) return String.fromCharCode(0x2400 + code);
  if (code === 0x7f) return '\u2421';
  return `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Control characters (but tab and CRLF/LF line ends) replaced by what a terminal shows rather than runs. */
export function terminalSafe(text: string): string {
  return text.replace(CONTROL, controlPicture);
}

/**
 * A string cell that no spreadsheet evaluates, whatever separator it reads
 * the file with (`,`, `;` or tab): a `'` before a formula trigger at the start
 * and after any separator or line end (docs/exporting.md), and control
 * characters as `terminalSafe` writes them.
 */
export function spreadsheetSafe(text: string): string {
  const safe = terminalSafe(text).replace(TRIGGER_AFTER_SEPARATOR, "$1'");
  return LEADING_TRIGGER.test(safe) ? `'${safe}` : safe;
}
