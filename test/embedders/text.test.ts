import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { canonicalJson, excerpt } from '../../src/embedders/text.ts'
import { embeddingText, MAX_EMBED_TEXT_LENGTH } from '../../src/memory/vectors/text.ts'

test('payload.text when it is a string', () => {
  assert.equal(embeddingText({ payload: { text: 'hello world', tags: ['a'] } }), 'hello world')
  assert.equal(embeddingText({ payload: 'a bare string payload' }), 'a bare string payload')
})

test('otherwise the canonical JSON of the payload, keys sorted at every level', () => {
  assert.equal(
    embeddingText({ payload: { b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } } }),
    '{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}'
  )
  assert.equal(embeddingText({ payload: { text: 42, note: 'x' } }), '{"note":"x","text":42}')
  assert.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }))
  assert.equal(embeddingText({ payload: [3, 'x'] }), '[3,"x"]')
  assert.equal(embeddingText({ payload: 0 }), '0')
})

test('nothing to embed: undefined', () => {
  for (const payload of [undefined, null, {}, [], '', '   ', { text: '' }, { text: ' \n ' }]) {
    assert.equal(embeddingText({ payload: payload as never }), undefined, JSON.stringify(payload))
  }
})

test('long texts are cut', () => {
  assert.equal(
    embeddingText({ payload: { text: 'x'.repeat(MAX_EMBED_TEXT_LENGTH + 10) } })?.length,
    MAX_EMBED_TEXT_LENGTH
  )
})

test('excerpt: one line, at most `max` characters; the long-text shortcut gives what collapsing the whole text gives', () => {
  assert.equal(excerpt('  a\n\tb   c  '), 'a b c')
  assert.equal(excerpt('x'.repeat(300), 10), `${'x'.repeat(9)}…`)
  // The reference: collapse the whole text, then cut.
  const reference = (text: string, max: number) => {
    const line = text.replace(/\s+/g, ' ').trim()
    return line.length > max ? `${line.slice(0, max - 1)}…` : line
  }
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(fc.constantFrom(' ', '\n', '\t', '\u00a0', '\u2028', '😀', 'é'), fc.string({ maxLength: 12 })),
        {
          maxLength: 400
        }
      ),
      fc.integer({ min: 1, max: 60 }),
      (parts, max) => {
        const text = parts.join('')
        assert.equal(excerpt(text, max), reference(text, max))
      }
    ),
    { numRuns: 3000 }
  )
  // Whitespace runs straddling the cut, and texts that are mostly whitespace.
  for (let pad = 0; pad < 12; pad++) {
    const text = `${'a'.repeat(40 - pad)}${' '.repeat(pad * 3)}${'b '.repeat(30)}`
    assert.equal(excerpt(text, 10), reference(text, 10))
    const sparse = `${' '.repeat(50)}${'c'.repeat(pad)}${' \n'.repeat(30)}d`
    assert.equal(excerpt(sparse, 10), reference(sparse, 10))
    // Long, but short once collapsed: no cut, no ellipsis.
    for (const text of [
      `${'c'.repeat(pad)}${' '.repeat(100)}`,
      `\n${'c'.repeat(pad)}${'\t'.repeat(100)}${'d'.repeat(pad)}`
    ]) {
      assert.equal(excerpt(text, 10), reference(text, 10))
    }
  }
})
