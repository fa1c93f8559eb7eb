import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { memoriesLayout, type TableNames, tableNames } from '../../src/memory/memories.ts'
import { type PreparedEvent, prepareEvent } from '../../src/memory/prepare.ts'
import {
  boolArrayBinary,
  float8ArrayBinary,
  int4ArrayBinary,
  int8ArrayBinary,
  jsonbArrayBinary,
  textArrayBinary,
  timestamptzArrayBinary,
  uuidArrayBinary
} from '../../src/postgres/binary-array.ts'
import { quoteQualified } from '../../src/postgres/identifiers.ts'
import { textArray } from '../../src/sinks/postgres/array-literal.ts'
import { type ReducedItem, reduceBatch } from '../../src/sinks/postgres/buffer.ts'
import { type ClaimMode, ClaimModes, writeParameters, writeStatement } from '../../src/sinks/postgres/dialect.ts'
import { resolveLayout } from '../../src/sinks/postgres/layout.ts'
import { memoryEvent } from '../sinks/postgres/helpers.ts'

// The memories table is one configuration of the generic sink: its statement must stay the text (and so the
// prepared statement's name and plan) the memories sink sent before the sink was generic. statementBefore is that
// sink's writeStatement and writeParameters as they were, kept here as the reference.

function statementBefore(names: TableNames, claim: ClaimMode): { name: string; text: string } {
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

test('the memories layout yields the statement of the memories sink before it was generic, byte for byte', () => {
  const layout = resolveLayout(memoriesLayout)
  for (const table of ['memories', 'other', 's.memories', 's"x.Mem"ories; DROP TABLE x']) {
    for (const processed of [undefined, 'elsewhere.done']) {
      const names = tableNames(table, processed)
      for (const claim of [ClaimModes.SKIP_DUPLICATES, ClaimModes.INSERT]) {
        const before = statementBefore(names, claim)
        const now = writeStatement(layout, { table: names.memories, ledger: names.processed }, claim)
        assert.equal(now.text, before.text, `${table} ${processed} ${claim}`)
        assert.equal(now.name, before.name)
      }
    }
  }
})

function parametersBefore(items: readonly ReducedItem<PreparedEvent>[]): (Buffer | string)[] {
  const n = items.length
  const ord = new Array<number>(n)
  const id = new Array<string>(n)
  const eventId = new Array<string>(n)
  const winner = new Array<boolean>(n)
  const namespace = new Array<string | null>(n)
  const type = new Array<string | null>(n)
  const payload = new Array<string | Buffer | null>(n)
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

test('the memories layout sends the parameters of the memories sink before it was generic, byte for byte', () => {
  const layout = resolveLayout(memoriesLayout)
  const prepared = (fields: Parameters<typeof memoryEvent>[0], index: number): PreparedEvent => {
    const event = prepareEvent(memoryEvent(fields), index)
    if (event instanceof Error) throw event
    return event
  }
  const events = [
    prepared({ id: 'a', version: 1, payload: { text: 'é "quoted" \\ x' }, importance: 0.25 }, 0),
    prepared({ id: 'a', version: 2, op: 'delete' }, 1),
    prepared({ id: 'b', version: 0, op: 'delete' }, 2),
    prepared({ id: 'c', version: 3, timestamp: '1999-12-31T23:59:59.999999Z' }, 3),
    prepared({ id: 'c', version: 3, timestamp: '1999-12-31T23:59:59.999999Z' }, 4),
    prepared({ id: 'd', version: 1, event_id: `{${randomUUID()}}` }, 5)
  ]
  for (const batch of [events.slice(0, 5), events]) {
    const { items } = reduceBatch(batch)
    const now = writeParameters(layout, items)
    const before = parametersBefore(items)
    assert.equal(now.length, 11)
    now.forEach((value, k) => {
      assert.ok(Buffer.isBuffer(value) ? value.equals(before[k] as Buffer) : value === before[k], `parameter ${k + 1}`)
    })
  }
})
