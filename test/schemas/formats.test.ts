import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { fullFormats } from 'ajv-formats/dist/formats.js'
import fc from 'fast-check'
import { isDateTime, isUuid } from '../../src/schemas/formats.ts'
import { compileSchema } from '../../src/streams/operators/validate.ts'

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default

// The references: ajv-formats' full-mode functions, taken as they are.
const ajvDateTime = (fullFormats['date-time'] as { validate: (value: string) => boolean }).validate
const ajvUuid = fullFormats.uuid as RegExp

const pad = (n: number, width = 2): string => String(n).padStart(width, '0')
// The shape the fast path verifies itself; anything else goes to ajv-formats.
const COMMON_DATE_TIME = /^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?[Zz]$/

// Characters that are not what a position wants, or look like it: ASCII neighbours, hex letters, separators,
// whitespace ajv-formats' /t|\s/i splits on, and non-ASCII digits and letters that /\d/ and /[0-9a-f]/i refuse.
const STRANGERS = [
  '0',
  '9',
  '/',
  ':',
  '-',
  '.',
  '+',
  'a',
  'f',
  'g',
  'A',
  'F',
  'G',
  't',
  'T',
  'z',
  'Z',
  ' ',
  '\t',
  '\n',
  '\u00a0',
  '\u2028',
  '\u0663',
  '\uff11',
  '\uff41',
  'é',
  '\u0000'
]

/** Every one-character replacement, deletion and insertion of `value`. */
function singleEdits(value: string): string[] {
  const out: string[] = []
  for (let i = 0; i <= value.length; i++) {
    for (const c of STRANGERS) {
      if (i < value.length) out.push(value.slice(0, i) + c + value.slice(i + 1))
      out.push(value.slice(0, i) + c + value.slice(i))
    }
    if (i < value.length) out.push(value.slice(0, i) + value.slice(i + 1))
  }
  return out
}

const edit = fc.tuple(fc.nat(), fc.constantFrom(...STRANGERS), fc.constantFrom('replace', 'insert', 'delete'))
function applyEdit(value: string, [at, c, kind]: [number, string, string]): string {
  const i = at % (value.length + 1)
  if (kind === 'insert') return value.slice(0, i) + c + value.slice(i)
  return value.slice(0, i) + (kind === 'replace' ? c : '') + value.slice(i + 1)
}

test('isDateTime equals ajv-formats for hand-picked edge cases', () => {
  const cases = [
    '2026-11-27T06:43:54.569Z',
    '2026-11-27T06:43:54Z',
    '2026-11-27t06:43:54.569z',
    '2026-11-27 06:43:54.569Z',
    '2026-11-27T06:43:54.Z',
    '2026-11-27T06:43:54.569',
    '2026-11-27T06:43:54.569+00:00',
    '2026-11-27T06:43:54.569+0000',
    '2026-11-27T06:43:54.569+00',
    '2026-11-27T06:43:54.569-24:00',
    '2026-11-27T06:43:54.569+23:60',
    '2026-11-27T06:43:54.569ZZ',
    '2026-11-27T06:43:54.569Z\n',
    '2026-11-27TT06:43:54.569Z',
    '2026-11-27T06:43:54.569Zt',
    ...['1900', '2000', '2024', '2023', '2100', '2400', '0000', '0004', '0100', '9996', '9999'].flatMap((y) => [
      `${y}-02-28T00:00:00Z`,
      `${y}-02-29T00:00:00Z`,
      `${y}-02-30T00:00:00Z`
    ]),
    ...['01', '02', '03', '04', '05', '06', '07', '08', '09', '10', '11', '12', '00', '13'].flatMap((m) => [
      `2026-${m}-30T00:00:00Z`,
      `2026-${m}-31T00:00:00Z`,
      `2026-${m}-32T00:00:00Z`,
      `2026-${m}-00T00:00:00Z`
    ]),
    '2026-01-01T23:59:59Z',
    '2026-01-01T24:00:00Z',
    '2026-01-01T23:60:00Z',
    '2026-01-01T23:59:60Z',
    '2026-01-01T23:59:60.999Z',
    '2026-01-01T23:59:61Z',
    '2026-01-01T22:59:60Z',
    '2026-01-01T23:58:60Z',
    '2026-01-01T00:59:60+01:00',
    '2026-01-01T00:29:60+00:30',
    '2026-01-01T23:59:60-00:00',
    '2026-01-01T18:59:60-05:00',
    '2026-01-01T10:00:59.999999999Z',
    '2026-01-01T10:00:59.9999999999Z',
    '2026-01-01T10:00:59.999999999999999Z',
    `2026-01-01T10:00:59.${'9'.repeat(16)}Z`,
    `2026-01-01T10:00:59.${'9'.repeat(40)}Z`,
    `2026-01-01T23:59:59.${'9'.repeat(16)}Z`,
    `2026-01-01T10:00:58.${'9'.repeat(40)}Z`,
    `2026-01-01T10:00:00.${'0'.repeat(400)}Z`,
    '',
    'T',
    'Z',
    '2026-01-01',
    '06:43:54Z',
    '+2026-01-01T00:00:00Z',
    '20260-01-01T00:00:00Z',
    '226-01-01T00:00:00Z',
    '2026-1-01T00:00:00Z',
    '2026-01-01T0:00:00Z',
    '2026-01-01T00:00:0Z',
    '2026-01-01\t00:00:00Z',
    '2026-01-01\u00a000:00:00Z',
    '2026-01-01\u200000:00:00Z'
  ]
  for (const value of cases) assert.equal(isDateTime(value), ajvDateTime(value), JSON.stringify(value))
})

test('isDateTime equals ajv-formats after every single-character edit of common values', () => {
  let checked = 0
  for (const base of [
    '2024-02-29T23:59:59.123Z',
    '2026-11-27T06:43:54Z',
    '2000-12-31t00:00:00.5z',
    '2016-12-31T23:59:60Z'
  ]) {
    for (const value of singleEdits(base)) {
      assert.equal(isDateTime(value), ajvDateTime(value), JSON.stringify(value))
      checked++
    }
  }
  assert.ok(checked > 4_000)
})

test('isDateTime equals ajv-formats for generated strings (property)', () => {
  const field = (max: number, width = 2) =>
    fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: 0, max }).map((n) => pad(n, width)) },
      { weight: 1, arbitrary: fc.constantFrom('', '0', '1x', '-1', ' 1', '\u0661\u0662', '１２', '001') }
    )
  const offset = fc.oneof(
    fc.constantFrom('Z', 'z', '', 'ZZ', 'Z ', ' Z', 'Z\n', 'Zt', 'T', '+00:00', '-00:00', '+0000', '+00'),
    fc
      .record({
        sign: fc.constantFrom('+', '-'),
        h: fc.integer({ min: 0, max: 25 }),
        colon: fc.constantFrom(':', '', ';'),
        m: fc.option(fc.integer({ min: 0, max: 61 }), { nil: undefined })
      })
      .map(({ sign, h, colon, m }) => `${sign}${pad(h)}${m === undefined ? '' : `${colon}${pad(m)}`}`)
  )
  const fraction = fc.oneof(
    { weight: 3, arbitrary: fc.constant('') },
    { weight: 4, arbitrary: fc.stringMatching(/^\.\d{1,12}$/) },
    { weight: 1, arbitrary: fc.constantFrom('.', `.${'9'.repeat(15)}`, `.${'9'.repeat(16)}`, `.${'9'.repeat(30)}`) },
    { weight: 1, arbitrary: fc.stringMatching(/^\.[\d.a]{0,4}$/) }
  )
  const fields = fc
    .record({
      year: fc.oneof(
        field(9999, 4),
        fc.constantFrom('0000', '1900', '2000', '2024', '2023', '2100', '2400', '999', '10000', '+2024')
      ),
      month: field(13),
      day: fc.oneof(field(32), fc.constantFrom('28', '29', '30', '31')),
      t: fc.constantFrom('T', 'T', 'T', 't', ' ', '\t', '\u3000', 'x', 'TT', ''),
      hour: fc.oneof(field(24), fc.constantFrom('23', '24', '00')),
      minute: fc.oneof(field(60), fc.constantFrom('59', '60')),
      second: fc.oneof(field(61), fc.constantFrom('59', '60')),
      fraction,
      offset,
      tail: fc.oneof({ weight: 9, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.string({ maxLength: 3 }) })
    })
    .map((r) => `${r.year}-${r.month}-${r.day}${r.t}${r.hour}:${r.minute}:${r.second}${r.fraction}${r.offset}${r.tail}`)
  // Valid instants over years 0000–9999 as producers write them (Date#toISOString, 0, 3, 6 or 9 digits).
  const canonical = fc
    .record({
      date: fc.date({
        min: new Date('0000-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59.999Z'),
        noInvalidDate: true
      }),
      digits: fc.constantFrom(0, 3, 6, 9),
      lower: fc.boolean()
    })
    .map(({ date, digits, lower }) => {
      const iso = date.toISOString()
      const fraction = digits === 0 ? '' : `.${iso.slice(20, 23).padEnd(digits, '7')}`
      const base = `${iso.slice(0, 19)}${fraction}Z`
      return lower ? base.toLowerCase() : base
    })
  // Month ends in the common shape: Feb 29 of leap and non-leap years (1900, 2000, 2024…), day 31 of 30-day months.
  const monthEnds = fc
    .record({
      year: fc.oneof(
        fc.integer({ min: 0, max: 9999 }),
        fc.constantFrom(0, 4, 100, 400, 1900, 2000, 2023, 2024, 2100, 2400, 9996)
      ),
      month: fc.integer({ min: 1, max: 12 }),
      day: fc.integer({ min: 28, max: 32 }),
      time: fc.constantFrom('00:00:00', '23:59:59', '12:30:00.5', '23:59:59.999999999', '23:59:60'),
      t: fc.constantFrom('T', 't'),
      z: fc.constantFrom('Z', 'z')
    })
    .map((r) => `${pad(r.year, 4)}-${pad(r.month)}-${pad(r.day)}${r.t}${r.time}${r.z}`)
  const base = fc.oneof(fields, canonical, monthEnds)
  const generated = fc.oneof(
    { weight: 4, arbitrary: base },
    { weight: 1, arbitrary: fc.tuple(base, edit).map(([value, e]) => applyEdit(value, e)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 32 }) }
  )
  let common = 0
  let commonValid = 0
  let valid = 0
  fc.assert(
    fc.property(generated, (value) => {
      const expected = ajvDateTime(value)
      assert.equal(isDateTime(value), expected, JSON.stringify(value))
      if (expected) valid++
      if (COMMON_DATE_TIME.test(value)) {
        common++
        if (expected) commonValid++
      }
    }),
    { numRuns: 60_000, seed: 20261127 }
  )
  // Both paths, and both answers of the fast path's shape, were exercised.
  assert.ok(common > 15_000, `only ${common} values had the common shape`)
  assert.ok(commonValid > 10_000 && common - commonValid > 2_000, `${commonValid} of ${common} common ones valid`)
  assert.ok(valid - commonValid > 400, `only ${valid - commonValid} valid values outside the common shape`)
})

test('isUuid equals ajv-formats for hand-picked edge cases and every single-character edit', () => {
  const base = '0f8fad5b-d9cb-469f-a165-70867728950e'
  const cases = [
    base,
    base.toUpperCase(),
    'F0f8FAD5-b9cb-469F-a165-70867728950E',
    `urn:uuid:${base}`,
    `URN:UUID:${base}`,
    `urn:uuid:${base.toUpperCase()}`,
    `urn:uuid${base}`,
    `uuid:${base}`,
    base.slice(1),
    `${base}0`,
    `0${base}`,
    base.replaceAll('-', ''),
    `${base}\n`,
    ` ${base}`,
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '0f8fad5bd-9cb-469f-a165-70867728950e',
    '0f8fad5b-d9cb4-69f-a165-70867728950e',
    '',
    '-'.repeat(36)
  ]
  for (const value of cases) assert.equal(isUuid(value), ajvUuid.test(value), JSON.stringify(value))
  let checked = 0
  for (const value of [...singleEdits(base), ...singleEdits(`urn:uuid:${base.toUpperCase()}`)]) {
    assert.equal(isUuid(value), ajvUuid.test(value), JSON.stringify(value))
    checked++
  }
  assert.ok(checked > 2_000)
})

test('isUuid equals ajv-formats for generated strings (property)', () => {
  const hexish = fc.constantFrom(...'0123456789abcdefABCDEF', 'g', 'G', '-', ' ', 'é', '\u0663')
  const segment = (n: number) =>
    fc.oneof(
      { weight: 8, arbitrary: fc.stringMatching(new RegExp(`^[0-9a-fA-F]{${n}}$`)) },
      { weight: 1, arbitrary: fc.array(hexish, { minLength: n - 1, maxLength: n + 1 }).map((a) => a.join('')) }
    )
  const uuid = fc
    .record({
      prefix: fc.constantFrom('', '', '', 'urn:uuid:', 'URN:uuid:', 'urn:uuid', 'x'),
      parts: fc.tuple(segment(8), segment(4), segment(4), segment(4), segment(12)),
      hyphen: fc.constantFrom('-', '-', '-', '-', '', '_'),
      tail: fc.constantFrom('', '', '', '\n', '0', ' ')
    })
    .map(({ prefix, parts, hyphen, tail }) => prefix + parts.join(hyphen) + tail)
  const canonical = fc.uuid({ version: [1, 2, 3, 4, 5, 6, 7, 8] })
  const base = fc.oneof(uuid, canonical)
  const generated = fc.oneof(
    { weight: 4, arbitrary: base },
    { weight: 2, arbitrary: fc.tuple(base, edit).map(([value, e]) => applyEdit(value, e)) },
    { weight: 1, arbitrary: fc.string({ minLength: 34, maxLength: 38 }) }
  )
  let valid = 0
  fc.assert(
    fc.property(generated, (value) => {
      const expected = ajvUuid.test(value)
      assert.equal(isUuid(value), expected, JSON.stringify(value))
      if (expected) valid++
    }),
    { numRuns: 30_000, seed: 20261127 }
  )
  assert.ok(valid > 10_000 && valid < 25_000, `${valid} of 30000 valid`)
})

test("validate()'s ajv uses the fast formats and still answers as ajv-formats does, formatMinimum included", () => {
  // validate()'s options: the first error only.
  const reference = new Ajv2020({ allErrors: false, strict: true, allowUnionTypes: true })
  addFormats(reference)
  const schema = {
    type: 'object',
    properties: {
      at: { type: 'string', format: 'date-time', formatMinimum: '2000-01-01T00:00:00Z' },
      id: { type: 'string', format: 'uuid' }
    }
  }
  const ours = compileSchema(schema)
  const theirs = reference.compile(schema)
  for (const [at, id] of [
    ['2026-11-27T06:43:54.569Z', '0f8fad5b-d9cb-469f-a165-70867728950e'],
    ['1999-12-31T23:59:59Z', '0F8FAD5B-D9CB-469F-A165-70867728950E'],
    ['2026-04-31T00:00:00Z', 'urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e'],
    ['2016-12-31T23:59:60Z', '0f8fad5b-d9cb-469f-a165-70867728950'],
    ['2026-11-27 06:43:54+01:00', 'not a uuid']
  ]) {
    const value = { at, id }
    assert.equal(ours(value), theirs(value), JSON.stringify(value))
    assert.deepEqual(ours.errors ?? null, theirs.errors ?? null, JSON.stringify(value))
  }
  assert.equal(ours({ at: '2026-04-31T00:00:00Z' }), false)
  assert.equal(ours.errors?.[0]?.message, 'must match format "date-time"')
})
