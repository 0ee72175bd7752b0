/**
 * One value of a form as the text of a CSV cell.
 *
 * strings as they are; numbers as stored; booleans `true`/`false`; null or a
 * missing key an empty cell; a list of plain values joined with ", "; a list
 * holding objects or lists, and an object, as JSON.
 */
import { isRawNumber, type RawNumber, type StoredValue } from './form-data.ts';

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
