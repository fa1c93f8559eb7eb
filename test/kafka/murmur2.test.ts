import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { compatibilityPartitioner, murmur2 as libraryMurmur2 } from '@platformatic/kafka'
import { kafkaPartitioner, murmur2 } from '../../src/kafka/murmur2.ts'
import { KAFKA_MURMUR2 } from '../helpers/kafka-murmur2.ts'

test("murmur2 gives Kafka's values", () => {
  for (const [key, hash] of KAFKA_MURMUR2) assert.equal(murmur2(Buffer.from(key)), hash, key)
})

test("murmur2 and the partitioner equal the library's on random keys of every length and tail", () => {
  let negative = 0
  for (let length = 0; length <= 80; length++) {
    for (let n = 0; n < 50; n++) {
      const key = randomBytes(length)
      const expected = libraryMurmur2(key)
      assert.equal(murmur2(key), expected, key.toString('hex'))
      assert.equal(kafkaPartitioner(undefined, key), compatibilityPartitioner({ topic: 't', value: key }, key))
      if (expected < 0) negative++
    }
  }
  // Keys whose hash is negative are where toPositive matters: the run must have met them.
  assert.ok(negative > 1000, `${negative} negative hashes`)
  assert.equal(kafkaPartitioner(undefined, undefined), 0)
})
