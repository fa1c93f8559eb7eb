/**
 * The runtime's semantics on the embedded log source (a real durable log in a temp folder, no services): commit
 * after write, the in-flight window, the DLQ, retries and graceful stop. test/streams/runtime.test.ts runs the same
 * cases on a real Kafka broker; rebalances need a consumer group across processes and are only tested there.
 */
import assert from 'node:assert/strict'
import { describe, type TestContext, test } from 'node:test'
import { pipe } from 'rxjs'
import { PoisonError, RetriableError } from '../../src/errors.ts'
import type { EmbeddedLog } from '../../src/log/embedded-log.ts'
import { committedOffsets } from '../../src/log/groups.ts'
import { kafkaDeadLetter } from '../../src/sinks/kafka/index.ts'
import { logSource } from '../../src/sources/log.ts'
import { type DeadLetter, DeadLetterHeaders, type DeadLetterTarget } from '../../src/streams/dead-letter.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { validate } from '../../src/streams/operators/validate.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology, type RuntimeSettings } from '../../src/streams/topology.ts'
import { openLog, readAll, tempDataDir } from '../helpers/embedded-log.ts'
import { waitFor } from '../helpers/kafka.ts'
import { RecordingSink } from '../helpers/sinks.ts'

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

const GROUP = 'runtime-test'

interface Setup {
  dir: string
  log: EmbeddedLog
}

function setup(t: TestContext, partitions = 2): Setup {
  const dir = tempDataDir(t, 'sfm-runtime-')
  const log = openLog(t, dir)
  for (const name of ['in', 'dlq']) log.createTopic({ name, partitions })
  return { dir, log }
}

function append(log: EmbeddedLog, values: string[], keyOf = (i: number) => `k${i % 17}`): void {
  log.append(
    values.map((value, i) => ({
      topic: 'in',
      key: Buffer.from(keyOf(i)),
      value: Buffer.from(value),
      headers: new Map()
    }))
  )
}

const items = (count: number, from = 0): string[] =>
  Array.from({ length: count }, (_, i) => JSON.stringify({ id: `m${i + from}`, n: i + from }))

function topologyFor(
  { dir }: Setup,
  sink: RecordingSink<Item>,
  settings: Partial<RuntimeSettings> = {},
  deadLetter: DeadLetterTarget = kafkaDeadLetter({ topic: 'dlq', target: 'embedded', dataDir: dir })
) {
  return defineTopology<Item>({
    name: 'test',
    source: logSource({ topics: ['in'], groupId: GROUP, target: 'embedded', dataDir: dir, pollIntervalMs: 10 }),
    pipeline: pipe(decodeJson(), validate<Item>(itemSchema)),
    branches: { records: branch(sink, { batch: { maxCount: 100, maxWaitMs: 20 } }) },
    deadLetter,
    settings: { commitIntervalMs: 50, drainTimeoutMs: 5_000, ...settings }
  })
}

/** The sum over partitions of the committed offsets (offsets start at 0: the number of messages committed). */
function committedTotal(log: EmbeddedLog): bigint {
  return [...(committedOffsets(log, GROUP, ['in']).get('in')?.values() ?? [])].reduce((a, b) => a + b, 0n)
}

describe('runtime on the embedded log', () => {
  test('poison goes to the DLQ with its reasons, the rest is written, and every offset is committed', async (t) => {
    const s = setup(t, 2)
    const good = items(200)
    const poison = ['not json at all', JSON.stringify({ id: 'x' }), `${'['.repeat(500)}${']'.repeat(500)}`]
    append(s.log, [...good.slice(0, 100), ...poison, ...good.slice(100)], (i) =>
      i >= 100 && i < 103 ? `poison${i - 100}` : `k${i % 17}`
    )
    const sink = new RecordingSink<Item>()
    const summary = await new Runtime(topologyFor(s, sink), { untilIdleMs: 500 }).run()

    assert.equal(summary.reason, 'idle')
    assert.equal(sink.written.size, 200)
    assert.deepEqual(
      [...sink.written.values()].map((v) => v.n).sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i)
    )
    assert.equal(summary.deadLettered, 3)
    const letters = readAll(s.log, 'dlq')
    assert.equal(letters.length, 3)
    const byKey = new Map(letters.map((l) => [l.key?.toString(), l]))
    const header = (key: string, name: string) => byKey.get(key)?.headers.get(name)?.toString()
    assert.equal(byKey.get('poison0')?.value?.toString(), 'not json at all')
    assert.equal(header('poison0', DeadLetterHeaders.STAGE), 'decode')
    assert.equal(header('poison1', DeadLetterHeaders.STAGE), 'validate')
    assert.match(header('poison1', DeadLetterHeaders.ERROR_MESSAGE) ?? '', /required property 'n'/)
    assert.match(header('poison2', DeadLetterHeaders.ERROR_MESSAGE) ?? '', /deeper/)
    for (const key of ['poison0', 'poison1', 'poison2']) {
      assert.equal(header(key, DeadLetterHeaders.SOURCE_TOPIC), 'in')
      assert.equal(header(key, DeadLetterHeaders.TOPOLOGY), 'test')
      assert.equal(header(key, DeadLetterHeaders.ERROR_CLASS), 'PoisonError')
    }
    assert.equal(committedTotal(s.log), 203n, 'the committed offsets cover all 203 messages, poison included')
  })

  test('a stalled sink holds the in-flight window and nothing is committed; nothing is lost when it recovers', async (t) => {
    const s = setup(t, 2)
    append(s.log, items(3000))
    const sink = new RecordingSink<Item>()
    sink.hold()
    const runtime = new Runtime(topologyFor(s, sink, { maxInFlight: 100, maxInFlightBytes: 1024 * 1024 }), {
      untilIdleMs: 500
    })
    const run = runtime.run()
    await waitFor(() => runtime.stats().inFlight >= 100, 20_000, 'the window to fill')
    let maxInFlight = 0
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 20))
      maxInFlight = Math.max(maxInFlight, runtime.stats().inFlight)
    }
    const stats = runtime.stats()
    assert.ok(maxInFlight <= 100, `in-flight stayed within the window (max ${maxInFlight})`)
    assert.ok(stats.consumed <= 100, `the source stopped pulling (consumed ${stats.consumed})`)
    assert.equal(sink.written.size, 0)
    assert.equal(committedTotal(s.log), 0n, 'nothing is committed before the sink wrote it')
    sink.release()
    const summary = await run
    assert.equal(sink.written.size, 3000)
    assert.equal(summary.deadLettered, 0)
    assert.equal(committedTotal(s.log), 3000n)
  })

  test('retriable sink errors are retried with backoff, never dead-lettered; item poison is', async (t) => {
    const s = setup(t, 1)
    const messages = items(300)
    messages[42] = JSON.stringify({ id: 'm42', n: 42, bad: true })
    append(s.log, messages)
    const sink = new RecordingSink<Item>()
    sink.failWith = (_batch, call) => (call <= 3 ? new RetriableError('database is restarting') : undefined)
    sink.failItems = (e) => (e.value.bad ? new PoisonError('value out of range for column n') : undefined)
    const backoff = { initialDelayMs: 20, maxDelayMs: 50, multiplier: 2, maxAttempts: 1 }
    const summary = await new Runtime(topologyFor(s, sink, { backoff }), { untilIdleMs: 500 }).run()
    assert.ok(summary.sinkRetries >= 3, 'retried past maxAttempts: sink writes retry until they succeed')
    assert.equal(sink.written.size, 299)
    assert.equal(summary.deadLettered, 1)
    const [letter] = readAll(s.log, 'dlq')
    assert.equal(letter?.headers.get(DeadLetterHeaders.STAGE)?.toString(), 'records')
    assert.equal(letter?.headers.get(DeadLetterHeaders.ERROR_MESSAGE)?.toString(), 'value out of range for column n')
    assert.equal(JSON.parse(letter?.value?.toString() ?? '{}').id, 'm42')
    assert.equal(committedTotal(s.log), 300n)
  })

  test('graceful stop commits only what the sink acknowledged; a second run covers the rest', async (t) => {
    const s = setup(t, 2)
    append(s.log, items(5000))
    const sink = new RecordingSink<Item>()
    const write = sink.write.bind(sink)
    sink.write = async (batch) => {
      await new Promise((r) => setTimeout(r, 5))
      return write(batch)
    }
    const runtime = new Runtime(topologyFor(s, sink, { maxInFlight: 500 }))
    const run = runtime.run()
    await waitFor(() => sink.written.size > 500, 20_000, 'some progress')
    runtime.stop()
    const summary = await run
    assert.equal(summary.reason, 'signal')
    const committed = committedOffsets(s.log, GROUP, ['in']).get('in')!
    assert.ok(committed.size > 0)
    for (const [partition, next] of committed) {
      for (let o = 0n; o < next; o++) {
        assert.ok(sink.written.has(`in:${partition}@${o}`), `offset ${partition}@${o} was committed but not written`)
      }
    }
    const second = new Runtime(topologyFor(s, sink), { untilIdleMs: 500 })
    await second.run()
    assert.equal(sink.written.size, 5000)
    assert.equal(committedTotal(s.log), 5000n)
  })

  test('a DLQ that is down holds the poison message (uncommitted) until it takes the letter', async (t) => {
    const s = setup(t, 1)
    append(s.log, [...items(10), 'not json', ...items(10, 10)])
    const taken: DeadLetter[] = []
    let refusals = 0
    const dlq: DeadLetterTarget = {
      description: 'flaky DLQ',
      async write(letters) {
        if (refusals < 3) {
          refusals++
          throw new RetriableError('DLQ unavailable')
        }
        taken.push(...letters)
      }
    }
    const sink = new RecordingSink<Item>()
    const backoff = { initialDelayMs: 30, maxDelayMs: 60, multiplier: 2, maxAttempts: 1 }
    const runtime = new Runtime(topologyFor(s, sink, { backoff }, dlq), { untilIdleMs: 500 })
    const run = runtime.run()
    await waitFor(
      () => sink.written.size === 20 && refusals >= 2,
      10_000,
      'the good messages written, the DLQ refusing'
    )
    assert.ok(committedTotal(s.log) <= 10n, 'nothing at or past the poison offset is committed while its letter waits')
    const summary = await run
    assert.equal(refusals, 3)
    assert.equal(taken.length, 1)
    assert.equal(summary.deadLettered, 1)
    assert.equal(committedTotal(s.log), 21n)
  })

  test('a DLQ that refuses a letter for good stops the runner with its error; the poison offset stays uncommitted', async (t) => {
    const s = setup(t, 1)
    append(s.log, [...items(5), 'not json', ...items(5, 5)])
    const dlq: DeadLetterTarget = {
      description: 'refusing DLQ',
      async write() {
        throw new PoisonError('record too large for the DLQ topic')
      }
    }
    const sink = new RecordingSink<Item>()
    await assert.rejects(new Runtime(topologyFor(s, sink, {}, dlq), { untilIdleMs: 2_000 }).run(), /too large/)
    assert.ok(committedTotal(s.log) <= 5n, 'the poison message (offset 5) is not committed')
  })
})
