import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { from, lastValueFrom, toArray } from 'rxjs'
import { keep } from '../../../src/streams/operators/keep.ts'
import { envelopeOf, RecordingHost } from '../../helpers/envelopes.ts'

describe('keep', () => {
  test('keep drops (acks) what the predicate refuses', async () => {
    const host = new RecordingHost()
    const envelopes = [1, 2, 3, 4].map((n) => envelopeOf(host, String(n)).withValue(n))
    const out = await lastValueFrom(
      from(envelopes).pipe(
        keep((e) => e.value % 2 === 0),
        toArray()
      )
    )
    assert.deepEqual(
      out.map((e) => e.value),
      [2, 4]
    )
    assert.deepEqual(
      host.drops.map((d) => d.reason),
      ['filtered', 'filtered']
    )
  })
})
