import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import pg from 'pg'
import { type EventTime, fromMicros, parseEventTime, parseRfc3339 } from '../src/event-time.ts'
import { databaseUrl } from './sinks/postgres/helpers.ts'

function parsed(value: string): EventTime {
  const result = parseEventTime(value)
  assert.equal(typeof result, 'object', `${value}: ${String(result)}`)
  return result as EventTime
}

test('parseEventTime: canonical UTC text with microseconds, offsets applied', () => {
  assert.equal(parsed('2025-03-01T12:00:00Z').text, '2025-03-01T12:00:00.000000Z')
  assert.equal(parsed('2025-03-01T12:00:00.5+02:00').text, '2025-03-01T10:00:00.500000Z')
  assert.equal(parsed('2025-03-01 00:30:00.123456789-01:45').text, '2025-03-01T02:15:00.123456Z')
  assert.equal(parsed('2025-03-01t12:00:00+0100').text, '2025-03-01T11:00:00.000000Z')
  assert.equal(parsed('2025-03-01T12:00:00+01').text, '2025-03-01T11:00:00.000000Z')
  assert.equal(parsed('1970-01-01T00:00:00.000001Z').micros, 1n)
  assert.equal(parsed('1969-12-31T23:59:59.999999Z').micros, -1n)
  assert.equal(parsed('1969-12-31T23:59:59.999999Z').text, '1969-12-31T23:59:59.999999Z')
  // Years below 100 are not shifted to the 1900s.
  assert.equal(parsed('0042-06-01T00:00:00Z').text, '0042-06-01T00:00:00.000000Z')
  // A leap second rolls over, as in PostgreSQL.
  assert.equal(parsed('2016-12-31T23:59:60Z').text, '2017-01-01T00:00:00.000000Z')
  // Truncated, not rounded: equal pairs in JavaScript are equal in PostgreSQL.
  assert.equal(parsed('2025-01-01T00:00:00.0000019Z').micros, parsed('2025-01-01T00:00:00.000001Z').micros)
})

test('parseEventTime: refuses what PostgreSQL or the schema would refuse', () => {
  for (const bad of [
    '2025-03-01T12:00:00',
    '2025-03-01',
    '2025-13-01T00:00:00Z',
    '2025-02-29T00:00:00Z',
    '2025-01-01T24:00:00Z',
    '2025-01-01T00:00:00+24:00',
    '0000-06-01T00:00:00Z',
    '0001-01-01T00:00:00+01:00',
    '9999-12-31T23:00:00-05:00',
    'yesterday'
  ]) {
    assert.equal(typeof parseEventTime(bad), 'string', bad)
  }
  assert.equal(typeof parseEventTime(12), 'string')
  assert.equal(parsed('2024-02-29T00:00:00Z').text, '2024-02-29T00:00:00.000000Z')
  assert.equal(typeof fromMicros(-62135596800000001n), 'string')
})

test('parseEventTime: the fast path for UTC "Z" forms gives what the general path gives', () => {
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0')
  const field = (max: number, w = 2) =>
    fc.oneof(
      fc.integer({ min: 0, max }).map((n) => pad(n, w)),
      fc.constantFrom('', '0', '1x', '-1', ' 1')
    )
  // Mostly well-formed, with every field pushed past its range, leap days, leap seconds, year 0, long fractions,
  // lower-case or missing T/Z and stray characters, so both the fast path and its fall-backs are exercised.
  const candidate = fc
    .record({
      year: fc.oneof(
        fc.integer({ min: 0, max: 9999 }).map((n) => pad(n, 4)),
        fc.constantFrom('1970', '2000', '2100')
      ),
      month: field(13),
      day: field(32),
      hour: field(24),
      minute: field(60),
      second: field(61),
      fraction: fc.option(fc.stringMatching(/^\d{0,12}$/), { nil: undefined }),
      t: fc.constantFrom('T', 'T', 'T', 't', ' '),
      z: fc.constantFrom('Z', 'Z', 'Z', 'z', '', '+00:00', 'ZZ')
    })
    .map(
      (r) =>
        `${r.year}-${r.month}-${r.day}${r.t}${r.hour}:${r.minute}:${r.second}` +
        `${r.fraction === undefined ? '' : `.${r.fraction}`}${r.z}`
    )
  const canonical = fc
    .record({
      date: fc.date({
        min: new Date('0001-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59.999Z'),
        noInvalidDate: true
      }),
      micros: fc.option(fc.stringMatching(/^\d{3}$/), { nil: undefined })
    })
    .map(({ date, micros }) =>
      micros === undefined ? date.toISOString() : `${date.toISOString().slice(0, 23)}${micros}Z`
    )
  const generated = fc.oneof(candidate, canonical)
  let fast = 0
  fc.assert(
    fc.property(generated, (value) => {
      const general = parseRfc3339(value)
      const result = parseEventTime(value)
      if (typeof general === 'string') assert.equal(typeof result, 'string', value)
      else {
        assert.deepEqual(result, general, value)
        if (value.endsWith('Z') && value[10] === 'T') fast++
      }
    }),
    { numRuns: 20_000, seed: 20261127 }
  )
  assert.ok(fast > 5_000, `only ${fast} values took the fast path`)
  for (const value of ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999999999Z', '2255-06-05T23:47:34.740993Z']) {
    assert.deepEqual(parseEventTime(value), parseRfc3339(value), value)
  }
})

test('parseEventTime agrees with PostgreSQL timestamptz for generated RFC 3339 strings', async (t) => {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 })
  t.after(() => pool.end())
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0')
  const timestamp = fc
    .record({
      year: fc.integer({ min: 1, max: 9998 }),
      month: fc.integer({ min: 1, max: 12 }),
      day: fc.integer({ min: 1, max: 28 }),
      hour: fc.integer({ min: 0, max: 23 }),
      minute: fc.integer({ min: 0, max: 59 }),
      second: fc.integer({ min: 0, max: 59 }),
      fraction: fc.option(fc.stringMatching(/^\d{1,6}$/), { nil: undefined }),
      offset: fc.oneof(
        fc.constant('Z'),
        fc
          .record({ sign: fc.constantFrom('+', '-'), h: fc.integer({ min: 0, max: 15 }), m: fc.integer({ max: 59 }) })
          .map(({ sign, h, m }) => `${sign}${pad(h)}:${pad(m)}`)
      )
    })
    .map(
      (r) =>
        `${pad(r.year, 4)}-${pad(r.month)}-${pad(r.day)}T${pad(r.hour)}:${pad(r.minute)}:${pad(r.second)}` +
        `${r.fraction === undefined ? '' : `.${r.fraction}`}${r.offset}`
    )
    .filter((s) => typeof parseEventTime(s) === 'object')
  const samples = fc.sample(timestamp, { numRuns: 2000, seed: 42 })
  const { rows } = await pool.query<{ input: string; utc: string }>(
    `SELECT input, to_char(input::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS utc
     FROM unnest($1::text[]) AS input`,
    [samples]
  )
  assert.equal(rows.length, samples.length)
  for (const row of rows) assert.equal(parsed(row.input).text, row.utc, row.input)
})
