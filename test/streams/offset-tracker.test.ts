import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { OffsetTracker } from '../../src/streams/offset-tracker.ts'

/** The Map-based tracker the array-based one replaced: the specification it must match, operation by operation. */
class ModelTracker {
  readonly open = new Map<bigint, number>()
  highestSeen = -1n
  highestSeenEpoch = -1
  lastCommitted = -1n
  start = -1n

  track(offset: bigint, leaderEpoch: number): void {
    if (this.highestSeen < 0n) this.start = offset
    this.open.set(offset, (this.open.get(offset) ?? 0) + 1)
    if (offset > this.highestSeen) {
      this.highestSeen = offset
      this.highestSeenEpoch = leaderEpoch
    }
  }

  done(offset: bigint): void {
    const count = this.open.get(offset)
    if (count === undefined) return
    if (count <= 1) this.open.delete(offset)
    else this.open.set(offset, count - 1)
  }

  committable(): { offset: bigint; leaderEpoch: number } | undefined {
    if (this.highestSeen < 0n) return undefined
    let offset = this.highestSeen + 1n
    let leaderEpoch = -1
    if (this.open.size === 0) leaderEpoch = this.highestSeenEpoch
    else for (const o of this.open.keys()) if (o < offset) offset = o
    if (offset <= this.lastCommitted || offset <= this.start) return undefined
    return { offset, leaderEpoch }
  }

  markCommitted(offset: bigint): void {
    if (offset > this.lastCommitted) this.lastCommitted = offset
  }
}

type Operation = { op: 'track'; offset: number; epoch: number } | { op: 'done'; offset: number } | { op: 'commit' }

const operation = (maxOffset: number): fc.Arbitrary<Operation> =>
  fc.oneof(
    fc.record({ op: fc.constant('track' as const), offset: fc.nat(maxOffset), epoch: fc.nat(3) }),
    fc.record({ op: fc.constant('done' as const), offset: fc.nat(maxOffset) }),
    fc.record({ op: fc.constant('commit' as const) })
  )

function check(operations: readonly Operation[]): void {
  const tracker = new OffsetTracker('t', 0)
  const model = new ModelTracker()
  for (const o of operations) {
    if (o.op === 'track') {
      tracker.track(BigInt(o.offset), o.epoch)
      model.track(BigInt(o.offset), o.epoch)
    } else if (o.op === 'done') {
      tracker.done(BigInt(o.offset))
      model.done(BigInt(o.offset))
    } else {
      const c = model.committable()
      if (c) {
        tracker.markCommitted(c.offset)
        model.markCommitted(c.offset)
      }
    }
    assert.equal(tracker.openCount, model.open.size)
    assert.deepEqual(tracker.committable(), model.committable())
    assert.equal(tracker.lastCommitted, model.lastCommitted)
    assert.ok(tracker.retained <= 2 * model.open.size + 1025, `retained ${tracker.retained}`)
  }
}

test('matches the Map-based tracker on any mix of tracks, re-deliveries, dones and commits', () => {
  fc.assert(fc.property(fc.array(operation(20), { maxLength: 300 }), check), { numRuns: 3_000 })
})

test('matches it on in-order traffic with out-of-order acks and re-fetches (the shapes the runtime produces)', () => {
  const traffic = fc
    .array(fc.tuple(fc.nat(50), fc.nat(2_000), fc.boolean()), { minLength: 1, maxLength: 40 })
    .map((steps) => {
      // In-order deliveries, acked with some reordering, plus now and then a re-fetch from an older offset.
      const ops: Operation[] = []
      let next = 0
      const open: number[] = []
      for (const [ahead, pick, refetch] of steps) {
        if (refetch && next > 0) ops.push({ op: 'track', offset: Math.max(0, next - 1 - (pick % 30)), epoch: 1 })
        for (let k = 0; k < ahead; k++) {
          ops.push({ op: 'track', offset: next, epoch: 1 })
          open.push(next++)
        }
        for (let k = 0; k < ahead && open.length > 0; k++) {
          const i = (pick + k) % Math.min(open.length, 8)
          ops.push({ op: 'done', offset: open.splice(i, 1)[0]! })
        }
        ops.push({ op: 'commit' })
      }
      return ops
    })
  fc.assert(fc.property(traffic, check), { numRuns: 500 })
})

test('a stuck offset does not make it grow with the traffic behind it', () => {
  const tracker = new OffsetTracker('t', 0)
  tracker.track(0n, 0)
  let most = 0
  for (let o = 1n; o <= 200_000n; o++) {
    tracker.track(o, 0)
    tracker.done(o)
    most = Math.max(most, tracker.retained)
  }
  assert.equal(tracker.openCount, 1)
  assert.ok(most <= 2 * 1 + 1024 + 1, `held at most ${most} entries for 1 open offset`)
  assert.deepEqual(tracker.committable(), undefined, 'offset 0 is still open and is where this member started')
  tracker.done(0n)
  assert.deepEqual(tracker.committable(), { offset: 200_001n, leaderEpoch: 0 })
  assert.equal(tracker.retained, 0)
})
