/**
 * Parameter text for the batch statement (dialect.ts), built here instead of by pg. Since 2026-11-27 the statement
 * takes binary arrays (binary-array.ts: no literal for PostgreSQL to parse at all); the text form remains for event
 * ids that are not in the canonical uuid form, which uuid_in must judge, and for the embedded benchmark's baseline.
 *
 * pg turns a JS array into an array literal by running two regular-expression replaces over every element and
 * quoting it (`escapeElement` in pg/lib/utils.js), whatever its type. For a batch of 2,000 memory events that was
 * ~3 µs per event, 7% of the memory topology's CPU, and it escaped every quote of every payload's JSON text only
 * for PostgreSQL to unescape it again (docs/BENCHMARKS.md, memory-kv). Here numbers and booleans are written bare,
 * strings are escaped only when they hold a quote or a backslash, and the payloads travel as one JSON array (their
 * JSON text joined, nothing escaped) that the statement splits with `jsonb_array_elements`.
 *
 * A string passed as a parameter reaches PostgreSQL unchanged with pg and with PGlite (both leave strings alone),
 * where the column type's input function reads it: `{…}` for arrays, JSON for jsonb.
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

/**
 * `{1,2.5,NULL}`: a literal for int4[], int8[] and float8[]. Callers pass finite numbers only (JavaScript's
 * shortest round-trip text, which float8in reads back to the same double, exponent included).
 */
export function numberArray(values: readonly (number | null)[]): string {
  const parts = new Array<string>(values.length)
  for (let i = 0; i < values.length; i++) {
    const value = values[i]
    parts[i] = value === null || value === undefined ? 'NULL' : String(value)
  }
  return `{${parts.join(',')}}`
}

/** `{t,f,NULL}`: a literal for bool[]. */
export function boolArray(values: readonly (boolean | null)[]): string {
  const parts = new Array<string>(values.length)
  for (let i = 0; i < values.length; i++) {
    const value = values[i]
    parts[i] = value === null || value === undefined ? 'NULL' : value ? 't' : 'f'
  }
  return `{${parts.join(',')}}`
}

/**
 * `[<json>,<json>,null]`: JSON texts (each one complete JSON value, as JSON.stringify makes it) joined into one JSON
 * array, for a `jsonb` parameter. A missing element becomes JSON `null`; the statement decides what it means.
 */
export function jsonArray(values: readonly (string | null)[]): string {
  const parts = new Array<string>(values.length)
  for (let i = 0; i < values.length; i++) parts[i] = values[i] ?? 'null'
  return `[${parts.join(',')}]`
}
