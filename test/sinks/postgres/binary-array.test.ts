import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { type TestContext, test } from 'node:test'
import { PGlite } from '@electric-sql/pglite'
import fc from 'fast-check'
import pg from 'pg'
import { type EventTime, fromMicros, parseEventTime } from '../../../src/event-time.ts'
import {
  boolArrayBinary,
  float8ArrayBinary,
  int4ArrayBinary,
  int8ArrayBinary,
  jsonbArrayBinary,
  textArrayBinary,
  timestamptzArrayBinary,
  uuidArrayBinary
} from '../../../src/postgres/binary-array.ts'
import { textArray } from '../../../src/sinks/postgres/array-literal.ts'
import { pglitePool } from '../../../src/sinks/postgres/pglite-pool.ts'
import { databaseUrl } from './helpers.ts'

// Every encoder is read back by PostgreSQL 15 (the server, through pg) and by PGlite (through pglite-pool.ts, whose
// serializers must hand the bytes over unchanged): what goes in must come back identical, NULLs and empty arrays
// included. Results are compared as text so that both clients' type parsers stay out of it.

type Target = readonly [name: string, pool: pg.Pool]

async function targets(t: TestContext): Promise<Target[]> {
  const server = new pg.Pool({ connectionString: databaseUrl(), max: 1 })
  server.on('error', () => {})
  t.after(() => server.end())
  const db = await PGlite.create()
  t.after(() => db.close())
  return [
    ['server', server],
    ['pglite', pglitePool(db)]
  ]
}

/** `SELECT unnest($1::<type>[])::text`, one row per element, in order. */
async function unnestText(pool: pg.Pool, type: string, value: unknown): Promise<(string | null)[]> {
  const { rows } = await pool.query<{ v: string | null }>(`SELECT v::text AS v FROM unnest($1::${type}[]) v`, [value])
  return rows.map((r) => r.v)
}

/** The array's dimensions and cardinality as PostgreSQL sees them (an empty array has no dimensions). */
async function shape(pool: pg.Pool, type: string, value: unknown): Promise<string> {
  const { rows } = await pool.query<{ v: string }>(
    `SELECT coalesce(array_dims($1::${type}[]), '') || '/' || cardinality($1::${type}[]) AS v`,
    [value]
  )
  return rows[0]!.v
}

test('empty arrays: no dimensions, no elements, for every encoder', async (t) => {
  for (const [name, pool] of await targets(t)) {
    const cases: [string, Buffer][] = [
      ['bool', boolArrayBinary([])],
      ['int4', int4ArrayBinary([])],
      ['int8', int8ArrayBinary([])],
      ['float8', float8ArrayBinary([])],
      ['timestamptz', timestamptzArrayBinary([])],
      ['uuid', uuidArrayBinary([])!],
      ['text', textArrayBinary([])],
      ['jsonb', jsonbArrayBinary([])]
    ]
    for (const [type, value] of cases) assert.equal(await shape(pool, type, value), '/0', `${name} ${type}`)
  }
})

test('text[]: any string survives, non-ASCII, astral, blanks, quotes and the word NULL included; NULLs stay NULL', async (t) => {
  const tricky = ['', 'NULL', 'null', ' ', 'a,b', '{x}', '"', '\\', 'é ✓ 𝄞', 'Ωμέγα', '日本語', '\t\n\r', '}']
  const generated = fc.sample(fc.string({ unit: 'grapheme', maxLength: 60 }), { numRuns: 1_000, seed: 11 })
  const long = 'ü'.repeat(5_000)
  const values: (string | null)[] = [null, ...tricky, null, ...generated.filter((s) => !s.includes('\u0000')), long]
  for (const [name, pool] of await targets(t)) {
    assert.deepEqual(await unnestText(pool, 'text', textArrayBinary(values)), values, name)
    assert.equal(await shape(pool, 'text', textArrayBinary(values)), `[1:${values.length}]/${values.length}`, name)
  }
})

test('text[]: a lone surrogate becomes U+FFFD, as pg writes it in a text parameter (lengths stay exact)', async (t) => {
  const values = ['a\ud800b', '\udc00', 'ok', '\ud83d\ude00 pair']
  for (const [name, pool] of await targets(t)) {
    assert.deepEqual(
      await unnestText(pool, 'text', textArrayBinary(values)),
      ['a\ufffdb', '\ufffd', 'ok', '\ud83d\ude00 pair'],
      name
    )
  }
})

test('text[]: a NUL is refused by the server as in the text form (the writer then isolates that item)', async (t) => {
  for (const [name, pool] of await targets(t)) {
    await assert.rejects(unnestText(pool, 'text', textArrayBinary(['ok', 'nul\u0000'])), (error: { code?: string }) => {
      assert.equal(error.code, '22021', name)
      return true
    })
  }
})

test('int4[], int8[], bool[]: extremes, negatives and NULLs', async (t) => {
  const int4 = [0, 1, -1, 2_147_483_647, -2_147_483_648, null, 65_536]
  const int8 = [
    0,
    1,
    -1,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    2 ** 32,
    2 ** 32 - 1,
    -(2 ** 32),
    -(2 ** 32) - 1,
    2 ** 31,
    null,
    ...fc.sample(fc.maxSafeInteger(), { numRuns: 500, seed: 13 })
  ]
  const bools = [true, false, null, true, false]
  for (const [name, pool] of await targets(t)) {
    assert.deepEqual(await unnestText(pool, 'int4', int4ArrayBinary(int4)), int4.map(textOf), name)
    assert.deepEqual(await unnestText(pool, 'int8', int8ArrayBinary(int8)), int8.map(textOf), name)
    assert.deepEqual(
      await unnestText(pool, 'bool', boolArrayBinary(bools)),
      bools.map((b) => (b === null ? null : String(b))),
      name
    )
  }
})

function textOf(value: number | null): string | null {
  return value === null ? null : String(value)
}

test('float8[]: every double as is, -0, subnormals, NaN and ±Infinity included', async (t) => {
  const doubles = [0, -0, -1.5, 0.1, 1e21, 1.5e-7, 5e-324, -1.7976931348623157e308, Number.NaN, Infinity, -Infinity]
  const generated = fc.sample(fc.double(), { numRuns: 1_000, seed: 17 })
  const values: (number | null)[] = [...doubles, null, ...generated]
  for (const [name, pool] of await targets(t)) {
    const back = (await unnestText(pool, 'float8', float8ArrayBinary(values))).map((v) =>
      v === null ? null : Number(v)
    )
    assert.deepEqual(back, values, name)
  }
})

test('timestamptz[]: the same instants as the text path, to the microsecond, 0001 to 9999, before 2000 and 1970', async (t) => {
  const texts = [
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999999Z',
    '1999-12-31T23:59:59.999999Z',
    '2000-01-01T00:00:00Z',
    '2000-01-01T00:00:00.000001Z',
    '1970-01-01T00:00:00Z',
    '1969-12-31T23:59:59.999999Z',
    '1900-02-28T12:34:56.5+05:30',
    '2026-11-27T04:28:06.123456789-08:00',
    '2112-09-17T23:53:47.370496Z',
    '1827-04-15T00:06:12.629504Z',
    '2255-06-05T23:47:34.740992Z',
    '1600-02-29T23:59:60Z'
  ]
  const generated = fc.sample(fc.bigInt({ min: -62135596800000000n, max: 253402300799999999n }), {
    numRuns: 2_000,
    seed: 19
  })
  const times: EventTime[] = [
    ...texts.map((text) => parseEventTime(text) as EventTime),
    ...generated.map((micros) => fromMicros(micros) as EventTime)
  ]
  for (const time of times) assert.equal(typeof time, 'object')
  const micros: (bigint | null)[] = [...times.map((e) => e.micros), null]
  const canonical: (string | null)[] = [...times.map((e) => e.text), null]
  for (const [name, pool] of await targets(t)) {
    const { rows } = await pool.query<{ b: string | null; same: boolean | null }>(
      `SELECT to_char(b AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS b, b = s AS same
         FROM ROWS FROM (unnest($1::timestamptz[]), unnest($2::timestamptz[])) AS x(b, s)`,
      [timestamptzArrayBinary(micros), textArray(canonical)]
    )
    assert.deepEqual(
      rows.map((r) => r.b),
      canonical,
      name
    )
    assert.ok(
      rows.slice(0, -1).every((r) => r.same === true),
      `${name}: binary and text timestamps differ`
    )
  }
})

test('uuid[]: canonical forms in either case are encoded; any other form is left to the text path', async (t) => {
  const uuids = [...Array.from({ length: 200 }, () => randomUUID()), '00000000-0000-0000-0000-000000000000']
  const mixed = uuids.map((u, i) => (i % 2 === 0 ? u.toUpperCase() : u))
  const values: (string | null)[] = [...mixed, null, 'FFFFFFFF-ffff-AbCd-0123-456789abcdef']
  for (const [name, pool] of await targets(t)) {
    const binary = uuidArrayBinary(values)
    assert.ok(binary !== undefined)
    assert.deepEqual(
      await unnestText(pool, 'uuid', binary),
      values.map((v) => v?.toLowerCase() ?? null),
      name
    )
  }
  const u = randomUUID()
  for (const other of [
    `{${u}}`,
    u.replaceAll('-', ''),
    `${u} `,
    u.slice(0, 35),
    `${u.slice(0, 8)}_${u.slice(9)}`,
    `${u.slice(0, 35)}g`,
    `${u.slice(0, 35)}é`,
    'not-a-uuid'
  ]) {
    assert.equal(uuidArrayBinary([u, other]), undefined, other)
  }
})

test('jsonb[]: each element is what the server makes of the same JSON text; NULL stays SQL NULL', async (t) => {
  const json = fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: 500, seed: 23 })
  const texts: (string | null)[] = [
    ...json.map((v) => JSON.stringify(v)).filter((s) => !s.includes('\\u0000')),
    null,
    'null',
    '{"text":"héllo ✓ 𝄞 日本"}',
    JSON.stringify({ text: 'x'.repeat(100_000) }),
    '"\\ud83d\\ude00"',
    '[]'
  ]
  for (const [name, pool] of await targets(t)) {
    const { rows } = await pool.query<{ b: string | null; s: string | null }>(
      `SELECT b::text AS b, s::jsonb::text AS s FROM ROWS FROM (unnest($1::jsonb[]), unnest($2::text[])) AS x(b, s)`,
      [jsonbArrayBinary(texts), textArrayBinary(texts)]
    )
    assert.equal(rows.length, texts.length, name)
    assert.deepEqual(
      rows.map((r) => r.b),
      rows.map((r) => r.s),
      name
    )
    assert.equal(rows.at(-6)?.b, null, `${name}: a missing element is SQL NULL`)
    assert.equal(rows.at(-5)?.b, 'null', `${name}: JSON null stays the jsonb value null`)
    // \u0000 cannot be stored in jsonb: refused, as the text form is.
    await assert.rejects(
      pool.query('SELECT unnest($1::jsonb[])', [jsonbArrayBinary(['{"a":1}', '{"a":"\\u0000"}'])]),
      (error: { code?: string }) => {
        assert.equal(error.code, '22P05', name)
        return true
      }
    )
  }
})
