/**
 * A text array literal, built here instead of by pg. The batch statement (dialect.ts) takes binary arrays
 * (src/postgres/binary-array.ts: no literal for PostgreSQL to parse at all); this text form remains for uuids that
 * are not in the canonical form, which uuid_in must judge (accept braces, no hyphens…, or refuse) as it would any
 * text.
 *
 * pg turns a JS array into an array literal by running two regular-expression replaces over every element and
 * quoting it (`escapeElement` in pg/lib/utils.js), whatever its type. Here strings are escaped only when they hold
 * a quote or a backslash. The string reaches PostgreSQL unchanged with pg and with
 * PGlite, where the column type's input function reads it.
 */

const QUOTE = '"'
const BACKSLASH = '\\'

/** One element of a text-like array, always quoted, so commas, braces, blanks and the word NULL stay data. */
function quoted(value: string): string {
  if (value.indexOf(QUOTE) < 0 && value.indexOf(BACKSLASH) < 0) return `"${value}"`
  return `"${value.replaceAll(BACKSLASH, '\\\\').replaceAll(QUOTE, '\\"')}"`
}

/** `{"a","b",NULL}`: a literal for text[], uuid[], timestamptz[] and other types read from text. */
export function textArray(values: readonly (string | null)[]): string {
  const parts = new Array<string>(values.length)
  for (let i = 0; i < values.length; i++) {
    const value = values[i]
    parts[i] = value === null || value === undefined ? 'NULL' : quoted(value)
  }
  return `{${parts.join(',')}}`
}
