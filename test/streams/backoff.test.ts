import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { AbandonedError, RetryLater, retrying, retryWithBackoff } from '../../src/streams/backoff.ts'

const fast = { initialDelayMs: 1, maxDelayMs: 4, multiplier: 2, maxAttempts: Number.POSITIVE_INFINITY }

describe('retryWithBackoff (the one retry loop)', () => {
  test('calls the attempt until it returns a result, waiting after each RetryLater; onRetry sees each wait', async () => {
    const waits: Array<[unknown, number, number]> = []
    const seen: number[] = []
    const result = await retryWithBackoff(
      async (attempt) => {
        seen.push(attempt)
        return attempt < 4 ? new RetryLater(`busy ${attempt}`) : 'done'
      },
      fast,
      { onRetry: (error, attempt, delay) => waits.push([error, attempt, delay]) }
    )
    assert.equal(result, 'done')
    assert.deepEqual(seen, [1, 2, 3, 4])
    assert.deepEqual(
      waits.map(([error, attempt]) => [error, attempt]),
      [
        ['busy 1', 1],
        ['busy 2', 2],
        ['busy 3', 3]
      ]
    )
    for (const [, attempt, delay] of waits) {
      const base = Math.min(fast.maxDelayMs, fast.initialDelayMs * fast.multiplier ** (attempt - 1))
      assert.ok(delay >= base / 2 && delay <= base, `delay ${delay} within [${base / 2}, ${base}]`)
    }
  })

  test('after maxAttempts it throws the last error', async () => {
    let calls = 0
    await assert.rejects(
      retryWithBackoff(
        async () => {
          calls++
          return new RetryLater(new Error(`refused ${calls}`))
        },
        { ...fast, maxAttempts: 3 }
      ),
      /refused 3/
    )
    assert.equal(calls, 3)
  })

  test('an error the attempt throws passes straight through, not retried', async () => {
    let calls = 0
    await assert.rejects(
      retryWithBackoff(async () => {
        calls++
        throw new Error('fatal')
      }, fast),
      /fatal/
    )
    assert.equal(calls, 1)
  })

  test('an abort while waiting, or before, abandons the work (AbandonedError, the cause kept), no further attempt', async () => {
    const controller = new AbortController()
    let calls = 0
    const slow = { ...fast, initialDelayMs: 10_000, maxDelayMs: 10_000 }
    const run = retryWithBackoff(
      async () => {
        calls++
        return new RetryLater('down')
      },
      slow,
      { signal: controller.signal }
    )
    setTimeout(() => controller.abort(), 10)
    const error = await run.then(
      () => assert.fail('resolved'),
      (e: unknown) => e
    )
    assert.ok(error instanceof AbandonedError)
    assert.equal(error.cause, 'down')
    assert.equal(calls, 1)

    let after = 0
    await assert.rejects(
      retryWithBackoff(
        async () => {
          after++
          return new RetryLater('down')
        },
        fast,
        { signal: controller.signal }
      ),
      AbandonedError
    )
    assert.equal(after, 1, 'an already aborted signal: one attempt, no wait')
  })

  test('retrying: a classifier on top of the loop (retried while it accepts the error)', async () => {
    let calls = 0
    const value = await retrying(
      async () => {
        calls++
        if (calls < 3) throw new Error('retriable')
        return 42
      },
      (error) => (error as Error).message === 'retriable',
      fast
    )
    assert.equal(value, 42)
    assert.equal(calls, 3)
    await assert.rejects(
      retrying(
        async () => {
          throw new Error('other')
        },
        (error) => (error as Error).message === 'retriable',
        fast
      ),
      /other/
    )
  })
})
