/**
 * The `data` column as stored: a JSON object (rows the worker writes) or, in
 * rows of the replaced service, a JSON string whose text is the JSON object.
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
  if (isObject(value)) return { ok: true, data: value };
  return { ok: false, reason: `data is a string holding ${typeName(value)}, not an object` };
}
