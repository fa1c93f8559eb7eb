import assert from 'node:assert/strict'
import { describe, type TestContext, test } from 'node:test'
import fc from 'fast-check'
import { Subject } from 'rxjs'
import type { Envelope } from '../../../src/streams/envelope.ts'
import { type BatchFlushMode, BatchFlushModes, batch } from '../../../src/streams/operators/batch.ts'
import { branch } from '../../../src/streams/topology.ts'
import type { BatchReport } from '../../../src/streams/write-batches.ts'
import { WriteGate } from '../../../src/streams/write-gate.ts'
import { envelopeOf, RecordingHost } from '../../helpers/envelopes.ts'

type Operation =
  | { op: 'push'; partition: number; size: number }
  | { op: 'finish'; partition: number }
  | { op: 'tick'; ms: number }

const PARTITIONS = 4

const operation: fc.Arbitrary<Operation> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('push' as const),
      partition: fc.nat(PARTITIONS - 1),
      size: fc.integer({ min: 1, max: 120 })
    })
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('finish' as const), partition: fc.nat(PARTITIONS - 1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 30 }) }) }
)

interface Settings {
  flush: BatchFlushMode
  maxCount: number
  maxBytes: number
  maxWaitMs: number
  lingerMs: number
  maxInFlight: number
}

const settings: fc.Arbitrary<Settings> = fc
  .record({
    flush: fc.constantFrom(BatchFlushModes.WHEN_IDLE, BatchFlushModes.LIMITS),
    maxCount: fc.integer({ min: 1, max: 8 }),
    maxBytes: fc.integer({ min: 40, max: 500 }),
    maxWaitMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 60 }), fc.constant(Number.POSITIVE_INFINITY)),
    linger: fc.integer({ min: 0, max: 5 }),
    maxInFlight: fc.integer({ min: 1, max: 3 })
  })
  .map(({ linger, ...s }) => ({ ...s, lingerMs: Math.min(linger, s.maxWaitMs) }))

const keyOf = (partition: number) => `t:${partition}`
const sizeOf = (items: readonly Envelope<Buffer>[]) => items.reduce((sum, e) => sum + e.size, 0)

/**
 * Drives the operator on mocked timers through `operations` against a model writer: it receives each batch (the real
 * WriteGate counts it), and `finish` ends the oldest batch of a partition. Checks every batch as it comes out, the
 * group-commit invariant after each tick, and that the output is the input, in order and whole, after completion.
 */
function check(t: TestContext, s: Settings, operations: readonly Operation[]): void {
  t.mock.timers.reset()
  t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate', 'Date'], now: 0 })
  const host = new RecordingHost()
  const gate = new WriteGate(s.maxInFlight)
  const idle = s.flush === BatchFlushModes.WHEN_IDLE
  const input = new Subject<Envelope<Buffer>>()
  const pushed = Array.from({ length: PARTITIONS }, () => [] as Envelope<Buffer>[])
  const emitted = Array.from({ length: PARTITIONS }, () => [] as Envelope<Buffer>[])
  const pushedAt = new Map<Envelope<Buffer>, number>()
  const writing = new Map<string, number>()
  let completing = false
  let completed = false
  // RxJS reports an error thrown by a subscriber's `next` asynchronously (on a timer): keep the first, throw it here.
  let failure: unknown
  const rethrow = () => {
    if (failure !== undefined) throw failure
  }
  const received = (items: Envelope<Buffer>[]) => {
    assert.ok(items.length > 0, 'never an empty batch')
    const { partition } = items[0]!.origin
    assert.ok(
      items.every((e) => e.origin.partition === partition),
      'one partition per batch'
    )
    assert.ok(items.length <= s.maxCount, `${items.length} items > maxCount ${s.maxCount}`)
    assert.ok(sizeOf(items) - items.at(-1)!.size < s.maxBytes, 'over maxBytes before its last item')
    const age = Date.now() - pushedAt.get(items[0]!)!
    assert.ok(age <= s.maxWaitMs, `batch emitted ${age} ms after its first message (maxWaitMs ${s.maxWaitMs})`)
    const key = keyOf(partition)
    const full = items.length >= s.maxCount || sizeOf(items) >= s.maxBytes
    if (!completing && (!idle || !gate.ready(key))) {
      // Into a busy writer (or in limits mode at all), only a full or an expired batch goes out.
      assert.ok(full || age >= s.maxWaitMs, `early batch of ${items.length} (${sizeOf(items)} B) at age ${age}`)
    }
    if (!completing && !full) assert.ok(age >= s.lingerMs, `flushed at age ${age}, before lingerMs ${s.lingerMs}`)
    emitted[partition]!.push(...items)
    gate.begin(key)
    writing.set(key, (writing.get(key) ?? 0) + 1)
  }
  const subscription = input.pipe(batch<Buffer>(s, idle ? gate : undefined)).subscribe({
    next(items) {
      try {
        received(items)
      } catch (error) {
        failure ??= error
      }
    },
    complete() {
      completed = true
    }
  })
  try {
    for (const o of operations) {
      if (o.op === 'push') {
        const envelope = envelopeOf(host, 'x'.repeat(o.size), { partition: o.partition })
        pushed[o.partition]!.push(envelope)
        pushedAt.set(envelope, Date.now())
        input.next(envelope)
      } else if (o.op === 'finish') {
        const key = keyOf(o.partition)
        const n = writing.get(key) ?? 0
        if (n === 0) continue
        writing.set(key, n - 1)
        gate.end(key)
      } else {
        // Immediates first, at the current time, as the event loop runs them before a timer can be due; then 1 ms at
        // a time: the mock sets the clock to the end of a tick before it runs the timers that fall due within it.
        t.mock.timers.tick(0)
        for (let ms = 0; ms < o.ms; ms++) t.mock.timers.tick(1)
        if (idle && o.ms >= s.lingerMs) {
          // Work-conserving: once lingers are over, nothing waits in the operator for a partition the writer could
          // start at once.
          for (let p = 0; p < PARTITIONS; p++) {
            if (pushed[p]!.length > emitted[p]!.length) {
              assert.ok(!gate.ready(keyOf(p)), `partition ${p} waits while the writer is free for it`)
            }
          }
        }
      }
      rethrow()
    }
    completing = true
    input.complete()
    rethrow()
    assert.ok(completed)
    for (let p = 0; p < PARTITIONS; p++) {
      assert.deepEqual(
        emitted[p]!.map((e) => e.origin.offset),
        pushed[p]!.map((e) => e.origin.offset),
        `partition ${p}: everything, once, in order`
      )
    }
  } finally {
    subscription.unsubscribe()
    t.mock.timers.reset()
  }
}

describe('batch, flush when-idle (group commit)', () => {
  test('keeps limits, order, partitions and completeness; flushes early only into a free writer', (t) => {
    fc.assert(
      fc.property(settings, fc.array(operation, { maxLength: 120 }), (s, operations) => check(t, s, operations)),
      { numRuns: 1_500 }
    )
  })

  test('a message alone goes out in the same turn of the event loop when the writer is free', async () => {
    const host = new RecordingHost()
    const gate = new WriteGate(2)
    const input = new Subject<Envelope<Buffer>>()
    const out: number[][] = []
    const sub = input
      .pipe(batch<Buffer>({ maxCount: 100, maxWaitMs: 10_000, flush: 'when-idle' }, gate))
      .subscribe((items) => {
        out.push(items.map((e) => Number(e.origin.offset)))
        gate.begin(items[0]!.partitionKey)
      })
    try {
      // A fetch's messages arrive in one synchronous run: they make one batch, not one each.
      for (let i = 0; i < 3; i++) input.next(envelopeOf(host, 'a', { offset: BigInt(i) }))
      assert.deepEqual(out, [])
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(out, [[0, 1, 2]])
      // The partition is now busy: its next messages wait for the write, not for maxWaitMs.
      input.next(envelopeOf(host, 'a', { offset: 3n }))
      input.next(envelopeOf(host, 'a', { offset: 4n }))
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.deepEqual(out, [[0, 1, 2]])
      gate.end('t:0')
      assert.deepEqual(out, [
        [0, 1, 2],
        [3, 4]
      ])
    } finally {
      sub.unsubscribe()
    }
  })

  test('needs the writer gate, and checks lingerMs against maxWaitMs', () => {
    assert.throws(() => batch({ flush: 'when-idle' }), /gate/)
    assert.throws(() => batch({ flush: 'sometimes' as BatchFlushMode }), /flush must be one of/)
    assert.throws(() => batch({ flush: 'when-idle', lingerMs: 20, maxWaitMs: 10 }, new WriteGate(1)), /lingerMs/)
    assert.throws(() => new WriteGate(0), /maxInFlightBatches/)
  })
})

describe('branch with when-idle batches', () => {
  test('writes alone under low load, groups while a write is slow, acks everything, flushes on completion', async () => {
    const host = new RecordingHost()
    const written: number[][] = []
    let release: (() => void) | undefined
    const sink = {
      kind: 'test',
      async write(items: readonly Envelope<Buffer>[]) {
        written.push(items.map((e) => Number(e.origin.offset)))
        // The second write is held until the test releases it, as a slow transaction would be.
        if (written.length === 2) await new Promise<void>((resolve) => (release = resolve))
        return undefined
      }
    }
    const b = branch<Buffer>(sink, {
      batch: { maxCount: 1000, maxWaitMs: 60_000, flush: 'when-idle' },
      maxInFlightBatches: 2
    })
    const input = new Subject<Envelope<Buffer>>()
    const controller = new AbortController()
    const reports: BatchReport[] = []
    const done = new Promise<void>((resolve, reject) =>
      b
        .connect(input, {
          topology: 'test',
          branch: 'kv',
          signal: controller.signal,
          backoff: { initialDelayMs: 1, maxDelayMs: 1, multiplier: 1, maxAttempts: 1 },
          observer: { fatal: (_branch, error) => reject(error) }
        })
        .subscribe({ next: (r) => reports.push(r), error: reject, complete: resolve })
    )
    const tick = () => new Promise((resolve) => setImmediate(resolve))
    input.next(envelopeOf(host, 'a', { offset: 0n }))
    await tick()
    await tick()
    assert.deepEqual(written, [[0]], 'written in the same turn, not after maxWaitMs')
    input.next(envelopeOf(host, 'a', { offset: 1n }))
    await tick()
    assert.deepEqual(written, [[0], [1]])
    for (let i = 2n; i < 6n; i++) {
      input.next(envelopeOf(host, 'a', { offset: i }))
      await tick()
    }
    // Another partition is not held up by partition 0's slow write.
    input.next(envelopeOf(host, 'b', { partition: 1, offset: 0n }))
    await tick()
    assert.deepEqual(written, [[0], [1], [0]])
    release?.()
    await tick()
    await tick()
    assert.deepEqual(written, [[0], [1], [0], [2, 3, 4, 5]], 'what arrived during the write is one batch')
    input.next(envelopeOf(host, 'a', { offset: 6n }))
    input.complete()
    await done
    assert.deepEqual(written.at(-1), [6])
    assert.equal(host.done_.length, 8, 'every message acked')
    assert.equal(
      reports.reduce((sum, r) => sum + r.written, 0),
      8
    )
  })
})

describe('batch', () => {
  test('flushes on count, per partition, never empty, and the rest on completion', async () => {
    const host = new RecordingHost()
    const input = new Subject<Envelope<Buffer>>()
    const batches: Envelope<Buffer>[][] = []
    const done = new Promise<void>((resolve) =>
      input
        .pipe(batch({ maxCount: 3, maxWaitMs: 60_000 }))
        .subscribe({ next: (b) => batches.push(b), complete: resolve })
    )
    for (let i = 0; i < 7; i++) input.next(envelopeOf(host, 'x', { partition: i % 2 }))
    // Partition 0 got 4 messages, partition 1 got 3: one full batch each so far.
    assert.deepEqual(
      batches.map((b) => b.length),
      [3, 3]
    )
    assert.ok(batches[0]!.every((e) => e.origin.partition === 0))
    assert.ok(batches[1]!.every((e) => e.origin.partition === 1))
    input.complete()
    await done
    assert.deepEqual(batches.map((b) => b.length).sort(), [1, 3, 3])
    for (const b of batches) assert.equal(new Set(b.map((e) => e.origin.partition)).size, 1)
  })

  test('flushes on bytes', async () => {
    const host = new RecordingHost()
    const input = new Subject<Envelope<Buffer>>()
    const batches: number[] = []
    input.pipe(batch({ maxCount: 1000, maxBytes: 250, maxWaitMs: 60_000 })).subscribe((b) => batches.push(b.length))
    for (let i = 0; i < 5; i++) input.next(envelopeOf(host, 'y'.repeat(100)))
    assert.deepEqual(batches, [3])
    input.complete()
    assert.deepEqual(batches, [3, 2])
  })

  test('flushes on time, and emits nothing when nothing arrives', async () => {
    const host = new RecordingHost()
    const input = new Subject<Envelope<Buffer>>()
    const batches: number[] = []
    input.pipe(batch({ maxCount: 1000, maxWaitMs: 20 })).subscribe((b) => batches.push(b.length))
    await new Promise((r) => setTimeout(r, 60))
    assert.deepEqual(batches, [])
    input.next(envelopeOf(host, 'z'))
    input.next(envelopeOf(host, 'z'))
    await new Promise((r) => setTimeout(r, 60))
    assert.deepEqual(batches, [2])
  })

  test('refuses bad settings', () => {
    assert.throws(() => batch({ maxCount: 0 }), /maxCount/)
    assert.throws(() => batch({ maxBytes: -1 }), /maxBytes/)
  })
})
