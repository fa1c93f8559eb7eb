import assert from 'node:assert/strict'
import { randomFillSync } from 'node:crypto'
import { test } from 'node:test'
import fc from 'fast-check'
import { hashUuid, parseUuid, UuidSet } from '../../../src/streams/operators/uuid-set.ts'
import { keyPoolArb, nearUuidArb, otherKeyArb, uuidOf, wordsArb } from '../../helpers/uuid-keys.ts'

const CANONICAL_LOWERCASE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

test('parseUuid reads a canonical lowercase uuid into its four words and refuses everything else', () => {
  const words = new Int32Array(6)
  fc.assert(
    fc.property(wordsArb, (expected) => {
      assert.equal(parseUuid(uuidOf(expected), words, 1), true)
      assert.deepEqual([...words.subarray(1, 5)], expected)
    }),
    { numRuns: 2_000 }
  )
  const anyKey = fc.oneof(wordsArb.map(uuidOf).chain(nearUuidArb), otherKeyArb, fc.string({ unit: 'binary' }))
  fc.assert(
    fc.property(anyKey, (key) => {
      assert.equal(parseUuid(key, words, 0), CANONICAL_LOWERCASE.test(key), JSON.stringify(key))
    }),
    { numRuns: 5_000 }
  )
})

/** The words of each key, as a stored uuid. */
function wordsOf(keys: readonly string[]): Int32Array {
  const words = new Int32Array(keys.length * 4)
  keys.forEach((key, i) => {
    assert.ok(parseUuid(key, words, i * 4), key)
  })
  return words
}

test('UuidSet matches a Set for any order of adds and deletes (backward-shift deletion keeps every key findable)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      keyPoolArb.map((pool) => pool.filter((key) => CANONICAL_LOWERCASE.test(key))),
      fc.array(fc.tuple(fc.constantFrom('add', 'delete', 'has'), fc.nat()), { maxLength: 300, size: 'max' }),
      (capacity, pool, operations) => {
        fc.pre(pool.length > 0)
        const words = wordsOf(pool)
        const set = new UuidSet(capacity)
        const model = new Set<string>()
        for (const [operation, n] of operations) {
          const i = n % pool.length
          const key = pool[i]!
          if (operation === 'add' && (model.size < capacity || model.has(key))) {
            assert.equal(set.add(words, i * 4), !model.has(key))
            model.add(key)
          } else if (operation === 'delete') {
            assert.equal(set.delete(words, i * 4), model.delete(key))
          }
          assert.equal(set.has(words, i * 4), model.has(key))
          assert.equal(set.size, model.size)
        }
        pool.forEach((key, i) => {
          assert.equal(set.has(words, i * 4), model.has(key), key)
        })
      }
    ),
    { numRuns: 2_000 }
  )
})

test('UuidSet grows from its first 1,024 slots without losing a key, and refuses more than its capacity', () => {
  const count = 5_000
  const words = randomFillSync(new Int32Array(count * 4))
  const set = new UuidSet(count)
  for (let i = 0; i < count; i++) assert.equal(set.add(words, i * 4), true)
  for (let i = 0; i < count; i++) assert.equal(set.add(words, i * 4), false)
  assert.equal(set.size, count)
  assert.throws(() => set.add(new Int32Array(4), 0), RangeError)
  for (let i = 0; i < count; i += 2) assert.equal(set.delete(words, i * 4), true)
  for (let i = 0; i < count; i++) assert.equal(set.has(words, i * 4), i % 2 === 1)
})

test('UuidSet tells apart uuids that differ in one word only, even when their hashes share slot and tag bits', () => {
  // 10,000 keys in 32,768 slots with a 7-bit tag: ~1% of lookups of absent keys meet a key with the same tag on
  // their probe path, so a comparison that skipped a word would answer wrongly ~100 times here.
  for (let word = 0; word < 4; word++) {
    const base = randomFillSync(new Int32Array(4))
    const key = (i: number) => {
      const words = base.slice()
      words[word] = i
      return words
    }
    const set = new UuidSet(10_000)
    for (let i = 0; i < 10_000; i++) assert.equal(set.add(key(i * 2), 0), true, `word ${word}: key ${i * 2} is new`)
    let wrong = 0
    for (let i = 0; i < 10_000; i++) if (set.has(key(i * 2 + 1), 0)) wrong++
    assert.equal(wrong, 0, `word ${word}: ${wrong} absent keys were found`)
  }
})

test('the hash depends on every word of the uuid and every word of the seed', () => {
  // Keys that differ in one word only (v7 ids share their first 48 bits) must still spread over the slots.
  const seed = randomFillSync(new Int32Array(5))
  const keys = 4_096
  const slots = 8_192
  for (let word = 0; word < 4; word++) {
    const words = randomFillSync(new Int32Array(4))
    const used = new Set<number>()
    for (let i = 0; i < keys; i++) {
      words[word] = i
      used.add(hashUuid(words, 0, seed) & (slots - 1))
    }
    // Random placement fills ~3,224 of the 8,192 slots; a hash that ignored this word would fill one.
    assert.ok(used.size > 3_000, `keys that differ in word ${word} only use ${used.size} slots`)
  }
  // Each seed word changes where keys go, so an adversary who does not know the seed cannot aim at one slot.
  const words = randomFillSync(new Int32Array(4 * 64))
  for (let s = 0; s < 5; s++) {
    const other = seed.slice()
    other[s]! ^= 0x5bd1e995
    let moved = 0
    for (let i = 0; i < 64; i++) if (hashUuid(words, i * 4, seed) !== hashUuid(words, i * 4, other)) moved++
    assert.equal(moved, 64, `seed word ${s} changed the hash of ${moved}/64 keys`)
  }
})
