import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { KafkaSource } from '../../src/sources/kafka/index.ts'
import type { SourceMessage } from '../../src/sources/types.ts'
import { brokers, createTopics, NO_KAFKA, produce, uniqueName } from '../helpers/kafka.ts'

const skip = brokers() ? false : NO_KAFKA

function sourceFor(topic: string): KafkaSource {
  return new KafkaSource({
    topics: [topic],
    groupId: uniqueName('group'),
    drainOldEvents: true,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    maxWaitTime: 200
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
})
