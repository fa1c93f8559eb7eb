import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Admin, ConfigResourceTypes } from '@platformatic/kafka'
import { pipe } from 'rxjs'
import { ErrorKinds, kindOf, PoisonError } from '../../src/errors.ts'
import { createProducer, type OutgoingMessage } from '../../src/kafka/producer.ts'
import {
  planRequests,
  RecordsTooLargeError,
  recordBytesBound,
  TopicRecordLimits
} from '../../src/kafka/record-limit.ts'
import { kafkaDeadLetter, kafkaSink } from '../../src/sinks/kafka/index.ts'
import { KafkaSource } from '../../src/sources/kafka/index.ts'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { envelopeOf, RecordingHost } from '../helpers/envelopes.ts'
import { brokers, committedOffsets, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'
import { RecordingSink } from '../helpers/sinks.ts'

const skip = brokers() ? false : NO_KAFKA

describe('planRequests', () => {
  test('keeps each group under its budget, in order; a record over the budget goes alone', () => {
    const sizes = [40, 40, 40, 150, 40, 10]
    const plan = planRequests(
      sizes,
      () => 'p0',
      () => 100
    )
    assert.deepEqual(plan, [[0, 1], [2], [3], [4, 5]])
    assert.deepEqual(plan.flat(), [0, 1, 2, 3, 4, 5])
  })

  test('counts bytes per group: records of other partitions share a request', () => {
    const plan = planRequests(
      [60, 60, 60, 60],
      (i) => `p${i % 2}`,
      () => 100
    )
    assert.deepEqual(plan, [
      [0, 1],
      [2, 3]
    ])
  })

  test('recordBytesBound is at least the key, value and header bytes', () => {
    const headers = new Map([[Buffer.from('h'), Buffer.from('vv')]])
    assert.equal(recordBytesBound(3, 5, headers), 36 + 3 + 5 + 10 + 3)
    assert.equal(recordBytesBound(0, 0, undefined), 36)
  })

  test('TopicRecordLimits reads once, and falls back to the default for a while when it cannot read', async () => {
    let reads = 0
    const ok = new TopicRecordLimits(async (topics) => {
      reads++
      return new Map(topics.map((t) => [t, 5000]))
    })
    assert.equal(await ok.get('a'), 5000)
    assert.equal(await ok.get('a'), 5000)
    assert.equal(reads, 1)
    ok.forget('a')
    assert.equal(await ok.get('a'), 5000)
    assert.equal(reads, 2)
    const failing = new TopicRecordLimits(async () => {
      throw new Error('denied')
    })
    assert.equal(await failing.get('b'), 1_048_588)
  })
})

describe('producer: requests under the topic limit', { skip }, () => {
  const LIMIT = 64 * 1024

  test('2,000 records of 1.6 KB to one partition (50x the topic limit) are all written, in order', async (t) => {
    const topic = uniqueName('oversize-split')
    await createTopics(t, [topic], 3, { 'max.message.bytes': String(LIMIT) })
    const producer = createProducer({ brokers: brokers()!, clientId: 'sfm-test-oversize' })
    t.after(() => producer.close())
    const filler = 'x'.repeat(1600)
    const messages: OutgoingMessage[] = []
    for (let i = 0; i < 2000; i++) {
      messages.push({ topic, key: 'one-key', value: JSON.stringify({ i, filler }), headers: { n: String(i) } })
    }
    await producer.send(messages)
    assert.equal(await producer.recordLimit?.(topic), LIMIT)
    const read = await readTopic(topic, 2000)
    assert.equal(read.length, 2000)
    assert.deepEqual(
      read.map((m) => (JSON.parse(m.value!) as { i: number }).i),
      messages.map((_, i) => i)
    )
    assert.equal(new Set(read.map((m) => m.partition)).size, 1)
  })

  test('a record over the limit is rejected alone, as poison naming the Kafka error; the others are written', async (t) => {
    const topic = uniqueName('oversize-one')
    await createTopics(t, [topic], 1, { 'max.message.bytes': String(LIMIT) })
    const producer = createProducer({ brokers: brokers()!, clientId: 'sfm-test-oversize' })
    t.after(() => producer.close())
    const messages: OutgoingMessage[] = [
      { topic, key: 'a', value: 'before' },
      { topic, key: 'b', value: 'y'.repeat(LIMIT + 10) },
      { topic, key: 'c', value: 'after' }
    ]
    const error = await producer.send(messages).then(
      () => undefined,
      (e: unknown) => e
    )
    assert.ok(error instanceof RecordsTooLargeError, `expected RecordsTooLargeError, got ${String(error)}`)
    assert.equal(kindOf(error), ErrorKinds.POISON)
    assert.deepEqual(
      error.rejected.map((r) => r.index),
      [1]
    )
    assert.equal(error.rejected[0]!.limit, LIMIT)
    assert.match(error.rejected[0]!.error.message, /MESSAGE_TOO_LARGE \(Kafka error 10\)/)
    assert.match(error.rejected[0]!.error.message, /max\.message\.bytes 65536/)
    const read = await readTopic(topic, 2)
    assert.deepEqual(
      read.map((m) => m.value),
      ['before', 'after']
    )
  })

  test('concurrent sends that are split keep the order of one key (the first read of the limit included)', async (t) => {
    const topic = uniqueName('oversize-concurrent')
    await createTopics(t, [topic], 2, { 'max.message.bytes': String(16 * 1024) })
    const producer = createProducer({ brokers: brokers()!, clientId: 'sfm-test-oversize' })
    t.after(() => producer.close())
    // Sends alternate between over the limit (split) and small (one request), all issued at once.
    const sends = Array.from({ length: 8 }, (_, s) =>
      Array.from({ length: s % 2 === 0 ? 50 : 3 }, (_, i) => ({
        topic,
        key: 'k',
        value: `${s}.${i}:${'v'.repeat(1000)}`
      }))
    )
    await Promise.all(sends.map((messages) => producer.send(messages)))
    const expected = sends.flat().map((m) => m.value.split(':')[0])
    const read = await readTopic(topic, expected.length)
    assert.deepEqual(
      read.map((m) => m.value!.split(':')[0]),
      expected
    )
  })

  test('a topic limit lowered after it was read: the refused request is planned again under the new limit', async (t) => {
    const topic = uniqueName('oversize-lowered')
    await createTopics(t, [topic], 1, { 'max.message.bytes': String(LIMIT) })
    const producer = createProducer({ brokers: brokers()!, clientId: 'sfm-test-oversize' })
    t.after(() => producer.close())
    await producer.send([{ topic, key: 'k', value: 'first' }])
    assert.equal(await producer.recordLimit?.(topic), LIMIT)
    const admin = new Admin({ clientId: 'sfm-test-admin', bootstrapBrokers: brokers()! })
    try {
      await admin.incrementalAlterConfigs({
        resources: [
          {
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName: topic,
            configs: [{ name: 'max.message.bytes', value: '16384', configOperation: 0 }]
          }
        ]
      })
    } finally {
      await admin.close()
    }
    // 40 KB: under the limit read first, over the new one.
    const messages = Array.from({ length: 40 }, (_, i) => ({ topic, key: 'k', value: `${i}:${'w'.repeat(1000)}` }))
    await producer.send(messages)
    assert.equal(await producer.recordLimit?.(topic), 16384)
    const read = await readTopic(topic, 41)
    assert.equal(read.length, 41)
    assert.deepEqual(
      read.slice(1).map((m) => m.value!.split(':')[0]),
      messages.map((_, i) => String(i))
    )
  })
})

describe('Kafka sink and DLQ with records over the topic limit', { skip }, () => {
  const LIMIT = 32 * 1024
  const context = { topology: 't', branch: 'out', signal: new AbortController().signal }

  test('kafkaSink: the envelope whose record is too large fails alone as poison; the batch is written', async (t) => {
    const topic = uniqueName('oversize-sink')
    await createTopics(t, [topic], 2, { 'max.message.bytes': String(LIMIT) })
    const sink = kafkaSink<Buffer>({ topic, brokers: brokers()! })
    t.after(() => sink.close?.())
    await sink.open?.(context)
    const host = new RecordingHost()
    const batch = Array.from({ length: 60 }, (_, i) =>
      envelopeOf(host, i === 7 ? 'b'.repeat(LIMIT * 2) : `${i}:${'s'.repeat(1500)}`, { key: `k${i % 5}` })
    )
    const result = await sink.write(batch, context)
    assert.deepEqual(
      result?.failures?.map((f) => f.index),
      [7]
    )
    assert.equal(kindOf(result!.failures![0]!.error), ErrorKinds.POISON)
    assert.match(String((result!.failures![0]!.error as Error).message), /MESSAGE_TOO_LARGE/)
    const read = await readTopic(topic, 59)
    assert.equal(read.length, 59)
    assert.ok(read.every((m) => !m.value!.startsWith('b')))
  })

  test('DLQ: a letter over the limit is stored cut down with sfm.dlq.truncated; the others are whole', async (t) => {
    const topic = uniqueName('oversize-dlq')
    await createTopics(t, [topic], 1, { 'max.message.bytes': String(LIMIT) })
    const dlq = kafkaDeadLetter({ topic, brokers: brokers()! })
    t.after(() => dlq.close?.())
    await dlq.open?.()
    const headers = (extra: Record<string, string> = {}) =>
      new Map(Object.entries({ 'sfm.dlq.error.message': 'bad', ...extra }).map(([k, v]) => [k, Buffer.from(v)]))
    const big = Buffer.alloc(LIMIT * 3, 0x61)
    await dlq.write([
      { key: Buffer.from('a'), value: Buffer.from('small'), headers: headers() },
      { key: Buffer.from('b'), value: big, headers: headers({ origin: 'kept' }) },
      // Original headers alone over the limit: dropped, the sfm.dlq.* context kept.
      { key: Buffer.from('c'), value: Buffer.from('v'), headers: headers({ huge: 'h'.repeat(LIMIT * 2) }) }
    ])
    const read = await readTopic(topic, 3)
    assert.deepEqual(
      read.map((m) => m.key),
      ['a', 'b', 'c']
    )
    assert.equal(read[0]!.value, 'small')
    assert.equal(read[0]!.headers.has(DeadLetterHeaders.TRUNCATED), false)
    const cut = read[1]!
    assert.ok(cut.value!.length > LIMIT / 2 && cut.value!.length < LIMIT, `cut to ${cut.value!.length}`)
    assert.ok(big.toString().startsWith(cut.value!))
    assert.match(
      cut.headers.get(DeadLetterHeaders.TRUNCATED)!,
      new RegExp(`^value ${big.length} bytes cut to ${cut.value!.length}$`)
    )
    assert.equal(cut.headers.get('origin'), 'kept')
    assert.equal(cut.headers.get('sfm.dlq.error.message'), 'bad')
    const dropped = read[2]!
    assert.equal(dropped.value, 'v')
    assert.equal(dropped.headers.has('huge'), false)
    assert.equal(dropped.headers.get('sfm.dlq.error.message'), 'bad')
    assert.match(dropped.headers.get(DeadLetterHeaders.TRUNCATED)!, /1 original headers dropped/)
  })
  test('runtime: poison whose letters together are many times the DLQ limit, one over it alone, all stored', {
    timeout: 120_000
  }, async (t) => {
    const names = { input: uniqueName('in'), dlq: uniqueName('dlq'), group: uniqueName('group') }
    await createTopics(t, [names.input], 1, { 'max.message.bytes': String(2 * 1024 * 1024) })
    await createTopics(t, [names.dlq], 1, { 'max.message.bytes': String(LIMIT) })
    const good = Array.from({ length: 50 }, (_, i) => ({
      topic: names.input,
      key: `g${i}`,
      value: JSON.stringify({ id: `g${i}` })
    }))
    // Not JSON: each one a poison message; 40 of 8 KB (320 KB of letters for one flush) and one of 100 KB.
    const poison = Array.from({ length: 40 }, (_, i) => ({
      topic: names.input,
      key: `p${i}`,
      value: `!${'p'.repeat(8_000)}`
    }))
    const huge = { topic: names.input, key: 'huge', value: `!${'h'.repeat(100_000)}` }
    await produce([...good.slice(0, 25), ...poison, huge, ...good.slice(25)])
    const sink = new RecordingSink<unknown>()
    const topology = defineTopology<unknown>({
      name: 'oversize',
      source: new KafkaSource({
        topics: [names.input],
        groupId: names.group,
        sessionTimeout: 6000,
        heartbeatInterval: 500
      }),
      pipeline: pipe(decodeJson()),
      branches: { records: branch(sink, { batch: { maxCount: 100, maxWaitMs: 20 } }) },
      deadLetter: kafkaDeadLetter({ topic: names.dlq, brokers: brokers()! }),
      settings: { commitIntervalMs: 200, drainTimeoutMs: 5_000 }
    })
    const summary = await new Runtime(topology, { untilIdleMs: 1500 }).run()
    assert.equal(summary.reason, 'idle')
    assert.equal(summary.deadLettered, 41)
    assert.equal(sink.written.size, 50)
    const letters = await readTopic(names.dlq, 41)
    assert.equal(letters.length, 41)
    const cut = letters.filter((l) => l.headers.has(DeadLetterHeaders.TRUNCATED))
    assert.deepEqual(
      cut.map((l) => l.key),
      ['huge']
    )
    assert.match(cut[0]!.headers.get(DeadLetterHeaders.TRUNCATED)!, /^value 100001 bytes cut to \d+$/)
    assert.equal(cut[0]!.headers.get(DeadLetterHeaders.STAGE), 'decode')
    for (const l of letters.filter((x) => x.key !== 'huge')) assert.equal(l.value!.length, 8_001)
    const committed = await committedOffsets(names.group, names.input)
    assert.equal(committed.get(0), 91n)
  })
  test('runtime: a DLQ that refuses a letter for good (poison) stops the runner instead of retrying forever', {
    timeout: 60_000
  }, async (t) => {
    const names = { input: uniqueName('in'), group: uniqueName('group') }
    await createTopics(t, [names.input], 1)
    await produce([{ topic: names.input, key: 'p', value: 'not json' }])
    let writes = 0
    const topology = defineTopology<unknown>({
      name: 'dlq-poison',
      source: new KafkaSource({
        topics: [names.input],
        groupId: names.group,
        sessionTimeout: 6000,
        heartbeatInterval: 500
      }),
      pipeline: pipe(decodeJson()),
      branches: { records: branch(new RecordingSink<unknown>(), { batch: { maxCount: 10, maxWaitMs: 20 } }) },
      deadLetter: {
        description: 'refusing',
        async write() {
          writes++
          throw new PoisonError('letter too large for the DLQ')
        }
      },
      settings: { commitIntervalMs: 200, drainTimeoutMs: 2_000 }
    })
    await assert.rejects(new Runtime(topology, { untilIdleMs: 10_000 }).run(), /letter too large for the DLQ/)
    assert.equal(writes, 1)
    const committed = await committedOffsets(names.group, names.input)
    assert.ok((committed.get(0) ?? -1n) < 1n, 'the refused message is not committed')
  })
})
