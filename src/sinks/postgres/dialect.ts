import { createHash } from 'node:crypto'
import { textArray } from './array-literal.ts'
import {
  boolArrayBinary,
  float8ArrayBinary,
  int4ArrayBinary,
  int8ArrayBinary,
  jsonbArrayBinary,
  textArrayBinary,
  timestamptzArrayBinary,
  uuidArrayBinary
} from './binary-array.ts'
import type { ReducedItem } from './buffer.ts'
import { quoteQualified } from './identifiers.ts'
import type { TableNames } from './types.ts'

/**
 * The SQL text of the sink, after Debezium's JDBC sink dialects: identifiers quoted once here, values always bound.
 *
 * A batch is ONE statement, so it is one implicit transaction and one round trip: the whole batch goes as eleven
 * parallel arrays (UNNEST) in PostgreSQL's binary array format (binary-array.ts: no array literal to parse, a
 * timestamp is 8 bytes, a uuid 16; the payloads as jsonb[], each element the JSON text prepareEvent serialised
 * once, copied as bytes, never escaped), the event ids are claimed in the processed table, the claimed winners are
 * upserted under the fence, and the statement returns the outcomes the writer cannot know. A data-modifying CTE's
 * RETURNING is visible to the others, and all of them see the snapshot taken before the statement: the stored pair
 * read for the outcome is the state before this batch.
 *
 * - `claimed`: event ids not processed before (ON CONFLICT DO NOTHING returns only rows it inserted, and waits for
 *   a concurrent inserter of the same id, so two writers cannot both claim an event). In `ClaimModes.INSERT` (below)
 *   it is a plain INSERT that claims every row or fails the statement.
 * - `written`: only claimed winners; DO UPDATE only when the fence passes, so a stale or equal event writes nothing
 *   (no dead tuple, no WAL). Deletes leave a tombstone: payload and importance null, deleted_at set (a delete's
 *   element of the payload array is NULL already; the CASE keeps a tombstone's payload NULL whatever is sent).
 *   It reads `claimed` before its first row (in INSERT mode through a one-time `count(*)` filter that is always
 *   true), so the whole claim runs first: two writers of the same events meet at the processed table before either
 *   touches `memories`. Without it PostgreSQL ran the unreferenced claim last, and two writers of the same batch
 *   deadlocked inside the memories insert (writer.test.ts, "two writers in plain mode").
 * - the result: one row, `applied` (how many rows `written` wrote) and the exceptions as two arrays, `ords` and
 *   `outcomes` (NULL when there are none). The writer knows every other outcome: a written winner is applied, a
 *   loser has its in-batch outcome (buffer.ts). An exception is an item not claimed (duplicate) or a winner not
 *   written, whose stored pair decides between duplicate (equal) and fenced (greater). A row inserted concurrently by
 *   another writer is not in our snapshot: such an item reports fenced. The writer checks that `applied` equals its
 *   winners minus the winners among the exceptions. One row instead of one per item: parsing ~1,000 result rows
 *   was ~4% of the memory topology's Node CPU. The search for exceptions runs only when the counts say there are
 *   some (fewer rows written than winners, fewer event ids claimed than sent): a one-time filter, so a clean batch
 *   does not unnest its arrays a second time.
 *
 * The arrays are unnested twice, not shared through a CTE: a CTE read by several parts is materialized, which
 * copied every payload into a tuplestore and sorted the batch to join it with `claimed`. `written` unnests the row
 * columns itself, the outcome query only the small ones. Measured with EXPLAIN ANALYZE on a 2,000-event batch of
 * new ids (server PostgreSQL 15): 30.9 → 21.5 ms, backend CPU 24.2 → 16.4 µs per event.
 *
 * The unnests are set-returning functions in a subquery's select list, which PostgreSQL (10 and later) runs in
 * lockstep, one row at a time (a ProjectSet node), not `FROM ROWS FROM (unnest(…), …)`: a function in FROM is a
 * FunctionScan, which first copies every function's whole result into a tuplestore, so every payload was copied
 * once more before the insert read it. Same rows (arrays of equal length either way); measured on 1,000-event
 * batches of new ids (server PostgreSQL 15, alternating, min of 5): the memories insert alone 13.3 → 11.8 µs of
 * backend CPU per event, the whole statement 20.3 → 18.0.
 *
 * The exceptions are found per input row with subqueries, not joins, so the plan's cost does not depend on the
 * table: `claimed` and `written` are each hashed once, and the stored pair is read by a primary-key probe that runs
 * only for the (rare) claimed winners that were not written. It used to be three LEFT JOINs,
 * the last on the memories table: the planner, blind to the CTEs' contents, estimated 500,000 joined rows and read
 * the whole memories table (hash join over a sequential scan) for every batch: a 2,000-row batch took 40 ms at 4k
 * rows, 99 ms at 98k and 224 ms at 198k, where the estimated cost also passed jit_above_cost and every execution
 * was JIT-compiled (found with bench/memory-kv.ts); now the cost does not grow with the table.
 */
export interface WriteStatement {
  readonly name: string
  readonly text: string
}

/**
 * How `claimed` records the batch's event ids.
 * - `skip-duplicates`: `ON CONFLICT (event_id) DO NOTHING`, so an already processed event is reported a duplicate.
 *   PostgreSQL pays a speculative insertion per row for it: a unique-index probe before the insert and a WAL record
 *   confirming it after.
 * - `insert`: a plain INSERT, for batches expected to hold no processed event (the writer's steady state); a
 *   processed one fails the statement with unique_violation (23505, also after waiting for a concurrent writer of
 *   the same id) and nothing of it is written, so the writer runs the batch again with `skip-duplicates`. Measured
 *   on one connection (900-event batches): 1.1–1.9 µs less backend CPU per event.
 */
export const ClaimModes = {
  SKIP_DUPLICATES: 'skip-duplicates',
  INSERT: 'insert'
} as const
export type ClaimMode = (typeof ClaimModes)[keyof typeof ClaimModes]

export function writeStatement(names: TableNames, claim: ClaimMode = ClaimModes.SKIP_DUPLICATES): WriteStatement {
  const memories = quoteQualified(names.memories)
  const processed = quoteQualified(names.processed)
  const skip = claim === ClaimModes.SKIP_DUPLICATES
  const text = `WITH claimed AS (
  INSERT INTO ${processed} AS p (event_id, processed_at)
  SELECT unnest($3::uuid[]), now()${skip ? '\n  ON CONFLICT (event_id) DO NOTHING' : ''}
  RETURNING p.event_id
),
written AS (
  INSERT INTO ${memories} AS m
    (id, namespace, type, payload, importance, version, event_id, event_ts, deleted_at, updated_at)
  SELECT i.id, i.namespace, i.type, CASE WHEN NOT i.deleted THEN i.payload END, i.importance, i.version, i.event_id,
    i.event_ts, CASE WHEN i.deleted THEN i.event_ts END, now()
  FROM (SELECT unnest($2::text[]) AS id, unnest($3::uuid[]) AS event_id, unnest($4::bool[]) AS winner,
    unnest($5::text[]) AS namespace, unnest($6::text[]) AS type, unnest($7::jsonb[]) AS payload,
    unnest($8::float8[]) AS importance, unnest($9::int8[]) AS version, unnest($10::timestamptz[]) AS event_ts,
    unnest($11::bool[]) AS deleted) AS i
  WHERE i.winner AND ${skip ? 'i.event_id IN (SELECT c.event_id FROM claimed c)' : '(SELECT count(*) FROM claimed) >= 0'}
  ON CONFLICT (id) DO UPDATE SET
    namespace = EXCLUDED.namespace, type = EXCLUDED.type, payload = EXCLUDED.payload,
    importance = EXCLUDED.importance, version = EXCLUDED.version, event_id = EXCLUDED.event_id,
    event_ts = EXCLUDED.event_ts, deleted_at = EXCLUDED.deleted_at, updated_at = EXCLUDED.updated_at
  WHERE (m.version, m.event_ts) < (EXCLUDED.version, EXCLUDED.event_ts)
  RETURNING m.id
)
SELECT (SELECT count(*) FROM written)::int4 AS applied, array_agg(i.ord) AS ords, array_agg(
  CASE${skip ? "\n    WHEN i.event_id NOT IN (SELECT c.event_id FROM claimed c) THEN 'duplicate'" : ''}
    WHEN (SELECT (s.version, s.event_ts) = (i.version, i.event_ts) FROM ${memories} s WHERE s.id = i.id)
      THEN 'duplicate'
    ELSE 'fenced'
  END) AS outcomes
FROM (SELECT unnest($1::int4[]) AS ord, unnest($2::text[]) AS id, unnest($3::uuid[]) AS event_id,
  unnest($4::bool[]) AS winner, unnest($9::int8[]) AS version, unnest($10::timestamptz[]) AS event_ts) AS i
WHERE ((SELECT count(*) FROM written) < (SELECT count(*) FROM unnest($4::bool[]) AS v(winner) WHERE v.winner)${
    skip ? ' OR (SELECT count(*) FROM claimed) < cardinality($3::uuid[])' : ''
  })
  AND (${skip ? 'i.event_id NOT IN (SELECT c.event_id FROM claimed c) OR ' : ''}(i.winner AND i.id NOT IN (SELECT w.id FROM written w)))`
  // Named, so each connection parses and plans it once; the name follows the text (different tables, new name).
  const name = `sfm_pg_write_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`
  return { name, text }
}

/**
 * The eleven parameters of `writeStatement`, in order, as binary arrays (binary-array.ts); `ord` is the item's
 * position in `items`. The event ids go as text (array-literal.ts) when one of them is not in the canonical
 * hyphenated form, so that PostgreSQL's uuid input accepts (braces, no hyphens, …) or refuses exactly what it did.
 */
export function writeParameters(items: readonly ReducedItem[]): (Buffer | string)[] {
  const n = items.length
  const ord = new Array<number>(n)
  const id = new Array<string>(n)
  const eventId = new Array<string>(n)
  const winner = new Array<boolean>(n)
  const namespace = new Array<string | null>(n)
  const type = new Array<string | null>(n)
  const payload = new Array<string | null>(n)
  const importance = new Array<number | null>(n)
  const version = new Array<number | null>(n)
  const eventTs = new Array<bigint | null>(n)
  const deleted = new Array<boolean | null>(n)
  for (let k = 0; k < n; k++) {
    const { event, winner: isWinner } = items[k]!
    ord[k] = k
    id[k] = event.id
    eventId[k] = event.eventId
    winner[k] = isWinner
    version[k] = event.version
    eventTs[k] = event.micros
    // A loser is never written: its row data would only cost bytes on the wire.
    namespace[k] = isWinner ? event.namespace : null
    type[k] = isWinner ? event.type : null
    payload[k] = isWinner ? event.payload : null
    importance[k] = isWinner ? event.importance : null
    deleted[k] = isWinner ? event.deleted : null
  }
  return [
    int4ArrayBinary(ord),
    textArrayBinary(id),
    uuidArrayBinary(eventId) ?? textArray(eventId),
    boolArrayBinary(winner),
    textArrayBinary(namespace),
    textArrayBinary(type),
    jsonbArrayBinary(payload),
    float8ArrayBinary(importance),
    int8ArrayBinary(version),
    timestamptzArrayBinary(eventTs),
    boolArrayBinary(deleted)
  ]
}
