import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import pg from 'pg'
import { textArray } from '../../../src/sinks/postgres/array-literal.ts'
import { databaseUrl } from './helpers.ts'

// PostgreSQL reads the literals back: what it returns element by element must be exactly what went in.

test('textArray: any string survives, quotes, backslashes, braces, commas, blanks and the word NULL included', async (t) => {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 })
  t.after(() => pool.end())
  const tricky = ['', 'NULL', 'null', ' ', ' a ', 'a,b', '{x}', '"', '\\', '\\"', '"\\', 'é ✓ 𝄞', '\t\n\r', '}', '{']
  const generated = fc.sample(fc.string({ unit: 'grapheme', maxLength: 40 }), { numRuns: 1_000, seed: 3 })
  // PostgreSQL text cannot hold NUL: the sink reports such an item as poison, as it did before.
  const values: (string | null)[] = [...tricky, null, ...generated.filter((s) => !s.includes('\u0000')), null]
  const { rows } = await pool.query<{ v: string | null }>('SELECT unnest($1::text[]) AS v', [textArray(values)])
  assert.deepEqual(
    rows.map((r) => r.v),
    values
  )
  assert.equal(textArray([]), '{}')
})
