import { createHash } from 'node:crypto'
import {
  boolArrayBinary,
  float8ArrayBinary,
  int4ArrayBinary,
  int8ArrayBinary,
  jsonbArrayBinary,
  textArrayBinary,
  timestamptzArrayBinary,
  uuidArrayBinary
} from '../../postgres/binary-array.ts'
import { quoteQualified } from '../../postgres/identifiers.ts'
import { textArray } from './array-literal.ts'
import type { ReducedItem } from './buffer.ts'
import type { ColumnSource, ResolvedLayout } from './layout.ts'
import type { ColumnType, ColumnValue, PostgresTableNames, PreparedRow } from './types.ts'

/**
 * The SQL text of the sink, after Debezium's JDBC sink dialects: identifiers quoted here, values always bound.
 *
 * A batch is ONE statement, so it is one implicit transaction and one round trip. Its parameters are parallel arrays
 * (UNNEST) in PostgreSQL's binary array format (src/postgres/binary-array.ts): the item's position `ord`, the key, the
 * ledger id (with a ledger), `winner` (the reduce step's one item per key), the data columns, the fence pair and
 * `deleted` (with tombstones). With a ledger the ids are claimed in the ledger table first, then the claimed winners
 * are upserted under the fence, and the statement returns the outcomes the writer cannot know. A data-modifying CTE's
 * RETURNING is visible to the others, and all of them see the snapshot taken before the statement: the stored pair read
 * for the outcome is the state before this batch.
 *
 * - `claimed` (with a ledger): ids not processed before (ON CONFLICT DO NOTHING returns only rows it inserted, and
 *   waits for a concurrent inserter of the same id, so two writers cannot both claim an event). In
 *   `ClaimModes.INSERT` it is a plain INSERT that claims every row or fails the statement.
 * - `written`: only claimed winners; DO UPDATE only when the fence passes, so a stale or equal value writes nothing
 *   (`RowModes.INSERT`: no ON CONFLICT, for batches of new keys).
 *   Deletes leave a tombstone (the tombstone column set, the `clear` columns NULL whatever is sent). It reads
 *   `claimed` before its first row (in INSERT mode through a count that is always true), so the whole claim runs
 *   first: two writers of the same events meet at the ledger before either touches the table; otherwise PostgreSQL
 *   runs the unreferenced claim last and two writers of one batch can deadlock in the table's insert.
 * - the result: one row, `applied` (how many rows `written` wrote) and the exceptions as two arrays, `ords` and
 *   `outcomes` (NULL when there are none). The writer knows every other outcome: a written winner is applied, a
 *   loser has its in-batch outcome (buffer.ts). An exception is an item not claimed (duplicate) or a winner not
 *   written, whose stored pair decides between duplicate (equal) and fenced (greater). A row inserted concurrently by
 *   another writer is not in our snapshot: such an item reports fenced. The writer checks that `applied` equals its
 *   winners minus the winners among the exceptions. The search for exceptions runs only when the counts say there
 *   are some, so a clean batch does not unnest its arrays a second time.
 *
 * Why this shape (each measured, see docs/BENCHMARKS.md, memory-kv): the arrays are unnested twice rather than
 * shared through a CTE (a CTE read twice is materialized, copying every payload); the unnests are set-returning
 * functions in a subquery's select list (a ProjectSet, one row at a time), not `FROM ROWS FROM (unnest(…))` (a
 * FunctionScan copies every result into a tuplestore first); and the exceptions are found per input row with
 * subqueries, not joins, so the plan's cost does not grow with the table (a join on the table made the planner scan
 * it for every batch).
 *
 * Layout: lists of unnests and SET items go three to a line, the select list fills lines of 120 characters, so
 * the statement is readable in pg_stat_statements and logs (and the memories table's is the text it always was).
 */
export interface WriteStatement {
  readonly name: string
  readonly text: string
}

/**
 * How `claimed` records the batch's ledger ids.
 * - `skip-duplicates`: `ON CONFLICT (event_id) DO NOTHING`, so an already processed event is reported a duplicate.
 *   PostgreSQL pays a speculative insertion per row for it: a unique-index probe before the insert and a WAL record
 *   confirming it after.
 * - `insert`: a plain INSERT, for batches expected to hold no processed event (the writer's steady state); a
 *   processed one fails the statement with unique_violation (23505, also after waiting for a concurrent writer of
 *   the same id) and nothing of it is written, so the writer runs the batch again with `skip-duplicates`.
 */
export const ClaimModes = {
  SKIP_DUPLICATES: 'skip-duplicates',
  INSERT: 'insert'
} as const
export type ClaimMode = (typeof ClaimModes)[keyof typeof ClaimModes]

/**
 * How `written` stores the claimed winners.
 * - `upsert`: `INSERT … ON CONFLICT (key) DO UPDATE … WHERE <fence>`, for any batch.
 * - `insert`: a plain INSERT, for batches expected to hold only keys not stored yet (a stream of new memories). A
 *   stored key (also one a concurrent writer inserts) fails the statement with unique_violation (23505) and nothing
 *   of it is written, so the writer runs the batch again with `upsert`. Where it succeeds it writes exactly what
 *   `upsert` would: every winner's key is new, so the upsert would have inserted it with the same values. It saves
 *   PostgreSQL the speculative insertion (a unique-index probe before each row and a WAL record confirming it after).
 */
export const RowModes = {
  UPSERT: 'upsert',
  INSERT: 'insert'
} as const
export type RowMode = (typeof RowModes)[keyof typeof RowModes]

/** `items` joined by `, `, three to a line, continuation lines indented by `indent`. */
function threePerLine(items: readonly string[], indent: string): string {
  const lines: string[] = []
  for (let k = 0; k < items.length; k += 3) lines.push(items.slice(k, k + 3).join(', '))
  return lines.join(`,\n${indent}`)
}

/** `items` joined by `, `, lines filled up to 120 characters (the first starts at column `start`). */
function fill(items: readonly string[], start: number, indent: string): string {
  let text = ''
  let width = start
  items.forEach((item, k) => {
    const piece = k === items.length - 1 ? item : `${item},`
    if (k > 0 && width + 1 + piece.length > 120) {
      text += `\n${indent}`
      width = indent.length
    } else if (k > 0) {
      text += ' '
      width++
    }
    text += piece
    width += piece.length
  })
  return text
}

const SQL_TYPES: Record<ColumnType, string> = {
  text: 'text',
  uuid: 'uuid',
  bool: 'bool',
  jsonb: 'jsonb',
  float8: 'float8',
  int8: 'int8',
  int4: 'int4',
  timestamptz: 'timestamptz'
}

/** Parameter numbers of `writeStatement`, in the order `writeParameters` sends them. */
interface Parameters {
  readonly ord: number
  readonly key: number
  readonly ledger: number | undefined
  readonly winner: number
  /** Per data column, in layout order. */
  readonly data: readonly number[]
  readonly version: number | undefined
  readonly time: number | undefined
  readonly deleted: number | undefined
}

function parameterNumbers(layout: ResolvedLayout<unknown, PreparedRow>): Parameters {
  let n = 0
  const ord = ++n
  const key = ++n
  const ledger = layout.ledger === undefined ? undefined : ++n
  const winner = ++n
  const data = layout.data.map(() => ++n)
  const version = layout.fence === undefined ? undefined : ++n
  const time = layout.fence === undefined ? undefined : ++n
  const deleted = layout.tombstone === undefined ? undefined : ++n
  return { ord, key, ledger, winner, data, version, time, deleted }
}

export function writeStatement<R extends PreparedRow>(
  layout: ResolvedLayout<never, R>,
  names: PostgresTableNames,
  claim: ClaimMode = ClaimModes.SKIP_DUPLICATES,
  rowMode: RowMode = RowModes.UPSERT
): WriteStatement {
  const l = layout as unknown as ResolvedLayout<unknown, PreparedRow>
  const p = parameterNumbers(l)
  const table = quoteQualified(names.table)
  const ledger = names.ledger === undefined || l.ledger === undefined ? undefined : quoteQualified(names.ledger)
  const ledgerType = l.ledger?.type ?? 'uuid'
  const skip = ledger !== undefined && claim === ClaimModes.SKIP_DUPLICATES
  const fence = l.fence
  const key = l.key
  const unnest = (n: number, type: string, alias: string): string => `unnest($${n}::${type}[]) AS ${alias}`

  const value = (source: ColumnSource<PreparedRow>): string => {
    if (source.kind === 'ledger') return 'i.event_id'
    if (source.kind !== 'data') return `i.${source.sql}`
    return source.column.cleared && l.tombstone !== undefined
      ? `CASE WHEN NOT i.deleted THEN i.${source.column.sql} END`
      : `i.${source.column.sql}`
  }
  const targets = [key, ...l.columns.map((c) => (c.kind === 'data' ? c.column.sql : c.sql))]
  const values = [`i.${key}`, ...l.columns.map(value)]
  if (l.tombstone !== undefined) {
    targets.push(l.tombstone)
    values.push(`CASE WHEN i.deleted THEN ${fence === undefined ? 'now()' : `i.${fence.time}`} END`)
  }
  if (l.writtenAt !== undefined) {
    targets.push(l.writtenAt)
    values.push('now()')
  }
  const rows = [unnest(p.key, 'text', key)]
  if (p.ledger !== undefined) rows.push(unnest(p.ledger, ledgerType, 'event_id'))
  rows.push(unnest(p.winner, 'bool', 'winner'))
  l.data.forEach((column, k) => {
    rows.push(unnest(p.data[k]!, SQL_TYPES[column.type], column.sql))
  })
  if (fence !== undefined) {
    rows.push(unnest(p.version!, 'int8', fence.version), unnest(p.time!, 'timestamptz', fence.time))
  }
  if (p.deleted !== undefined) rows.push(unnest(p.deleted, 'bool', 'deleted'))
  const updates = targets.slice(1).map((column) => `${column} = EXCLUDED.${column}`)

  const claimed =
    ledger === undefined
      ? ''
      : `WITH claimed AS (
  INSERT INTO ${ledger} AS p (event_id, processed_at)
  SELECT unnest($${p.ledger}::${ledgerType}[]), now()${skip ? '\n  ON CONFLICT (event_id) DO NOTHING' : ''}
  RETURNING p.event_id
),
`
  const gate =
    ledger === undefined
      ? ''
      : skip
        ? ' AND i.event_id IN (SELECT c.event_id FROM claimed c)'
        : ' AND (SELECT count(*) FROM claimed) >= 0'
  const written = `${claimed}${ledger === undefined ? 'WITH ' : ''}written AS (
  INSERT INTO ${table} AS m
    (${targets.join(', ')})
  SELECT ${fill(values, 9, '    ')}
  FROM (SELECT ${threePerLine(rows, '    ')}) AS i
  WHERE i.winner${gate}${
    rowMode === RowModes.INSERT
      ? ''
      : `
  ON CONFLICT (${key}) DO UPDATE SET
    ${threePerLine(updates, '    ')}${
      fence === undefined
        ? ''
        : `\n  WHERE (m.${fence.version}, m.${fence.time}) < (EXCLUDED.${fence.version}, EXCLUDED.${fence.time})`
    }`
  }
  RETURNING m.${key}
)`

  // The exceptions: items not claimed, and winners not written (under the fence only: otherwise every winner is).
  const cases: string[] = []
  if (skip) cases.push("\n    WHEN i.event_id NOT IN (SELECT c.event_id FROM claimed c) THEN 'duplicate'")
  if (fence !== undefined) {
    const pair = `(s.${fence.version}, s.${fence.time}) = (i.${fence.version}, i.${fence.time})`
    cases.push(`\n    WHEN (SELECT ${pair} FROM ${table} s WHERE s.${key} = i.${key})\n      THEN 'duplicate'`)
  }
  // Without fence and ledger no item can be an exception; CASE still needs a WHEN.
  if (cases.length === 0) cases.push("\n    WHEN false THEN 'duplicate'")
  const small = [unnest(p.ord, 'int4', 'ord'), unnest(p.key, 'text', key)]
  if (p.ledger !== undefined) small.push(unnest(p.ledger, ledgerType, 'event_id'))
  small.push(unnest(p.winner, 'bool', 'winner'))
  if (fence !== undefined) {
    small.push(unnest(p.version!, 'int8', fence.version), unnest(p.time!, 'timestamptz', fence.time))
  }
  const someMissing = [
    `(SELECT count(*) FROM written) < (SELECT count(*) FROM unnest($${p.winner}::bool[]) AS v(winner) WHERE v.winner)`
  ]
  if (skip) someMissing.push(`(SELECT count(*) FROM claimed) < cardinality($${p.ledger}::${ledgerType}[])`)
  const text = `${written}
SELECT (SELECT count(*) FROM written)::int4 AS applied, array_agg(i.ord) AS ords, array_agg(
  CASE${cases.join('')}
    ELSE 'fenced'
  END) AS outcomes
FROM (SELECT ${threePerLine(small, '  ')}) AS i
WHERE (${someMissing.join(' OR ')})
  AND (${skip ? 'i.event_id NOT IN (SELECT c.event_id FROM claimed c) OR ' : ''}(i.winner AND i.${key} NOT IN (SELECT w.${key} FROM written w)))`
  // Named, so each connection parses and plans it once; the name follows the text (different tables, new name).
  const name = `sfm_pg_write_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`
  return { name, text }
}

/** A data column's values as the binary array of its type; uuids not in canonical form go as a text literal. */
function encode(type: ColumnType, values: ColumnValue[]): Buffer | string {
  switch (type) {
    case 'text':
      return textArrayBinary(values as (string | null)[])
    case 'uuid':
      return uuidArrayBinary(values as (string | null)[]) ?? textArray(values as (string | null)[])
    case 'jsonb':
      return jsonbArrayBinary(values as (string | Uint8Array | null)[])
    case 'bool':
      return boolArrayBinary(values as (boolean | null)[])
    case 'float8':
      return float8ArrayBinary(values as (number | null)[])
    case 'int8':
      return int8ArrayBinary(values as (number | null)[])
    case 'int4':
      return int4ArrayBinary(values as (number | null)[])
    case 'timestamptz':
      return timestamptzArrayBinary(values as (bigint | null)[])
  }
}

/**
 * The parameters of `writeStatement`, in order, as binary arrays (src/postgres/binary-array.ts); `ord` is the item's
 * position in `items`. Ledger ids of type uuid go as text (array-literal.ts) when one of them is not in the canonical
 * hyphenated form, so that PostgreSQL's uuid input accepts (braces, no hyphens, …) or refuses exactly what it would as
 * text. A loser's data columns are sent as NULL: it is never written.
 */
export function writeParameters<R extends PreparedRow>(
  layout: ResolvedLayout<never, R>,
  items: readonly ReducedItem<R>[]
): (Buffer | string)[] {
  const n = items.length
  const ord = new Array<number>(n)
  const id = new Array<string>(n)
  const eventId = new Array<string>(n)
  const winner = new Array<boolean>(n)
  const version = new Array<number | null>(n)
  const micros = new Array<bigint | null>(n)
  const deleted = new Array<boolean | null>(n)
  const data = layout.data
  const columns = data.map(() => new Array<ColumnValue>(n))
  for (let k = 0; k < n; k++) {
    const { event, winner: isWinner } = items[k]!
    ord[k] = k
    id[k] = event.id
    eventId[k] = event.eventId
    winner[k] = isWinner
    version[k] = event.version
    micros[k] = event.micros
    deleted[k] = isWinner ? event.deleted : null
    for (let c = 0; c < data.length; c++) columns[c]![k] = isWinner ? data[c]!.value(event) : null
  }
  const parameters: (Buffer | string)[] = [int4ArrayBinary(ord), textArrayBinary(id)]
  if (layout.ledger !== undefined) {
    parameters.push(
      layout.ledger.type === 'text' ? textArrayBinary(eventId) : (uuidArrayBinary(eventId) ?? textArray(eventId))
    )
  }
  parameters.push(boolArrayBinary(winner))
  data.forEach((column, c) => {
    parameters.push(encode(column.type, columns[c]!))
  })
  if (layout.fence !== undefined) parameters.push(int8ArrayBinary(version), timestamptzArrayBinary(micros))
  if (layout.tombstone !== undefined) parameters.push(boolArrayBinary(deleted))
  return parameters
}

/**
 * Reads rows back by key: every column of the layout, jsonb, int8 and uuid as text, timestamptz as canonical UTC text
 * with microseconds (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, as src/event-time.ts writes it), the rest as pg returns them.
 */
export function readStatement(layout: ResolvedLayout<never, PreparedRow>, names: PostgresTableNames): string {
  const l = layout as unknown as ResolvedLayout<unknown, PreparedRow>
  const typed: [string, ColumnType][] = [[l.key, 'text']]
  for (const c of l.columns) {
    if (c.kind === 'data') typed.push([c.column.sql, c.column.type])
    else
      typed.push([
        c.sql,
        c.kind === 'version' ? 'int8' : c.kind === 'time' ? 'timestamptz' : (l.ledger?.type ?? 'uuid')
      ])
  }
  if (l.tombstone !== undefined) typed.push([l.tombstone, 'timestamptz'])
  const select = typed.map(([column, type]) => {
    if (type === 'jsonb' || type === 'int8' || type === 'uuid') return `${column}::text AS ${column}`
    if (type === 'timestamptz') {
      return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ${column}`
    }
    return column
  })
  return `SELECT ${select.join(', ')}\n  FROM ${quoteQualified(names.table)} WHERE ${l.key} = ANY($1::text[])`
}
