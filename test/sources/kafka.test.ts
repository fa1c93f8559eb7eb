import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { FatalError } from '../../src/errors.ts'
import { waitForLeaders } from '../../src/kafka/topics.ts'
import {
  defaultKafkaSourceOptions,
  KafkaSource,
  type KafkaSourceOptions,
  resolveKafkaSourceOptions
} from '../../src/sources/kafka/index.ts'
import type { SourceMessage } from '../../src/sources/types.ts'
import { brokers, createTopics, NO_KAFKA, produce, uniqueName } from '../helpers/kafka.ts'

const skip = brokers() ? false : NO_KAFKA

function sourceFor(topic: string, options: Partial<KafkaSourceOptions> = {}): KafkaSource {
  return new KafkaSource({
    topics: [topic],
    groupId: uniqueName('group'),
    drainOldEvents: true,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    maxWaitTime: 200,
    ...options
  })
}

const listener = { rebalancing() {}, assigned() {} }

describe('KafkaSource on a real broker', { skip }, () => {
  test('every message once, in partition order, through next and the synchronous tryNext', async (t) => {
    const topic = uniqueName('source')
    await createTopics(t, [topic], 3)
    const count = 600
    await produce(
      Array.from({ length: count }, (_, i) => ({
        topic,
        key: `k${i % 7}`,
        value: i === 5 ? null : JSON.stringify({ n: i }),
        headers: i % 3 === 0 ? { h: `v${i}` } : undefined
      }))
    )
    const source = sourceFor(topic)
    t.after(() => source.close())
    await source.open(listener)

    const got: SourceMessage[] = []
    let synchronous = 0
    const deadline = AbortSignal.timeout(30_000)
    while (got.length < count) {
      const message = await source.next(deadline)
      assert.ok(message, `next returned nothing after ${got.length} message(s)`)
      got.push(message)
      for (let m = source.tryNext(); m !== undefined; m = source.tryNext()) {
        got.push(m)
        synchronous++
      }
    }
    assert.equal(got.length, count)
    assert.ok(synchronous > 0, 'what a fetch buffered was taken without awaiting')

    const next = new Map<number, bigint>()
    const seen = new Set<number>()
    for (const m of got) {
      const { origin } = m
      assert.equal(origin.topic, topic)
      assert.equal(origin.offset, next.get(origin.partition) ?? 0n, 'contiguous offsets in partition order')
      next.set(origin.partition, origin.offset + 1n)
      assert.ok(origin.timestamp > 0n && origin.leaderEpoch >= 0)
      const key = m.key?.toString()
      assert.match(key ?? '', /^k\d$/)
      if (m.value.length === 0) {
        seen.add(5)
        assert.equal(m.headers.size, 0)
        continue
      }
      const { n } = JSON.parse(m.value.toString()) as { n: number }
      assert.equal(key, `k${n % 7}`)
      seen.add(n)
      if (n % 3 === 0)
        assert.deepEqual(
          [...m.headers].map(([k, v]) => [k, v.toString()]),
          [['h', `v${n}`]]
        )
      else assert.equal(m.headers.size, 0)
    }
    assert.equal(seen.size, count, 'each message once (the tombstone with an empty value)')
    assert.equal(source.tryNext(), undefined)
  })

  test('a backlog is fetched spread over the partitions, at most maxBytesPerPartition of each per fetch', async (t) => {
    // Kafka's max.partition.fetch.bytes; @platformatic/kafka would default it to maxBytes (16 MiB), so a backlog came
    // one partition at a time and the branches wrote that partition's batches one after another.
    assert.equal(defaultKafkaSourceOptions.maxBytesPerPartition, 1024 * 1024)
    const topic = uniqueName('spread')
    const partitions = 3
    await createTopics(t, [topic], partitions)
    // ~1 KB messages in record batches of ~20 KB (one send per round), so a 64 KiB share cuts between batches.
    const rounds = 20
    const perPartition = 20
    const text = 'x'.repeat(1000)
    for (let r = 0; r < rounds; r++) {
      await produce(
        Array.from({ length: partitions * perPartition }, (_, i) => ({
          topic,
          partition: i % partitions,
          value: JSON.stringify({ r, i, text })
        }))
      )
    }
    const total = rounds * partitions * perPartition
    const source = sourceFor(topic, { maxBytesPerPartition: 64 * 1024 })
    t.after(() => source.close())
    await source.open(listener)

    // The first fetch response: what arrives with the first message, taken without awaiting.
    const deadline = AbortSignal.timeout(30_000)
    const first = await source.next(deadline)
    assert.ok(first, 'a first message')
    const burst = [first]
    for (let m = source.tryNext(); m !== undefined; m = source.tryNext()) burst.push(m)
    const counts = new Array<number>(partitions).fill(0)
    for (const m of burst) counts[m.origin.partition]!++
    assert.ok(
      counts.every((c) => c > 0),
      `every partition in the first fetch: ${counts.join(', ')}`
    )
    // 64 KiB of each, plus the record batch that crosses it (~20 KB), is ~85 messages; 16 MiB would be all 400.
    assert.ok(
      counts.every((c) => c <= 150),
      `at most ~64 KiB of each partition: ${counts.join(', ')}`
    )

    let read = burst.length
    while (read < total) {
      const message = await source.next(deadline)
      assert.ok(message, `next returned nothing after ${read} message(s)`)
      read++
      while (source.tryNext() !== undefined) read++
    }
    assert.equal(read, total)
  })

  test('a next waiting on an idle topic returns undefined on abort, and when the source closes', async (t) => {
    const topic = uniqueName('idle')
    await createTopics(t, [topic], 1)
    const source = sourceFor(topic)
    t.after(() => source.close())
    await source.open(listener)

    const controller = new AbortController()
    const started = performance.now()
    const waiting = source.next(controller.signal)
    setTimeout(() => controller.abort(), 300)
    assert.equal(await waiting, undefined)
    assert.ok(performance.now() - started < 5_000, 'the abort ended the wait')

    const pending = source.next(new AbortController().signal)
    await source.close()
    assert.equal(await pending, undefined, 'the stream ended: no message, no error')
  })

  test('a topic deleted under the source: it holds while it reconnects, then stops with a fatal error naming it', async (t) => {
    const topic = uniqueName('gone')
    const admin = new Admin({ clientId: 'sfm-test-admin', bootstrapBrokers: brokers()! })
    t.after(() => admin.close())
    await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 })
    await waitForLeaders(admin, [topic])
    await produce([{ topic, key: 'k', value: '{}' }])
    const reconnecting: number[] = []
    const source = sourceFor(topic, { topicGoneMs: 1_500, reconnectBackoffMs: 100, reconnectBackoffMaxMs: 400 })
    t.after(() => source.close())
    await source.open({ ...listener, reconnecting: (_error, attempt) => reconnecting.push(attempt) })
    assert.ok(await source.next(AbortSignal.timeout(30_000)), 'the message before the deletion')

    await admin.deleteTopics({ topics: [topic] })
    const deleted = performance.now()
    await assert.rejects(source.next(AbortSignal.timeout(60_000)), (error: unknown) => {
      assert.ok(error instanceof FatalError, `a FatalError, got ${String(error)}`)
      assert.match(error.message, new RegExp(`topic ${topic} is gone`))
      assert.match(error.message, /npm run topics -- apply/)
      return true
    })
    assert.ok(performance.now() - deleted >= 1_500, 'not before the brokers said so for topicGoneMs')
    assert.ok(reconnecting.length > 1, `it held and retried first (attempts: ${reconnecting.join(',')})`)
  })
})

describe('resolveKafkaSourceOptions', () => {
  const base = { topics: ['t'], groupId: 'g', brokers: ['127.0.0.1:9092'] }
  test('reconnection defaults, and bounds it refuses', () => {
    const o = resolveKafkaSourceOptions(base, {})
    assert.equal(o.reconnectBackoffMs, 250)
    assert.equal(o.reconnectBackoffMaxMs, 5_000)
    assert.equal(o.topicGoneMs, 5_000)
    assert.throws(() => resolveKafkaSourceOptions({ ...base, reconnectBackoffMs: 0 }, {}), /reconnectBackoffMs/)
    assert.throws(
      () => resolveKafkaSourceOptions({ ...base, reconnectBackoffMs: 2_000, reconnectBackoffMaxMs: 1_000 }, {}),
      /reconnectBackoffMaxMs must be at least reconnectBackoffMs/
    )
    assert.throws(() => resolveKafkaSourceOptions({ ...base, topicGoneMs: -1 }, {}), /topicGoneMs/)
    assert.equal(resolveKafkaSourceOptions({ ...base, topicGoneMs: 0 }, {}).topicGoneMs, 0)
  })
})
