import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import pg from 'pg'
import { boolArray, jsonArray, numberArray, textArray } from '../../../src/sinks/postgres/array-literal.ts'
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

test('numberArray and boolArray: finite doubles, 64-bit-safe integers, booleans and NULL', async (t) => {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 })
  t.after(() => pool.end())
  const doubles = [0, -1.5, 0.1, 1e21, 1.5e-7, 5e-324, -1.7976931348623157e308, 123456.789, null]
  const generated = fc.sample(fc.double({ noNaN: true, noDefaultInfinity: true }), { numRuns: 1_000, seed: 5 })
  const floats = [...doubles, ...generated.map((d) => (Object.is(d, -0) ? 0 : d))]
  const { rows } = await pool.query<{ v: number | null }>('SELECT unnest($1::float8[]) AS v', [numberArray(floats)])
  assert.deepEqual(
    rows.map((r) => r.v),
    floats
  )
  const ints = [0, 1, Number.MAX_SAFE_INTEGER, null, 42]
  const int8 = await pool.query<{ v: string | null }>('SELECT unnest($1::int8[])::text AS v', [numberArray(ints)])
  assert.deepEqual(
    int8.rows.map((r) => r.v),
    ints.map((i) => (i === null ? null : String(i)))
  )
  const bools = [true, false, null, true]
  const b = await pool.query<{ v: boolean | null }>('SELECT unnest($1::bool[]) AS v', [boolArray(bools)])
  assert.deepEqual(
    b.rows.map((r) => r.v),
    bools
  )
})

test('jsonArray: each JSON text is one element, in order; a missing one is JSON null', async (t) => {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 })
  t.after(() => pool.end())
  const json = fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: 300, seed: 7 })
  const texts: (string | null)[] = [
    ...json.map((v) => JSON.stringify(v)).filter((s) => !s.includes('\\u0000')),
    null,
    '"],[1,"',
    '{"a":"]"}'
  ]
  const { rows } = await pool.query<{ v: string }>('SELECT e::text AS v FROM jsonb_array_elements($1::jsonb) e', [
    jsonArray(texts)
  ])
  assert.equal(rows.length, texts.length)
  rows.forEach((row, i) => {
    assert.deepEqual(JSON.parse(row.v), JSON.parse(texts[i] ?? 'null'), `element ${i}`)
  })
})
