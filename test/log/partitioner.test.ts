import assert from 'node:assert/strict'
import { test } from 'node:test'
import { murmur2 } from '@platformatic/kafka'
import { createProducer } from '../../src/kafka/producer.ts'
import { partitionForKey } from '../../src/log/partitioner.ts'
import { brokers, createTopics, NO_KAFKA, readTopic, uniqueName } from '../helpers/kafka.ts'
import { KAFKA_MURMUR2 } from '../helpers/kafka-murmur2.ts'

const keys = Array.from({ length: 300 }, (_, i) =>
  i % 3 === 0 ? `mem-${i}` : `${i.toString(36)}-${'é'.repeat(i % 5)}`
)

test("the embedded log partitions keys as Kafka's Java client does: toPositive(murmur2(key)) % n", () => {
  for (const [key, hash] of KAFKA_MURMUR2) {
    assert.equal(murmur2(Buffer.from(key)), hash, key)
    for (const n of [1, 3, 6, 7, 12]) assert.equal(partitionForKey(Buffer.from(key), n), (hash & 0x7fffffff) % n)
  }
  // Negative hashes are where @platformatic/kafka's default partitioner (murmur2 >>> 0) would differ.
  const negative = keys.filter((k) => murmur2(Buffer.from(k)) < 0)
  assert.ok(negative.length > 50)
  assert.ok(negative.some((k) => partitionForKey(Buffer.from(k), 6) !== (murmur2(Buffer.from(k)) >>> 0) % 6))
})

test('a key lands on the same partition in the embedded log and on a real broker', {
  skip: brokers() ? false : NO_KAFKA
}, async (t) => {
  const topic = uniqueName('partitions')
  await createTopics(t, [topic], 6)
  const producer = createProducer({ brokers: brokers()!, clientId: 'sfm-test-partitions' })
  try {
    await producer.send(keys.map((key) => ({ topic, key, value: key })))
  } finally {
    await producer.close()
  }
  const read = await readTopic(topic, keys.length, 30_000)
  assert.equal(read.length, keys.length)
  let differs = 0
  for (const m of read) {
    const expected = partitionForKey(Buffer.from(m.key!), 6)
    assert.equal(m.partition, expected, `key ${m.key}`)
    if ((murmur2(Buffer.from(m.key!)) >>> 0) % 6 !== expected) differs++
  }
  t.diagnostic(`${keys.length} keys agree; ${differs} would differ under the library's default partitioner`)
})
