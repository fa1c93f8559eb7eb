import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { RetriableError } from '../../src/errors.ts'
import type { CommitRequest, Source, SourceListener, SourceMessage } from '../../src/sources/types.ts'
import type { DeadLetter } from '../../src/streams/dead-letter.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { waitFor } from '../helpers/kafka.ts'
import { RecordingSink } from '../helpers/sinks.ts'

/**
 * A source that loses its broker after the first messages (as KafkaSource reports it), holds while the test says,
 * then reconnects and delivers the rest. The runtime must keep running through the hold and show it in its stats.
 */
class FlakySource implements Source {
  readonly kind = 'flaky'
  readonly description = 'flaky'
  readonly committed: CommitRequest[] = []
  #listener: SourceListener | undefined
  #offset = 0n
  #back: (() => void) | undefined
  readonly back = new Promise<void>((resolve) => {
    this.#back = resolve
  })

  async open(listener: SourceListener): Promise<void> {
    this.#listener = listener
    listener.assigned([{ topic: 't', partition: 0 }])
  }

  reconnect(): void {
    this.#back?.()
  }

  async next(signal: AbortSignal): Promise<SourceMessage | undefined> {
    if (this.#offset === 3n) {
      const lost = new RetriableError('fetch failed 4 times.')
      this.#listener?.reconnecting?.(lost, 1, 10)
      this.#listener?.reconnecting?.(new RetriableError('Cannot connect to any broker.'), 2, 20)
      await this.back
      this.#listener?.reconnected?.(1234, 3)
    }
    if (signal.aborted || this.#offset >= 5n) return undefined
    const offset = this.#offset++
    const origin = { topic: 't', partition: 0, offset, leaderEpoch: 0, timestamp: 0n }
    return { key: undefined, value: Buffer.from(`{"n":${offset}}`), headers: new Map(), origin }
  }

  async commit(offsets: readonly CommitRequest[]): Promise<void> {
    this.committed.push(...offsets)
  }

  async close(): Promise<void> {}
}

describe('runtime: a source that holds through a broker outage', () => {
  test('keeps running, shows the hold in its stats, counts the reconnection, then delivers the rest', async () => {
    const source = new FlakySource()
    const sink = new RecordingSink<unknown>()
    const letters: DeadLetter[] = []
    const topology = defineTopology<unknown>({
      name: 'hold',
      source,
      branches: { out: branch(sink, { batch: { maxCount: 1, maxWaitMs: 1 } }) },
      deadLetter: { description: 'memory', write: async (l) => void letters.push(...l) },
      settings: { commitIntervalMs: 10 }
    })
    const runtime = new Runtime(topology, { logger: silent })
    const run = runtime.run()
    await waitFor(() => runtime.stats().sourceHeld !== undefined, 5_000, 'the hold')
    await waitFor(() => sink.written.size === 3, 5_000, 'the messages before the outage')
    const held = runtime.stats().sourceHeld
    assert.equal(held?.attempts, 2)
    assert.equal(held?.reason, 'Cannot connect to any broker.')
    assert.ok((held?.heldMs ?? -1) >= 0)
    source.reconnect()
    const summary = await run
    assert.equal(summary.reason, 'source-ended', 'the hold did not stop the runtime')
    assert.equal(summary.sourceHeld, undefined)
    assert.equal(summary.sourceReconnects, 1)
    assert.equal(sink.written.size, 5)
    assert.equal(letters.length, 0)
    assert.equal(summary.committedOffsets.get('t:0'), 5n)
  })
})

const silent = { debug() {}, info() {}, warn() {}, error() {} }
