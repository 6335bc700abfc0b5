import { stringify } from 'csv-stringify/sync';

// OWASP CSV injection: a cell starting with = + - @ (or a tab or carriage return before one) is run as a formula
// by spreadsheets; a leading apostrophe makes it text, and spreadsheets do not show it.
const FORMULA_START = /^[=+\-@\t\r]/;

/** One cell of an exported CSV file, as text a spreadsheet shows and never runs. */
export function csvCell(value: unknown): string {
  const text =
    value === null || value === undefined ? ''
    : value instanceof Date ? value.toISOString()
    : typeof value === 'object' ? JSON.stringify(value)
    : String(value);
  return FORMULA_START.test(text) ? `'${text}` : text;
}

/** The value an exported cell stood for: what `csvCell` escaped, read back (so that an export can be imported). */
export function fromCsvCell(cell: string): string {
  return cell.startsWith("'") && FORMULA_START.test(cell.slice(1)) ? cell.slice(1) : cell;
}

/** Rows of an export as CSV text, every cell escaped: the one way Latchkey writes CSV. */
export function csvRows(rows: ReadonlyArray<readonly unknown[]>): string {
  return stringify(rows.map((row) => row.map(csvCell)));
}
