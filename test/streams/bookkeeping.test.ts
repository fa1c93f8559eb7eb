import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { CommitRequest } from '../../src/sources/types.ts'
import { CommitCoordinator } from '../../src/streams/commit-coordinator.ts'
import { InFlightWindow } from '../../src/streams/in-flight-window.ts'
import { OffsetTracker } from '../../src/streams/offset-tracker.ts'

describe('OffsetTracker', () => {
  test('commits up to the lowest open offset, never past it', () => {
    const t = new OffsetTracker('t', 0)
    for (let o = 10n; o < 15n; o++) t.track(o, 3)
    t.done(10n)
    t.done(12n)
    assert.deepEqual(t.committable(), { offset: 11n, leaderEpoch: -1 })
    t.done(11n)
    t.done(13n)
    assert.equal(t.committable()?.offset, 14n)
    t.done(14n)
    assert.deepEqual(t.committable(), { offset: 15n, leaderEpoch: 3 }, 'exact epoch once all seen are done')
    t.markCommitted(15n)
    assert.equal(t.committable(), undefined)
  })

  test('an offset delivered twice stays open until both deliveries are done', () => {
    const t = new OffsetTracker('t', 0)
    t.track(5n, 0)
    t.track(6n, 0)
    t.track(5n, 0)
    t.done(5n)
    t.done(6n)
    assert.equal(t.committable(), undefined, '5 is still open: nothing to commit beyond where we started')
    t.done(5n)
    assert.equal(t.committable()?.offset, 7n)
  })
})

describe('CommitCoordinator', () => {
  test('one commit request at a time; a commit asked for meanwhile runs right after', async () => {
    const calls: CommitRequest[][] = []
    let release: () => void = () => {}
    const coordinator = new CommitCoordinator(async (requests) => {
      calls.push([...requests])
      await new Promise<void>((r) => {
        release = r
      })
    })
    const origin = (offset: bigint) => ({ topic: 't', partition: 0, offset, leaderEpoch: 0, timestamp: 0n })
    coordinator.track(origin(0n))
    coordinator.done(origin(0n))
    const first = coordinator.commitNow()
    coordinator.track(origin(1n))
    coordinator.done(origin(1n))
    const second = coordinator.commitNow()
    assert.equal(calls.length, 1)
    release()
    await new Promise((r) => setImmediate(r))
    assert.equal(calls.length, 2)
    release()
    await Promise.all([first, second])
    assert.deepEqual(
      calls.map((c) => c.map((r) => r.offset)),
      [[1n], [2n]]
    )
    assert.equal(coordinator.committedOffsets().get('t:0'), 2n)
  })

  test('a revoked partition is committed once more, then forgotten', async () => {
    const calls: CommitRequest[][] = []
    const coordinator = new CommitCoordinator(async (requests) => {
      calls.push([...requests])
    })
    const at = (partition: number, offset: bigint) => ({ topic: 't', partition, offset, leaderEpoch: 0, timestamp: 0n })
    coordinator.track(at(0, 0n))
    coordinator.track(at(1, 0n))
    coordinator.done(at(1, 0n))
    await coordinator.assigned([{ topic: 't', partition: 0 }])
    assert.deepEqual(calls.at(-1), [{ topic: 't', partition: 1, offset: 1n, leaderEpoch: 0 }])
    coordinator.done(at(0, 0n))
    coordinator.track(at(1, 1n))
    coordinator.done(at(1, 1n))
    await coordinator.commitNow()
    assert.deepEqual(
      calls.at(-1)?.map((r) => `${r.partition}@${r.offset}`),
      ['0@1', '1@2'],
      'a partition assigned again starts a fresh tracker'
    )
  })
})

describe('InFlightWindow', () => {
  test('blocks at the message or byte limit and wakes on release; an aborted wait takes nothing', async () => {
    const w = new InFlightWindow({ maxMessages: 2, maxBytes: 100 })
    assert.equal(await w.acquire(), true)
    w.addBytes(10)
    assert.equal(await w.acquire(), true)
    w.addBytes(10)
    let third = false
    const waiting = w.acquire().then((ok) => {
      third = ok
    })
    await new Promise((r) => setImmediate(r))
    assert.equal(third, false)
    w.release(10)
    await waiting
    assert.equal(third, true)
    w.addBytes(200)
    w.release(10)
    assert.ok(w.full, 'over the byte limit')
    const controller = new AbortController()
    const aborted = w.acquire(controller.signal)
    controller.abort()
    assert.equal(await aborted, false)
    assert.equal(w.messages, 1)
    w.release(200)
    await w.drained()
    assert.equal(w.messages, 0)
  })
})
