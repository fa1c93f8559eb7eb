import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { memoriesLayout, type TableNames, tableNames } from '../../src/memory/memories.ts'
import { type ClaimMode, ClaimModes, writeStatement } from '../../src/sinks/postgres/dialect.ts'
import { quoteQualified } from '../../src/sinks/postgres/identifiers.ts'
import { resolveLayout } from '../../src/sinks/postgres/layout.ts'

// The memories table is one configuration of the generic sink: its statement must stay the text (and so the
// prepared statement's name and plan) the memories sink sent before the sink was generic. statementBefore is that
// sink's writeStatement as it was, kept here as the reference.

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
