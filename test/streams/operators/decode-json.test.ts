import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { from, lastValueFrom, toArray } from 'rxjs'
import { PoisonError } from '../../../src/errors.ts'
import {
  decodeJson,
  decodeJsonValue,
  defaultDecodeJsonOptions,
  jsonDepthExceeds,
  openingBracketsExceed,
  topLevelMemberSpan
} from '../../../src/streams/operators/decode-json.ts'
import { envelopeOf, RecordingHost } from '../../helpers/envelopes.ts'

/** The original byte-by-byte scan: the specification the indexOf-based scan must match. */
function referenceDepthExceeds(bytes: Uint8Array, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}

// Texts dense in the bytes that matter (quotes, backslashes, brackets), plus multi-byte UTF-8.
const jsonish = fc
  .array(fc.constantFrom('"', '\\', '{', '}', '[', ']', 'a', ':', ',', ' ', 'é', '😀'), { maxLength: 80 })
  .map((parts) => Buffer.from(parts.join('')))

test('the depth scan agrees with a byte-by-byte scan on quote/backslash/bracket soup', () => {
  fc.assert(
    fc.property(jsonish, fc.integer({ min: 0, max: 6 }), (bytes, limit) => {
      assert.equal(jsonDepthExceeds(bytes, limit), referenceDepthExceeds(bytes, limit))
    }),
    { numRuns: 5_000 }
  )
})

test('the depth scan agrees with a byte-by-byte scan on real JSON, on Buffers and plain Uint8Arrays', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 0, max: 9 }), (value, limit) => {
      const buffer = Buffer.from(JSON.stringify(value))
      const plain = new Uint8Array(buffer)
      const expected = referenceDepthExceeds(buffer, limit)
      assert.equal(jsonDepthExceeds(buffer, limit), expected)
      assert.equal(jsonDepthExceeds(plain, limit), expected)
    }),
    { numRuns: 2_000 }
  )
})

test('escaped quotes: an odd run of backslashes escapes, an even run does not', () => {
  assert.equal(jsonDepthExceeds(Buffer.from('["\\\\"]'), 1), false) // ["\\"] : the string is one backslash
  assert.equal(jsonDepthExceeds(Buffer.from('["\\\\",[1]]'), 1), true)
  assert.equal(jsonDepthExceeds(Buffer.from('["\\",[1]]'), 1), false) // the quote is escaped: all one string
  assert.equal(jsonDepthExceeds(Buffer.from('"unterminated [[['), 0), false)
})

test('the bracket count is exact, and never false where the depth exceeds the limit', () => {
  fc.assert(
    fc.property(jsonish, fc.integer({ min: 0, max: 6 }), (bytes, limit) => {
      const brackets = bytes.filter((b) => b === 0x7b || b === 0x5b).length
      // Any bytes: a byte that is not UTF-8 decodes to U+FFFD, never to a bracket, and a bracket byte is never part
      // of a multi-byte character, so the decoded string holds the same brackets.
      const text = bytes.toString('utf8')
      assert.equal(openingBracketsExceed(text, limit), brackets > limit)
      if (referenceDepthExceeds(bytes, limit)) assert.equal(openingBracketsExceed(text, limit), true)
    }),
    { numRuns: 5_000 }
  )
})

test('decodeJsonValue refuses exactly the values nested deeper than maxDepth, with brackets inside strings too', () => {
  const withStrings = fc.jsonValue({ maxDepth: 8 }).map((value) => ({ text: '[[[{{{'.repeat(3), value }))
  fc.assert(
    fc.property(withStrings, fc.integer({ min: 1, max: 9 }), (value, maxDepth) => {
      const bytes = Buffer.from(JSON.stringify(value))
      const options = { ...defaultDecodeJsonOptions, maxDepth }
      if (referenceDepthExceeds(bytes, maxDepth)) {
        assert.throws(
          () => decodeJsonValue(bytes, options),
          (e: unknown) => {
            return e instanceof PoisonError && /nests deeper than/.test(e.message)
          }
        )
      } else {
        assert.deepEqual(decodeJsonValue(bytes, options), JSON.parse(bytes.toString()))
      }
    }),
    { numRuns: 2_000 }
  )
})

describe('decodeJson', () => {
  test('decodes JSON and dead-letters what is not JSON, too large, too deep or not UTF-8', async () => {
    const host = new RecordingHost()
    const inputs = [
      envelopeOf(host, '{"a":1}'),
      envelopeOf(host, 'not json'),
      envelopeOf(host, `"${'x'.repeat(200)}"`),
      envelopeOf(host, `${'['.repeat(40)}${']'.repeat(40)}`),
      envelopeOf(host, Buffer.from([0x22, 0xff, 0xfe, 0x22])),
      envelopeOf(host, '["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]')
    ]
    const out = await lastValueFrom(from(inputs).pipe(decodeJson({ maxBytes: 100, maxDepth: 32 }), toArray()))
    assert.deepEqual(
      out.map((e) => e.value),
      [{ a: 1 }, ['[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[']]
    )
    const reasons = host.dead.map((d) => (d.error as Error).message)
    assert.equal(host.dead.length, 4)
    assert.match(reasons[0]!, /not JSON/)
    assert.match(reasons[1]!, /larger than the 100 bytes/)
    assert.match(reasons[2]!, /deeper than the 32 levels/)
    assert.match(reasons[3]!, /not valid UTF-8/)
    assert.ok(host.dead.every((d) => d.stage === 'decode' && d.error instanceof PoisonError))
  })

  test('depth scan ignores brackets in strings and escaped quotes', () => {
    assert.equal(jsonDepthExceeds(Buffer.from('{"a":"[[[[\\"[[["}'), 1), false)
    assert.equal(jsonDepthExceeds(Buffer.from('{"a":{"b":1}}'), 1), true)
    assert.equal(jsonDepthExceeds(Buffer.from('['.repeat(1000)), 999), true)
  })
})

describe('decodeJson rawMember: the JSON text of one top-level member as received', () => {
  // Member names as written: plain, repeated, and escaped spellings (one of which spells "payload").
  const names = ['"payload"', '"id"', '"x"', '"p\\u0061yload"', '"pay\\"load"']
  const space = fc.constantFrom('', ' ', '\n', '\t', ' \r\n ')
  const member = fc.record({
    name: fc.constantFrom(...names),
    value: fc.jsonValue(),
    indent: fc.nat(3),
    before: space,
    after: space
  })

  test('topLevelMemberSpan gives the text of the member JSON.parse keeps, or nothing where a name is escaped', () => {
    fc.assert(
      fc.property(fc.array(member, { maxLength: 6 }), space, (members, edge) => {
        const body = members
          .map((m) => `${m.before}${m.name}${m.after}:${m.before}${JSON.stringify(m.value, null, m.indent)}${m.after}`)
          .join(',')
        const text = `${edge}{${body}}${edge}`
        const parsed = JSON.parse(text) as Record<string, unknown>
        const span = topLevelMemberSpan(text, 'payload')
        const escaped = members.some((m) => m.name.includes('\\'))
        if (escaped || !Object.hasOwn(parsed, 'payload')) {
          assert.equal(span, undefined, text)
          return
        }
        assert.ok(span, text)
        assert.deepEqual(JSON.parse(text.slice(span[0], span[1])), parsed.payload, text)
      }),
      { numRuns: 3_000 }
    )
    assert.equal(topLevelMemberSpan('[{"payload":1}]', 'payload'), undefined)
    assert.equal(topLevelMemberSpan('{"a":{"payload":1}}', 'payload'), undefined, 'nested members do not count')
    assert.deepEqual(topLevelMemberSpan('{"payload":-1.5e3}', 'payload'), [11, 17])
  })

  test('the delivery gives the bytes for the decoded value only, and only for ASCII messages', async () => {
    const host = new RecordingHost()
    const ascii = '{"id":"a", "payload" : { "n": 12345678901234567890, "t": "say \\"hi\\" \\\\ {" } }'
    const inputs = [envelopeOf(host, ascii), envelopeOf(host, '{"id":"é","payload":{"t":1}}'), envelopeOf(host, '{}')]
    const out = await lastValueFrom(from(inputs).pipe(decodeJson({ rawMember: 'payload' }), toArray()))
    const raw = out[0]!.delivery.rawMemberOf(out[0]!.value)
    assert.equal(raw?.toString(), '{ "n": 12345678901234567890, "t": "say \\"hi\\" \\\\ {" }')
    // A stage that replaces the value gets nothing: the text would no longer be the member's.
    const replaced = out[0]!.withValue({ ...(out[0]!.value as object) })
    assert.equal(replaced.delivery.rawMemberOf(replaced.value), undefined)
    assert.equal(out[1]!.delivery.rawMemberOf(out[1]!.value), undefined, 'not ASCII: the sink serialises')
    assert.equal(out[2]!.delivery.rawMemberOf(out[2]!.value), undefined, 'no such member')
    // Without the option nothing is kept.
    const plain = await lastValueFrom(from([envelopeOf(host, ascii)]).pipe(decodeJson(), toArray()))
    assert.equal(plain[0]!.delivery.rawMemberOf(plain[0]!.value), undefined)
  })
})
