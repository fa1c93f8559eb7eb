/**
 * The graph's per-node figures: the console's API reports, per operator, batching and sink node, the rate and the
 * in-flight count of what the runtime did — an async step holding items, a sink holding a write, a filter dropping,
 * a decoder dead-lettering — counted by the runtime (src/streams/node-counters.ts), not estimated.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { embeddedTopicReader } from '../../src/console/data.ts'
import { ConsoleRecorder, type ConsoleStats } from '../../src/console/recorder.ts'
import { startConsole } from '../../src/console/server.ts'
import type { CommitRequest, Source, SourceListener, SourceMessage } from '../../src/sources/types.ts'
import type { DeadLetter } from '../../src/streams/dead-letter.ts'
import { pipeline } from '../../src/streams/describe.ts'
import type { Envelope } from '../../src/streams/envelope.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { keep } from '../../src/streams/operators/keep.ts'
import { retryStep } from '../../src/streams/operators/retry-step.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { tempDataDir } from '../helpers/embedded-log.ts'
import { waitFor } from '../helpers/kafka.ts'
import { RecordingSink } from '../helpers/sinks.ts'

/** Values 0..9 on one partition; 3 and 7 are not JSON. */
class ArraySource implements Source {
  readonly kind = 'array'
  readonly description = 'ten values'
  #offset = 0n

  async open(listener: SourceListener): Promise<void> {
    listener.assigned([{ topic: 't', partition: 0 }])
  }

  async next(signal: AbortSignal): Promise<SourceMessage | undefined> {
    if (signal.aborted || this.#offset >= 10n) return undefined
    const offset = this.#offset++
    const n = Number(offset)
    const value = Buffer.from(n === 3 || n === 7 ? `not json ${n}` : `{"n":${n}}`)
    return {
      key: undefined,
      value,
      headers: new Map(),
      origin: { topic: 't', partition: 0, offset, leaderEpoch: 0, timestamp: 0n }
    }
  }

  async commit(_offsets: readonly CommitRequest[]): Promise<void> {}
  async close(): Promise<void> {}
}

const silent = { debug() {}, info() {}, warn() {}, error() {} }

describe('console: per-node rates and in-flight counts', () => {
  test('the API reports what each node passed on and holds, as the runtime counted it', async (t) => {
    let open!: () => void
    const gate = new Promise<void>((resolve) => {
      open = resolve
    })
    const slow = new RecordingSink<unknown>()
    slow.hold()
    const fast = new RecordingSink<unknown>()
    const letters: DeadLetter[] = []
    const topology = defineTopology<unknown>({
      name: 'nodes',
      source: new ArraySource(),
      // decode (3 and 7 dead-lettered) → keep the even ones (1, 5, 9 dropped) → an async step that holds 4 (and,
      // one partition being served in order, 6 and 8 behind it) until the gate opens.
      pipeline: pipeline(
        decodeJson(),
        keep((e: Envelope<unknown>) => (e.value as { n: number }).n % 2 === 0, { stage: 'odd' }),
        retryStep(
          async (e: Envelope<unknown>) => {
            if ((e.value as { n: number }).n === 4) await gate
            return e.value
          },
          { stage: 'enrich' }
        )
      ),
      branches: {
        slow: branch(slow, { batch: { maxCount: 2, maxWaitMs: 1_000 } }),
        fast: branch(fast, { batch: { maxCount: 2, maxWaitMs: 1_000 } })
      },
      deadLetter: { description: 'memory', write: async (l) => void letters.push(...l) },
      settings: { commitIntervalMs: 10 }
    })
    let runtime!: Runtime
    const recorder = new ConsoleRecorder(topology, () => runtime.stats(), {
      intervalMs: 3_600_000,
      nodes: () => runtime.nodeCounts()
    })
    runtime = new Runtime(topology, { logger: silent, observer: recorder })
    const dir = tempDataDir(t, 'sfm-console-nodes-')
    const reader = embeddedTopicReader(dir)
    const server = await startConsole({
      recorder,
      reader,
      dlqTopic: 'memory.dlq',
      memory: { auditTopic: 'memory.audit', reader },
      port: 0
    })
    t.after(async () => {
      open()
      slow.release()
      recorder.stop()
      await server.close()
      await reader.close()
    })
    // The rates' reference point: nothing counted yet.
    const start = recorder.sample()
    const run = runtime.run()
    const stats = async () => (await (await fetch(new URL('/api/stats', server.url))).json()) as ConsoleStats
    const perSecond = (count: number, at: number) => count / Math.max((at - start.t) / 1000, 0.001)
    const close = (actual: number | undefined, expected: number, what: string) =>
      assert.ok(Math.abs((actual ?? Number.NaN) - expected) < 1e-6, `${what}: ${actual} ≠ ${expected}`)

    // Held: the step holds 4, 6 and 8; the slow sink holds the batch [0, 2] in its write; the fast one wrote it.
    await waitFor(
      () => fast.written.size === 2 && slow.writes === 1 && letters.length === 2 && runtime.stats().dropped === 3,
      5_000,
      'the first items through'
    )
    const held = await stats()
    const n = held.nodes
    assert.deepEqual(n['op:0'], { ...n['op:0'], inFlight: 0, deadLettered: 2, dropped: 0 })
    close(n['op:0']?.rate, perSecond(8, held.at), 'decodeJson rate')
    assert.deepEqual(n['op:1'], { ...n['op:1'], inFlight: 0, deadLettered: 0, dropped: 3 })
    close(n['op:1']?.rate, perSecond(5, held.at), 'keep rate')
    assert.equal(n['op:2']?.inFlight, 3, 'the async step holds 4, 6 and 8')
    close(n['op:2']?.rate, perSecond(2, held.at), 'step rate')
    assert.equal(n['branch:slow:batch']?.inFlight, 0)
    close(n['branch:slow:batch']?.rate, perSecond(2, held.at), 'slow batching rate')
    assert.equal(n['sink:slow']?.inFlight, 2)
    assert.equal(n['sink:slow']?.writing, 2)
    assert.equal(n['sink:slow']?.rate, 0)
    assert.equal(n['sink:fast']?.inFlight, 0)
    assert.equal(n['sink:fast']?.writing, 0)
    close(n['sink:fast']?.rate, perSecond(2, held.at), 'fast sink rate')
    assert.equal(held.nodes.source?.inFlight, 5, 'the source window: 3 in the step, 2 in the slow sink')

    // Released: everything settles; the runtime's own totals and the figures agree.
    open()
    slow.release()
    const summary = await run
    assert.equal(summary.done, 10)
    const after = await stats()
    for (const id of ['op:0', 'op:1', 'op:2', 'branch:slow:batch', 'sink:slow', 'branch:fast:batch', 'sink:fast']) {
      assert.equal(after.nodes[id]?.inFlight, 0, id)
    }
    assert.equal(after.nodes['sink:slow']?.writing, 0)
    close(after.nodes['op:2']?.rate, perSecond(5, after.at), 'step rate')
    close(after.nodes['sink:slow']?.rate, perSecond(5, after.at), 'slow sink rate')
    assert.equal(slow.written.size, 5)
    assert.deepEqual(runtime.nodeCounts(), {
      passed: { 'op:0': 8, 'op:1': 5, 'op:2': 5 },
      branches: {
        slow: { batched: 5, received: 5, settled: 5, writing: 0 },
        fast: { batched: 5, received: 5, settled: 5, writing: 0 }
      }
    })
  })
})
