import assert from 'node:assert/strict'
import { test } from 'node:test'
import { canonicalJson, embeddingText, MAX_EMBED_TEXT_LENGTH } from '../../src/embedders/text.ts'

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
