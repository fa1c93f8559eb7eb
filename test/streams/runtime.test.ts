import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { pipe } from 'rxjs'
import { PoisonError, RetriableError } from '../../src/errors.ts'
import { kafkaDeadLetter } from '../../src/sinks/kafka/index.ts'
import { KafkaSource } from '../../src/sources/kafka/index.ts'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { validate } from '../../src/streams/operators/validate.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology, type RuntimeSettings } from '../../src/streams/topology.ts'
import {
  brokers,
  committedOffsets,
  createTopics,
  NO_KAFKA,
  produce,
  readTopic,
  uniqueName,
  waitFor
} from '../helpers/kafka.ts'
import { RecordingSink } from '../helpers/sinks.ts'

const skip = brokers() ? false : NO_KAFKA

interface Item {
  id: string
  n: number
  bad?: boolean
}

const itemSchema = {
  type: 'object',
  required: ['id', 'n'],
  properties: { id: { type: 'string' }, n: { type: 'integer' }, bad: { type: 'boolean' } }
}

function items(count: number, from = 0): { topic: string; key: string; value: string }[] {
  return Array.from({ length: count }, (_, i) => ({
    topic: '',
    key: `k${(i + from) % 17}`,
    value: JSON.stringify({ id: `m${i + from}`, n: i + from })
  }))
}

function topologyFor(
  names: { input: string; dlq: string; group: string },
  sink: RecordingSink<Item>,
  settings: Partial<RuntimeSettings> = {},
  maxCount = 100
) {
  return defineTopology<Item>({
    name: 'test',
    source: new KafkaSource({
      topics: [names.input],
      groupId: names.group,
      sessionTimeout: 6000,
      heartbeatInterval: 500
    }),
    pipeline: pipe(decodeJson(), validate<Item>(itemSchema)),
    branches: { records: branch(sink, { batch: { maxCount, maxWaitMs: 20 } }) },
    deadLetter: kafkaDeadLetter({ topic: names.dlq }),
    settings: { commitIntervalMs: 200, drainTimeoutMs: 5_000, ...settings }
  })
}

async function setup(t: import('node:test').TestContext, partitions = 2) {
  const names = { input: uniqueName('in'), dlq: uniqueName('dlq'), group: uniqueName('group') }
  await createTopics(t, [names.input, names.dlq], partitions)
  return names
}

const withTopic = (messages: { topic: string; key: string; value: string }[], topic: string) =>
  messages.map((m) => ({ ...m, topic }))

describe('runtime on a real broker', { skip }, () => {
  test('poison goes to the DLQ with its reasons, the rest is written, and every offset is committed', async (t) => {
    const names = await setup(t, 2)
    const good = withTopic(items(200), names.input)
    const poison = [
      { topic: names.input, key: 'k1', value: 'not json at all' },
      { topic: names.input, key: 'k2', value: JSON.stringify({ id: 'x' }) },
      { topic: names.input, key: 'k3', value: `${'['.repeat(500)}${']'.repeat(500)}` }
    ]
    await produce([...good.slice(0, 100), ...poison, ...good.slice(100)])
    const sink = new RecordingSink<Item>()
    const runtime = new Runtime(topologyFor(names, sink), { untilIdleMs: 1500 })
    const summary = await runtime.run()

    assert.equal(summary.reason, 'idle')
    assert.equal(sink.written.size, 200)
    assert.deepEqual(
      [...sink.written.values()].map((v) => v.n).sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i)
    )
    assert.equal(summary.deadLettered, 3)
    const letters = await readTopic(names.dlq, 3)
    assert.equal(letters.length, 3)
    const byKey = new Map(letters.map((l) => [l.key, l]))
    assert.equal(byKey.get('k1')?.value, 'not json at all')
    assert.equal(byKey.get('k1')?.headers.get(DeadLetterHeaders.STAGE), 'decode')
    assert.equal(byKey.get('k2')?.headers.get(DeadLetterHeaders.STAGE), 'validate')
    assert.match(byKey.get('k2')?.headers.get(DeadLetterHeaders.ERROR_MESSAGE) ?? '', /required property 'n'/)
    assert.match(byKey.get('k3')?.headers.get(DeadLetterHeaders.ERROR_MESSAGE) ?? '', /deeper/)
    for (const l of letters) {
      assert.equal(l.headers.get(DeadLetterHeaders.SOURCE_TOPIC), names.input)
      assert.equal(l.headers.get(DeadLetterHeaders.TOPOLOGY), 'test')
      assert.equal(l.headers.get(DeadLetterHeaders.ERROR_CLASS), 'PoisonError')
      assert.ok(l.headers.get(DeadLetterHeaders.SOURCE_OFFSET))
      assert.ok(l.headers.get(DeadLetterHeaders.FAILED_AT))
    }
    const committed = await committedOffsets(names.group, names.input)
    const total = [...committed.values()].reduce((a, b) => a + b, 0n)
    assert.equal(total, 203n, 'the committed offsets cover all 203 messages, poison included')
  })

  test('a stalled sink holds the in-flight window; nothing is lost when it recovers', async (t) => {
    const names = await setup(t, 2)
    await produce(withTopic(items(3000), names.input))
    const sink = new RecordingSink<Item>()
    sink.hold()
    const runtime = new Runtime(topologyFor(names, sink, { maxInFlight: 100, maxInFlightBytes: 1024 * 1024 }), {
      untilIdleMs: 1500
    })
    const run = runtime.run()
    await waitFor(() => runtime.stats().inFlight >= 100, 20_000, 'the window to fill')
    let maxInFlight = 0
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 50))
      maxInFlight = Math.max(maxInFlight, runtime.stats().inFlight)
    }
    const stats = runtime.stats()
    assert.ok(maxInFlight <= 100, `in-flight stayed within the window (max ${maxInFlight})`)
    assert.ok(stats.consumed <= 100, `the source stopped pulling (consumed ${stats.consumed})`)
    assert.equal(sink.written.size, 0)
    sink.release()
    const summary = await run
    assert.equal(sink.written.size, 3000)
    assert.equal(summary.deadLettered, 0)
    const committed = await committedOffsets(names.group, names.input)
    assert.equal(
      [...committed.values()].reduce((a, b) => a + b, 0n),
      3000n
    )
  })

  test('retriable sink errors are retried with backoff, never dead-lettered; item poison is', async (t) => {
    const names = await setup(t, 1)
    const messages = withTopic(items(300), names.input)
    messages[42] = { ...messages[42]!, value: JSON.stringify({ id: 'm42', n: 42, bad: true }) }
    await produce(messages)
    const sink = new RecordingSink<Item>()
    sink.failWith = (_batch, call) => (call <= 3 ? new RetriableError('database is restarting') : undefined)
    sink.failItems = (e) => (e.value.bad ? new PoisonError('value out of range for column n') : undefined)
    const runtime = new Runtime(
      topologyFor(names, sink, {
        backoff: { initialDelayMs: 20, maxDelayMs: 50, multiplier: 2, maxAttempts: Infinity }
      }),
      { untilIdleMs: 1500 }
    )
    const summary = await runtime.run()
    assert.ok(summary.sinkRetries >= 3)
    assert.equal(sink.written.size, 299)
    assert.equal(summary.deadLettered, 1)
    const [letter] = await readTopic(names.dlq, 1)
    assert.equal(letter?.headers.get(DeadLetterHeaders.STAGE), 'records')
    assert.equal(letter?.headers.get(DeadLetterHeaders.ERROR_MESSAGE), 'value out of range for column n')
    assert.equal(JSON.parse(letter?.value ?? '{}').id, 'm42')
  })

  test('graceful stop commits only what the sink acknowledged', async (t) => {
    const names = await setup(t, 2)
    await produce(withTopic(items(5000), names.input))
    const sink = new RecordingSink<Item>()
    // A slow sink so the stop lands mid-stream.
    sink.failWith = () => undefined
    const slow = sink.write.bind(sink)
    sink.write = async (batch) => {
      await new Promise((r) => setTimeout(r, 5))
      return slow(batch)
    }
    const runtime = new Runtime(topologyFor(names, sink, { maxInFlight: 500 }))
    const run = runtime.run()
    await waitFor(() => sink.written.size > 500, 20_000, 'some progress')
    runtime.stop()
    const summary = await run
    assert.equal(summary.reason, 'signal')
    const committed = await committedOffsets(names.group, names.input)
    assert.ok(committed.size > 0)
    for (const [partition, next] of committed) {
      for (let o = 0n; o < next; o++) {
        assert.ok(
          sink.written.has(`${names.input}:${partition}@${o}`),
          `offset ${partition}@${o} was committed but not written`
        )
      }
    }
    // A second run picks up exactly where the first stopped: together they cover everything.
    const second = new Runtime(topologyFor(names, sink), { untilIdleMs: 1500 })
    await second.run()
    assert.equal(sink.written.size, 5000)
  })

  test('two runners in one group share partitions; a rebalance loses nothing', async (t) => {
    const names = await setup(t, 4)
    await produce(withTopic(items(4000), names.input))
    const sinkA = new RecordingSink<Item>()
    const sinkB = new RecordingSink<Item>()
    const slowDown = (sink: RecordingSink<Item>) => {
      const write = sink.write.bind(sink)
      sink.write = async (batch) => {
        await new Promise((r) => setTimeout(r, 100))
        return write(batch)
      }
    }
    slowDown(sinkA)
    slowDown(sinkB)
    const a = new Runtime(topologyFor(names, sinkA, { maxInFlight: 200 }, 20), { untilIdleMs: 3000 })
    const runA = a.run()
    await waitFor(() => sinkA.written.size > 200, 20_000, 'runner A to make progress')
    const b = new Runtime(topologyFor(names, sinkB, { maxInFlight: 200 }, 20), { untilIdleMs: 3000 })
    const runB = b.run()
    const [sa, sb] = await Promise.all([runA, runB])
    assert.ok(sb.consumed > 0, 'runner B got partitions after the rebalance')
    assert.ok(sa.assigned.length < 4 || sb.assigned.length > 0)
    const all = new Set<number>()
    for (const v of sinkA.written.values()) all.add(v.n)
    for (const v of sinkB.written.values()) all.add(v.n)
    assert.equal(all.size, 4000, 'every message was written by one of the runners')
    const duplicates = sinkA.written.size + sinkB.written.size - 4000
    t.diagnostic(`duplicates after rebalance: ${duplicates}`)
  })
})
