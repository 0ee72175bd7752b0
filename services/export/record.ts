/**
 * One stored row as one CSV record.
 */
import { toCell, type Cell } from './cells.ts';
import type { Columns } from './columns.ts';
import type { StoredObject } from './form-data.ts';

/** A data key missing from the header: the key pass and the row pass saw different rows. */
export class HeaderMismatchError extends Error {
  override name = 'HeaderMismatchError';
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
    if (index === undefined) throw new HeaderMismatchError(`row ${id} has the key ${JSON.stringify(key)}, which the header lacks`);
    cells[index] = toCell(data[key]);
  }
  return cells;
}
