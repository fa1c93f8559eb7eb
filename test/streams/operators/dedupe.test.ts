import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { from, lastValueFrom, toArray } from 'rxjs'
import { dedupe, RecentKeys } from '../../../src/streams/operators/dedupe.ts'
import { envelopeOf, RecordingHost } from '../../helpers/envelopes.ts'
import { keyPoolArb, uuidOf } from '../../helpers/uuid-keys.ts'

/** First in, first out, re-adding a present key does not refresh it: the model RecentKeys must match. */
class ModelKeys {
  readonly keys: string[] = []
  readonly #set = new Set<string>()
  readonly capacity: number
  constructor(capacity: number) {
    this.capacity = capacity
  }
  has(key: string): boolean {
    return this.#set.has(key)
  }
  add(key: string): void {
    if (this.has(key)) return
    this.keys.push(key)
    this.#set.add(key)
    if (this.keys.length > this.capacity) this.#set.delete(this.keys.shift()!)
  }
}

test('RecentKeys forgets the oldest key first, exactly like a FIFO model', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 12 })), { maxLength: 200, size: 'max' }),
      (capacity, operations) => {
        const recent = new RecentKeys(capacity)
        const model = new ModelKeys(capacity)
        for (const [isAdd, n] of operations) {
          const key = `k${n}`
          if (isAdd) {
            assert.equal(recent.add(key), !model.has(key), 'add says whether the key was new')
            model.add(key)
          }
          assert.equal(recent.has(key), model.has(key))
          assert.equal(recent.size, model.keys.length)
        }
        for (let n = 0; n <= 12; n++) assert.equal(recent.has(`k${n}`), model.has(`k${n}`))
      }
    ),
    { numRuns: 2_000 }
  )
})

test('RecentKeys stays fast once full (eviction is O(1), not a walk over deleted entries)', () => {
  const recent = new RecentKeys(100_000)
  const started = performance.now()
  for (let i = 0; i < 300_000; i++) recent.add(`event-${i}`)
  const ms = performance.now() - started
  assert.equal(recent.size, 100_000)
  assert.ok(recent.has('event-200000') && recent.has('event-299999'))
  assert.ok(!recent.has('event-199999') && !recent.has('event-0'))
  // The Set-iterator eviction took ~11 s for this on the 2-core dev machine; the ring takes well under 1 s.
  assert.ok(ms < 4_000, `300k adds into a full 100k window took ${Math.round(ms)} ms`)
})

test('RecentKeys matches the FIFO model for a mix of lowercase uuids (the word table), uppercase, near-uuids and strings', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      keyPoolArb,
      fc.array(fc.tuple(fc.boolean(), fc.nat()), { minLength: 1, maxLength: 300, size: 'max' }),
      (capacity, pool, operations) => {
        const recent = new RecentKeys(capacity)
        const model = new ModelKeys(capacity)
        for (const [isAdd, n] of operations) {
          const key = pool[n % pool.length]!
          if (isAdd) {
            assert.equal(recent.add(key), !model.has(key), `add(${JSON.stringify(key)}) says whether it was new`)
            model.add(key)
          } else {
            assert.equal(recent.has(key), model.has(key), `has(${JSON.stringify(key)})`)
          }
          assert.equal(recent.size, model.keys.length)
        }
        for (const key of pool) assert.equal(recent.has(key), model.has(key), `has(${JSON.stringify(key)}) at the end`)
      }
    ),
    { numRuns: 2_000 }
  )
})

test('RecentKeys keeps exactly the last 10,000 of 40,000 time-ordered uuids that share their first 48 bits', () => {
  // v7-like: a fixed millisecond timestamp, then a counter in rand_a and the low bits; a hash that ignored a word or
  // the seed would pile these into one cluster (slow), and a table bug would show up as a wrong answer.
  const uuid = (i: number) => uuidOf([0x0190f5c2, 0x8a1b7000 | (i >>> 20), 0x80000000 | (i & 0xfffff), i * 2654435761])
  const capacity = 10_000
  const recent = new RecentKeys(capacity)
  const model = new ModelKeys(capacity)
  const started = performance.now()
  for (let i = 0; i < 40_000; i++) {
    const key = uuid(i)
    assert.equal(recent.add(key), true)
    model.add(key)
    // A redelivery of a recent key, and of one just evicted.
    if (i % 7 === 0) assert.equal(recent.add(uuid(i - (i % 5_000))), false)
    if (i >= capacity && i % 11 === 0) assert.equal(recent.has(uuid(i - capacity)), false)
  }
  const ms = performance.now() - started
  assert.equal(recent.size, capacity)
  for (let i = 0; i < 40_000; i++) assert.equal(recent.has(uuid(i)), model.has(uuid(i)), `uuid #${i}`)
  assert.equal(recent.has(uuid(30_000).toUpperCase()), false, 'the uppercase form is a different key')
  // ~0.1 s on the 2-core dev machine; one cluster of 10,000 would take tens of seconds.
  assert.ok(ms < 5_000, `40,000 adds took ${Math.round(ms)} ms`)
})

describe('dedupe', () => {
  test('drops repeated keys (acked as duplicates) and keeps the first of each', async () => {
    const host = new RecordingHost()
    const ids = ['a', 'b', 'a', 'c', 'b', 'a']
    const envelopes = ids.map((id) => envelopeOf(host, id).withValue(id))
    const out = await lastValueFrom(from(envelopes).pipe(dedupe({ key: (e) => e.value }), toArray()))
    assert.deepEqual(
      out.map((e) => e.value),
      ['a', 'b', 'c']
    )
    assert.equal(host.drops.length, 3)
    assert.ok(host.drops.every((d) => d.reason === 'duplicate'))
    // Dropped deliveries are done (their offsets can be committed).
    assert.equal(host.done_.length, 3)
  })

  test('the in-memory window forgets the oldest keys', async () => {
    const host = new RecordingHost()
    const ids = ['a', 'b', 'c', 'a']
    const envelopes = ids.map((id) => envelopeOf(host, id).withValue(id))
    const out = await lastValueFrom(from(envelopes).pipe(dedupe({ key: (e) => e.value, windowSize: 2 }), toArray()))
    assert.equal(out.length, 4)
  })

  test('a durable store is consulted on a miss and told only once a delivery is done', async () => {
    const host = new RecordingHost()
    const remembered: string[] = []
    const store = {
      seen: async (keys: readonly string[]) => new Set(keys.filter((k) => k === 'old')),
      remember: async (keys: readonly string[]) => {
        remembered.push(...keys)
      }
    }
    const envelopes = ['old', 'new'].map((id) => envelopeOf(host, id).withValue(id))
    const out = await lastValueFrom(from(envelopes).pipe(dedupe({ key: (e) => e.value, store }), toArray()))
    assert.deepEqual(
      out.map((e) => e.value),
      ['new']
    )
    assert.deepEqual(remembered, [])
    out[0]!.ack()
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(remembered, ['new'])
  })
})
