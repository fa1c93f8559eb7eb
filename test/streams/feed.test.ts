import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { type Observable, Subject, type Subscription } from 'rxjs'
import { Feed } from '../../src/streams/feed.ts'

type Operation =
  | { op: 'subscribe'; leaveOn: number | undefined; evict: number | undefined }
  | { op: 'unsubscribe'; who: number }
  | { op: 'next'; value: number }
  | { op: 'complete' }
  | { op: 'error' }

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({
    op: fc.constant('subscribe' as const),
    leaveOn: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
    evict: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined })
  }),
  fc.record({ op: fc.constant('unsubscribe' as const), who: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ op: fc.constant('next' as const), value: fc.integer({ min: 0, max: 5 }) }),
  fc.constant({ op: 'complete' as const }),
  fc.constant({ op: 'error' as const })
)

/**
 * Runs the operations against a multicast and returns what every subscriber saw. A subscriber may leave when it
 * sees a value (`leaveOn`) or unsubscribe another one then (`evict`): the runtime's branches unsubscribe from inside
 * a `next` when one of them fails.
 */
function observe(
  source: Observable<number>,
  push: { next(v: number): void; complete(): void; error(e: unknown): void },
  operations: Operation[]
) {
  const logs: string[][] = []
  const subscriptions: Subscription[] = []
  for (const o of operations) {
    if (o.op === 'subscribe') {
      const id = logs.length
      const log: string[] = []
      logs.push(log)
      const subscription = source.subscribe({
        next: (v) => {
          log.push(`next ${v}`)
          if (v === o.leaveOn) subscriptions[id]?.unsubscribe()
          if (v === o.evict) subscriptions[(id + 1) % Math.max(1, subscriptions.length)]?.unsubscribe()
        },
        error: (e) => log.push(`error ${String(e)}`),
        complete: () => log.push('complete')
      })
      subscriptions[id] = subscription
    } else if (o.op === 'unsubscribe') subscriptions[o.who]?.unsubscribe()
    else if (o.op === 'next') push.next(o.value)
    else if (o.op === 'complete') push.complete()
    else push.error('boom')
  }
  return logs
}

test('Feed multicasts exactly like an rxjs Subject, also when subscribers leave while it delivers', () => {
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 60 }), (operations) => {
      const subject = new Subject<number>()
      const feed = new Feed<number>()
      assert.deepEqual(observe(feed.observable, feed, operations), observe(subject, subject, operations))
    }),
    { numRuns: 500 }
  )
})

test('Feed forgets subscribers that leave, and ends late subscribers at once', () => {
  const feed = new Feed<number>()
  const seen: number[] = []
  const a = feed.observable.subscribe((v) => seen.push(v))
  feed.observable.subscribe((v) => seen.push(v * 10)).unsubscribe()
  assert.equal(feed.observed, 1)
  feed.next(1)
  a.unsubscribe()
  assert.equal(feed.observed, 0)
  feed.next(2)
  assert.deepEqual(seen, [1])
  feed.complete()
  let completed = false
  feed.observable.subscribe({ complete: () => (completed = true) })
  assert.ok(completed, 'a subscriber after completion completes')
  assert.equal(feed.observed, 0)
})
