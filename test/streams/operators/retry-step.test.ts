import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { from, lastValueFrom, toArray } from 'rxjs'
import { FatalError, PoisonError, RetriableError } from '../../../src/errors.ts'
import { retryStep } from '../../../src/streams/operators/retry-step.ts'
import { envelopeOf, RecordingHost } from '../../helpers/envelopes.ts'

describe('retryStep operator', () => {
  const fast = { initialDelayMs: 1, maxDelayMs: 2, multiplier: 2 }

  test('retries retriable errors, dead-letters poison, keeps order within a partition', async () => {
    const host = new RecordingHost()
    const attempts = new Map<string, number>()
    const envelopes = ['a', 'b', 'poison', 'c'].map((v) => envelopeOf(host, v, { partition: 0 }).withValue(v))
    const order: string[] = []
    const out = await lastValueFrom(
      from(envelopes).pipe(
        retryStep(
          async (e) => {
            const n = (attempts.get(e.value) ?? 0) + 1
            attempts.set(e.value, n)
            if (e.value === 'a' && n < 3) throw new RetriableError('service restarting')
            if (e.value === 'poison') throw new PoisonError('cannot embed this')
            order.push(e.value)
            return e.value.toUpperCase()
          },
          { ...fast, stage: 'embed' }
        ),
        toArray()
      )
    )
    assert.deepEqual(
      out.map((e) => e.value),
      ['A', 'B', 'C']
    )
    assert.deepEqual(order, ['a', 'b', 'c'], 'b waited for a to succeed')
    assert.equal(attempts.get('a'), 3)
    assert.equal(host.dead.length, 1)
    assert.equal(host.dead[0]?.stage, 'embed')
  })

  test('a fatal error fails the stream', async () => {
    const host = new RecordingHost()
    await assert.rejects(
      lastValueFrom(
        from([envelopeOf(host, 'x')]).pipe(
          retryStep(async () => {
            throw new FatalError('bad API key')
          }, fast)
        )
      ),
      /bad API key/
    )
  })
})
