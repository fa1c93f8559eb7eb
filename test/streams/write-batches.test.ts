import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { from, lastValueFrom, toArray } from 'rxjs'
import { FatalError, PoisonError, RetriableError } from '../../src/errors.ts'
import type { ItemFailure, Sink, SinkContext, WriteResult } from '../../src/sinks/types.ts'
import type { Envelope } from '../../src/streams/envelope.ts'
import { type BatchReport, type WriteObserver, writeBatches } from '../../src/streams/write-batches.ts'
import { envelopeOf, RecordingHost } from '../helpers/envelopes.ts'

const fast = { initialDelayMs: 1, maxDelayMs: 2, multiplier: 2, maxAttempts: 1 }

/** A sink whose every `write` is answered by `answer` (called with the values and the call number, from 1). */
function scriptedSink(
  answer: (values: string[], call: number) => Promise<WriteResult | undefined> | WriteResult | undefined
): Sink<Buffer> & { calls: string[][] } {
  const calls: string[][] = []
  return {
    kind: 'scripted',
    calls,
    async write(batch) {
      const values = batch.map((e) => e.value.toString())
      calls.push(values)
      return answer(values, calls.length)
    }
  }
}

function recordingObserver(): WriteObserver & { retries: number[]; fatals: unknown[]; writes: number[] } {
  const retries: number[] = []
  const fatals: unknown[] = []
  const writes: number[] = []
  return {
    retries,
    fatals,
    writes,
    written: (_branch, count) => writes.push(count),
    retrying: (_branch, _error, attempt) => retries.push(attempt),
    fatal: (_branch, error) => fatals.push(error)
  }
}

function contextOf(signal = new AbortController().signal): SinkContext {
  return { topology: 'wb', branch: 'b', signal }
}

async function writeAll(
  sink: Sink<Buffer>,
  batches: Envelope<Buffer>[][],
  observer: WriteObserver,
  context = contextOf(),
  maxInFlightBatches = 4
): Promise<BatchReport[]> {
  return lastValueFrom(
    from(batches).pipe(writeBatches(sink, context, { maxInFlightBatches, backoff: fast }, observer), toArray())
  )
}

const failures = (entries: Array<[number, unknown]>): ItemFailure[] =>
  entries.map(([index, error]) => ({ index, error }))

describe('writeBatches', () => {
  test('a batch the sink writes whole is acked, item by item, and reported written', async () => {
    const host = new RecordingHost()
    const batch = ['a', 'b', 'c'].map((v) => envelopeOf(host, v))
    const sink = scriptedSink(() => undefined)
    const observer = recordingObserver()
    const [report] = await writeAll(sink, [batch], observer)
    assert.deepEqual(report, { branch: 'b', written: 3, deadLettered: 0, abandoned: 0 })
    assert.equal(host.done_.length, 3)
    assert.deepEqual(observer.writes, [3])
    assert.deepEqual(sink.calls, [['a', 'b', 'c']])
  })

  test('named items: poison is dead-lettered, retriable ones alone are written again until they succeed', async () => {
    const host = new RecordingHost()
    const batch = ['a', 'bad', 'later', 'd'].map((v) => envelopeOf(host, v))
    const sink = scriptedSink((_values, call) => {
      if (call === 1)
        return {
          failures: failures([
            [1, new PoisonError('bad row')],
            [2, new RetriableError('busy')]
          ])
        }
      if (call === 2) return { failures: failures([[0, new RetriableError('still busy')]]) }
      return undefined
    })
    const observer = recordingObserver()
    const [report] = await writeAll(sink, [batch], observer)
    assert.deepEqual(sink.calls, [['a', 'bad', 'later', 'd'], ['later'], ['later']])
    assert.deepEqual(report, { branch: 'b', written: 3, deadLettered: 1, abandoned: 0 })
    assert.deepEqual(observer.retries, [1, 2])
    assert.equal(host.dead.length, 1)
    assert.equal(host.dead[0]!.stage, 'b')
    assert.equal(host.done_.length, 4, 'three written and one dead-lettered are all done')
    assert.deepEqual(
      batch.map((e) => e.delivery.attempts),
      [1, 1, 3, 1],
      'each write counts an attempt for the items it carried'
    )
  })

  test('a write that throws a retriable error is retried whole; maxAttempts does not stop it', async () => {
    const host = new RecordingHost()
    const batch = ['a', 'b'].map((v) => envelopeOf(host, v))
    const sink = scriptedSink((_values, call) => {
      if (call < 4) throw new RetriableError('connection reset')
      return undefined
    })
    const observer = recordingObserver()
    const [report] = await writeAll(sink, [batch], observer)
    assert.equal(sink.calls.length, 4)
    assert.deepEqual(observer.retries, [1, 2, 3])
    assert.deepEqual(report, { branch: 'b', written: 2, deadLettered: 0, abandoned: 0 })
    assert.equal(host.done_.length, 2)
  })

  test('a write that throws poison dead-letters every item of what it carried', async () => {
    const host = new RecordingHost()
    const batch = ['a', 'b'].map((v) => envelopeOf(host, v))
    const sink = scriptedSink(() => {
      throw new PoisonError('the table refuses this batch')
    })
    const observer = recordingObserver()
    const [report] = await writeAll(sink, [batch], observer)
    assert.deepEqual(report, { branch: 'b', written: 0, deadLettered: 2, abandoned: 0 })
    assert.equal(host.dead.length, 2)
    assert.deepEqual(observer.retries, [])
  })

  test('a fatal error is reported once, not retried, and leaves the items open (not acked, not dead-lettered)', async () => {
    const host = new RecordingHost()
    const batch = ['a', 'b', 'c'].map((v) => envelopeOf(host, v))
    const sink = scriptedSink(() => {
      throw new FatalError('permission denied')
    })
    const observer = recordingObserver()
    const [report] = await writeAll(sink, [batch], observer)
    assert.deepEqual(report, { branch: 'b', written: 0, deadLettered: 0, abandoned: 3 })
    assert.equal(sink.calls.length, 1)
    assert.equal(observer.fatals.length, 1)
    assert.match((observer.fatals[0] as Error).message, /permission denied/)
    assert.equal(host.done_.length, 0)
    assert.equal(host.dead.length, 0)
  })

  test('a fatal item failure stops the branch; the items written in that call are acked', async () => {
    const host = new RecordingHost()
    const batch = ['a', 'b', 'c'].map((v) => envelopeOf(host, v))
    const sink = scriptedSink(() => ({ failures: failures([[1, new FatalError('disk full')]]) }))
    const observer = recordingObserver()
    const [report] = await writeAll(sink, [batch], observer)
    assert.deepEqual(report, { branch: 'b', written: 2, deadLettered: 0, abandoned: 1 })
    assert.equal(observer.fatals.length, 1)
    assert.deepEqual(
      host.done_.map((d) => d.raw.toString()),
      ['a', 'c']
    )
  })

  test('shutdown while retrying abandons the batch: nothing acked or dead-lettered, the write stops', async () => {
    const host = new RecordingHost()
    const batch = ['a', 'b'].map((v) => envelopeOf(host, v))
    const shutdown = new AbortController()
    const sink = scriptedSink((_values, call) => {
      if (call === 3) shutdown.abort()
      throw new RetriableError('database restarting')
    })
    const observer = recordingObserver()
    const [report] = await writeAll(sink, [batch], observer, contextOf(shutdown.signal))
    assert.deepEqual(report, { branch: 'b', written: 0, deadLettered: 0, abandoned: 2 })
    assert.equal(sink.calls.length, 3, 'no write after the abort')
    assert.deepEqual(observer.retries, [1, 2])
    assert.equal(host.done_.length, 0)
    assert.equal(host.dead.length, 0)
  })

  test("a partition's batches are written in order, one at a time; other partitions meanwhile", async () => {
    const host = new RecordingHost()
    const batches = [
      [envelopeOf(host, 'p0-1', { partition: 0 })],
      [envelopeOf(host, 'p0-2', { partition: 0 })],
      [envelopeOf(host, 'p1-1', { partition: 1 })]
    ]
    const started: string[] = []
    const finished: string[] = []
    let releaseFirst: () => void = () => {}
    const firstHeld = new Promise<void>((resolve) => {
      releaseFirst = resolve
    })
    const sink: Sink<Buffer> = {
      kind: 'ordered',
      async write(batch) {
        const value = batch[0]!.value.toString()
        started.push(value)
        if (value === 'p0-1') await firstHeld
        finished.push(value)
        if (value === 'p1-1') releaseFirst()
        return undefined
      }
    }
    const reports = await writeAll(sink, batches, recordingObserver())
    assert.equal(reports.length, 3)
    assert.deepEqual(started, ['p0-1', 'p1-1', 'p0-2'], 'p0-2 waits for p0-1; p1-1 does not')
    assert.deepEqual(finished, ['p1-1', 'p0-1', 'p0-2'])
    assert.equal(host.done_.length, 3)
  })
})
